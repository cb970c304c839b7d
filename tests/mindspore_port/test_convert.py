"""Every weights file the torch side loads goes into the MindSpore network, every tensor checked both
ways; a file that does not fit is refused with one line naming the key, the shapes and the file."""

from __future__ import annotations

import pytest

ms = pytest.importorskip("mindspore", reason="MindSpore tests run in .venv-ms: make test-ms")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import official_layout  # noqa: E402
from conftest import tiny_model_cfg  # noqa: E402
from ms_helpers import etth1_batch, relative_difference, torch_network  # noqa: E402
from symtime_repro.errors import UserError  # noqa: E402
from symtime_repro.mindspore import (build_network, forward_numpy, load_torch_state, load_weights_file,  # noqa: E402
                                     state_names)
from symtime_repro.models import save_checkpoint  # noqa: E402

SMALL = dict(n_layers=6, d_model=384, n_heads=8, d_ff=384, forward_layers=3)
BASE = dict(n_layers=6, d_model=512, n_heads=8, d_ff=2048, forward_layers=3)


def values(cell) -> dict[str, np.ndarray]:
    return {k: p.asnumpy() for k, p in state_names(cell).items()}


def assert_holds(cell, state: dict, prefix: str = "") -> None:
    held = values(cell)
    for key, tensor in state.items():
        np.testing.assert_array_equal(held[prefix + key], tensor.numpy(), err_msg=key)


def test_our_checkpoint_loads_and_predicts_as_torch(tmp_path):
    model = torch_network("forecast")
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, torch.optim.Adam(model.parameters()), 3, {"task": {"pred_len": 24}})
    cell = build_network("forecast", 7, 96, 24, tiny_model_cfg(use_avg=True))
    assert load_weights_file(cell, path) == "checkpoint"
    assert values(cell).keys() == model.state_dict().keys()
    assert_holds(cell, model.state_dict())
    x, _, _ = etth1_batch()
    model.eval()
    cell.set_train(False)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert relative_difference(forward_numpy(cell, x), expected) <= 1e-5


def test_official_finetuned_checkpoint_of_the_base_model_loads(tmp_path):
    state = official_layout.random_state(
        official_layout.section("Fine-tuned full model (checkpoint.pth), task_name=long_term_forecast"))
    path = tmp_path / "checkpoint.pth"
    torch.save(state, path)
    cell = build_network("forecast", 7, 96, 96, tiny_model_cfg(**BASE))
    assert load_weights_file(cell, path) == "checkpoint"
    assert values(cell).keys() == state.keys()
    assert_holds(cell, state)


@pytest.mark.parametrize("prefix", ["", "module."])  # module.: saved from nn.DataParallel
def test_official_pretrained_encoder_loads_into_the_encoder_only(tmp_path, prefix):
    state = official_layout.random_state(
        official_layout.section("Pre-trained encoder file (models/params/finetuning.pth), SymTime_small"))
    path = tmp_path / "finetuning.pth"
    torch.save({prefix + k: v for k, v in state.items()}, path)
    cell = build_network("forecast", 7, 96, 96, tiny_model_cfg(**SMALL))
    head_before = values(cell)["flatten_head.linear.weight"]
    assert load_weights_file(cell, path) == "pretrained"
    assert_holds(cell, state, prefix="time_encoder.")
    np.testing.assert_array_equal(values(cell)["flatten_head.linear.weight"], head_before)


def _one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_encoder_of_another_size_is_refused_naming_key_shapes_and_file(tmp_path):
    state = official_layout.random_state(
        official_layout.section("Pre-trained encoder file (models/params/finetuning.pth), SymTime_small"))
    path = tmp_path / "finetuning.pth"
    torch.save(state, path)
    cell = build_network("forecast", 7, 96, 96, tiny_model_cfg(**BASE))
    with pytest.raises(UserError) as err:
        load_weights_file(cell, path)
    message = _one_line(err)
    assert str(path) in message
    assert "has shape (1, 1, 384) in the file but (1, 1, 512) in the MindSpore network" in message


def test_missing_and_unexpected_keys_are_refused_before_anything_is_copied():
    model = torch_network("forecast")
    cell = build_network("forecast", 7, 96, 24, tiny_model_cfg(use_avg=True))
    before = values(cell)
    state = dict(model.state_dict())
    del state["time_encoder.layers.1.ff.3.bias"]
    with pytest.raises(UserError) as err:
        load_torch_state(cell, state, "ckpt=run/checkpoint.pt")
    assert "ckpt=run/checkpoint.pt: key 'time_encoder.layers.1.ff.3.bias' is missing" in _one_line(err)
    state = {**model.state_dict(), "extra.weight": torch.zeros(2)}
    with pytest.raises(UserError, match="the file has key 'extra.weight' that the MindSpore network does not"):
        load_torch_state(cell, state)
    # nothing half-loaded: the refusals came before the first copy
    after = values(cell)
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_decomposition_mismatch_is_refused(tmp_path):
    model = torch_network("forecast")  # decomposition on: has projection_trend
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, None, 0, {})
    cell = build_network("forecast", 7, 96, 24, tiny_model_cfg(use_avg=False))
    with pytest.raises(UserError, match="'projection_trend.weight' that the MindSpore network does not"):
        load_weights_file(cell, path)


def test_unreadable_file_is_the_torch_readers_user_error(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    cell = build_network("forecast", 7, 96, 24, tiny_model_cfg())
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        load_weights_file(cell, junk)
