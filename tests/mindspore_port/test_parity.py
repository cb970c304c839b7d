"""The MindSpore network computes what our torch network computes, for every head and switch: the
same forward in eval mode, and the same losses, weights and BatchNorm statistics over Adam steps in
train mode (dropout 0, BatchNorm on batch statistics), on windows of the shipped ETTh1."""

from __future__ import annotations

import pytest

ms = pytest.importorskip("mindspore", reason="MindSpore tests run in .venv-ms: make test-ms")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mindspore import Tensor, ops  # noqa: E402

from ms_helpers import CLASSES, CONFIGS, etth1_batch, model_cfg, relative_difference, torch_network  # noqa: E402
from symtime_repro.mindspore import (build_network, copy_from_torch, forward_numpy, make_optimizer,  # noqa: E402
                                     make_train_step, state_names)

LR, STEPS = 1e-3, 5


def twin_networks(name: str, **overrides):
    """A torch network with random weights and the MindSpore network holding the same weights."""
    model = torch_network(name, **overrides)
    head = CONFIGS[name][0]
    cell = build_network(head, 7, 96, 24, model_cfg(name, **overrides),
                         num_classes=CLASSES if head == "classify" else None)
    copy_from_torch(cell, model)
    return model, cell


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_eval_forward_matches_torch(name):
    model, cell = twin_networks(name)
    model.eval()
    cell.set_train(False)
    x, _, _ = etth1_batch()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = forward_numpy(cell, x)
    assert got.shape == expected.shape
    diff = relative_difference(got, expected)
    print(f"{name}: eval max abs {np.abs(got - expected).max():.2e}, relative {diff:.2e}")
    assert diff <= 1e-5


def _torch_loss(head, output, target, labels):
    if head == "classify":
        return torch.nn.functional.cross_entropy(output, torch.from_numpy(labels))
    return torch.nn.functional.mse_loss(output, torch.from_numpy(target))


def _mindspore_loss(head):
    if head == "classify":
        def cross_entropy(logits, one_hot):
            return -(ops.log_softmax(logits, axis=-1) * one_hot).sum(axis=-1).mean()
        return cross_entropy
    return lambda output, target: ((output - target) ** 2).mean()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_training_steps_match_torch(name):
    """Five Adam steps with the same lr: same losses, weights moved the same way, same running stats."""
    no_dropout = dict(dropout=0.0, attn_dropout=0.0, out_dropout=0.0)
    model, cell = twin_networks(name, **no_dropout)
    head = CONFIGS[name][0]
    x, y, labels = etth1_batch(batch=16)
    target = x if head == "reconstruct" else y
    ms_target = np.eye(CLASSES, dtype=np.float32)[labels] if head == "classify" else target
    before = {k: v.clone() for k, v in model.state_dict().items()}

    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=LR)
    torch_losses, largest_grad = [], {}
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = _torch_loss(head, model(torch.from_numpy(x)), target, labels)
        loss.backward()
        optimizer.step()
        torch_losses.append(loss.item())
        for key, param in model.named_parameters():
            if param.grad is not None:
                largest_grad[key] = max(largest_grad.get(key, 0.0), param.grad.abs().max().item())

    cell.set_train(True)
    step = make_train_step(cell, _mindspore_loss(head), make_optimizer(cell, LR))
    ms_losses = [float(step(Tensor(x), Tensor(ms_target)).asnumpy()) for _ in range(STEPS)]

    loss_diff = max(abs(a - b) / abs(b) for a, b in zip(ms_losses, torch_losses))
    after = {k: p.asnumpy() for k, p in state_names(cell).items()}
    # what torch trains: the classify head never uses the trend projection (built for the file layout)
    trained = list(largest_grad)
    # A bias right before BatchNorm (or the keys' bias, which softmax ignores) has an exactly zero
    # gradient in theory and float noise (~1e-9) in practice; Adam turns that noise into full-size
    # steps of random sign, different in each framework. Compare the weights that are really trained.
    learned = [k for k in trained if largest_grad[k] > 1e-6]
    weight_diff = max(relative_difference(after[k], model.state_dict()[k].numpy()) for k in learned)
    print(f"{name}: losses {torch_losses[0]:.4f}->{torch_losses[-1]:.4f}, max relative loss diff "
          f"{loss_diff:.2e}, max relative weight diff {weight_diff:.2e} (all trained: {max(relative_difference(after[k], model.state_dict()[k].numpy()) for k in trained):.2e})")
    assert loss_diff <= 1e-4
    assert torch_losses[-1] < torch_losses[0]  # a real training signal, not a flat comparison
    for key in trained:  # every trainable tensor moved, in both frameworks, to the same place
        assert not np.array_equal(after[key], before[key].numpy()), key
    assert weight_diff <= 1e-3
    for key, value in model.state_dict().items():
        if "num_batches_tracked" in key:  # the running statistics themselves: see the test below
            assert after[key] == value.item() in (0, STEPS), key  # 0: a layer beyond forward_layers
    for key, value in before.items():  # frozen layers and buffers stay as they were
        if key not in trained and "running_" not in key and "num_batches_tracked" not in key:
            assert np.array_equal(after[key], value.numpy()), key


@pytest.mark.parametrize("name", ["forecast", "classify-conv1d"])
def test_training_forward_updates_batchnorm_statistics_as_torch(name):
    """One forward in train mode: the same output from batch statistics and the same running mean,
    variance (torch's: unbiased, momentum 0.1) and count. Checked on a single forward because after
    optimizer steps the running means also follow the biases that Adam moves on noise (above)."""
    model, cell = twin_networks(name, dropout=0.0, attn_dropout=0.0, out_dropout=0.0)
    x, _, _ = etth1_batch(batch=16)
    model.train()
    cell.set_train(True)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = forward_numpy(cell, x)
    assert relative_difference(got, expected) <= 1e-5
    after = {k: p.asnumpy() for k, p in state_names(cell).items()}
    checked = 0
    for key, value in model.state_dict().items():
        if "running_" in key or "num_batches_tracked" in key:
            np.testing.assert_allclose(after[key], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
            checked += 1
    assert checked == 3 * 2 * 2  # mean, var, count of both norms of both layers
