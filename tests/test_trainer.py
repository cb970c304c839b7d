"""The shared trainer: the official learning-rate schedules and early stopping on validation loss."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from symtime_repro import device
from symtime_repro.config import TrainerConfig
from symtime_repro.datasets.windows import SlidingWindows
from symtime_repro.models import read_checkpoint
from symtime_repro.tasks.base import BaseTask, Splits
from symtime_repro.training import Trainer, scheduled_lr


def test_official_schedules():
    assert [scheduled_lr("type1", 1e-3, e, 10) for e in (1, 2, 3)] == [1e-3, 5e-4, 2.5e-4]
    # type2 ignores the base rate and changes only at listed epochs.
    assert [scheduled_lr("type2", 1e-3, e, 10) for e in (1, 2, 3, 4)] == [None, 5e-5, None, 1e-5]
    assert scheduled_lr("cosine", 1e-3, 5, 10) == pytest.approx(5e-4)
    assert scheduled_lr("cosine", 1e-3, 10, 10) == pytest.approx(0.0)
    assert scheduled_lr("constant", 1e-3, 3, 10) is None


class ScriptedTask(BaseTask):
    """A regression task whose validation losses follow a script, to drive early stopping."""

    name = "scripted"

    def __init__(self, val_losses, monitor=("loss", "min")):
        self.val_losses = list(val_losses)
        self.monitor = monitor

    def training_loss(self, model, batch):
        return (model(batch["x"]).squeeze(-1) - batch["y"][:, 0, 0]).square().mean()

    def evaluate(self, model, batches):
        for _ in batches:
            pass
        value = self.val_losses.pop(0)
        return {"loss": value, "accuracy": value}

    def test_metric_names(self):
        return ()


def _trainer(tmp_path, **overrides):
    cfg = dict(epochs=10, batch_size=8, lr=0.01, lradj="constant", patience=2, progress=False)
    cfg.update(overrides)
    dev = device.setup(SimpleNamespace(name="cpu", amp=False, index=0))
    return Trainer(TrainerConfig(**cfg), dev, tmp_path, seed=0, config_record={"note": "test"})


def _splits():
    series = torch.linspace(0, 1, 64).reshape(64, 1).numpy()
    windows = SlidingWindows(series, 4, 1)
    return Splits(windows, windows, windows, {})


def test_early_stopping_keeps_and_restores_the_best_epoch(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 1))
    weights_after_epoch = []
    task = ScriptedTask([0.9, 0.5, 0.6, 0.5, 0.7, 0.1])  # best at 2; 3 and 4 (a tie) don't improve
    trainer = _trainer(tmp_path)
    original_evaluate = task.evaluate

    def evaluate_and_snapshot(m, batches):
        weights_after_epoch.append(m[1].weight.detach().clone())
        return original_evaluate(m, batches)

    task.evaluate = evaluate_and_snapshot
    result = trainer.fit(task, model, _splits())

    assert result.epochs_run == 4 and result.stopped_early
    assert result.best_epoch == 2 and result.best_val_loss == 0.5
    assert torch.equal(model[1].weight, weights_after_epoch[1])  # restored the epoch-2 weights
    state, config = read_checkpoint(tmp_path / "checkpoint.pt")
    assert torch.equal(state["1.weight"], weights_after_epoch[1]) and config == {"note": "test"}
    with open(tmp_path / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["val_loss"]) for r in rows] == [0.9, 0.5, 0.6, 0.5]


def test_limit_train_batches_caps_each_epoch(tmp_path, caplog):
    task = ScriptedTask([1.0, 0.9])
    trainer = _trainer(tmp_path, epochs=2, limit_train_batches=3)
    with caplog.at_level("INFO"):
        result = trainer.fit(task, nn.Sequential(nn.Flatten(), nn.Linear(4, 1)), _splits())
    assert result.train_samples == 2 * 3 * 8
    assert "trainer.limit_train_batches=3: using 3 of 8 train batches" in caplog.text
    assert math.isfinite(result.history[-1]["train_loss"])


def test_early_stopping_can_maximise_a_metric(tmp_path):
    # Classification watches accuracy (higher is better), as the official loop does.
    task = ScriptedTask([0.5, 0.7, 0.7, 0.6, 0.9], monitor=("accuracy", "max"))
    result = _trainer(tmp_path, patience=2).fit(task, nn.Sequential(nn.Flatten(), nn.Linear(4, 1)), _splits())
    assert (result.epochs_run, result.best_epoch, result.best_value) == (4, 2, 0.7)
    with open(tmp_path / "history.csv") as handle:
        assert [float(r["val_accuracy"]) for r in csv.DictReader(handle)] == [0.5, 0.7, 0.7, 0.6]


def test_gradient_clipping_bounds_each_update(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 1))
    before = [p.detach().clone() for p in model.parameters()]
    task = ScriptedTask([1.0])
    task.training_loss = lambda m, batch: m(batch["x"]).sum() * 1e6  # a huge gradient
    trainer = _trainer(tmp_path, epochs=1, limit_train_batches=1, optimizer="adam", lr=0.1, grad_clip=1e-3)
    trainer.fit(task, model, _splits())
    # Adam's first step moves each weight by about lr whatever the gradient's size, so check the
    # clipped gradient norm directly instead.
    grads = [p.grad for p in model.parameters()]
    assert torch.sqrt(sum(g.square().sum() for g in grads)).item() == pytest.approx(1e-3, rel=1e-4)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
