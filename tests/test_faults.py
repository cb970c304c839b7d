"""Numerical faults: a NaN/inf loss stops the run with status failed (or skips the batch), and an
infinite value in a data file is named at load time. Real data, real training steps."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import DATA_ROOT, REPO, TINY, assert_user_error, run_cli
from symtime_repro.config import register_configs
from symtime_repro.errors import RunFailed
from symtime_repro.run import prepare
from symtime_repro.trainer import Trainer


def test_an_exploding_learning_rate_fails_the_run_clearly(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli([*TINY, "trainer.lr=1e12"], run_dir)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "became NaN/inf at epoch 1, step" in errors[0]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["epoch"] == 1 and metrics["step"] >= 1
    assert "mse" not in metrics  # never a file that looks like a success


def trainer_and_task(tmp_path, *overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "trainer.epochs=1", "trainer.limit_train_batches=6", *overrides])
    rc, device, task, splits, model, dist = prepare(cfg)
    return Trainer(rc.trainer, device, tmp_path, rc.seed, asdict(rc), dist), task, splits, model


def poison(task, at_call: int):
    """The task's real loss, made NaN on one call (as a batch with a bad value would)."""
    real, calls = task.training_loss, []

    def loss(model, batch):
        calls.append(1)
        value = real(model, batch)
        return value * float("nan") if len(calls) == at_call else value

    task.training_loss = loss


def test_a_nan_batch_is_skipped_and_counted_when_asked(tmp_path):
    trainer, task, splits, model = trainer_and_task(tmp_path, "trainer.on_nonfinite=skip")
    poison(task, at_call=3)
    fit = trainer.fit(task, model, splits)
    assert fit.skipped_batches == 1 and fit.epochs_run == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step never reached the weights
    assert fit.train_samples == 5 * 64


def test_a_nan_batch_stops_the_run_by_default_naming_epoch_and_step(tmp_path):
    trainer, task, splits, model = trainer_and_task(tmp_path)
    poison(task, at_call=4)
    with pytest.raises(RunFailed, match="epoch 1, step 4") as failure:
        trainer.fit(task, model, splits)
    assert failure.value.details == {"epoch": 1, "step": 4}


def test_an_infinite_value_in_a_csv_is_named_at_load_time(tmp_path):
    (tmp_path / "ETT-small").mkdir()
    lines = (DATA_ROOT / "ETT-small" / "ETTh1.csv").read_text().splitlines(keepends=True)
    cells = lines[500].split(",")
    cells[3] = "inf"
    lines[500] = ",".join(cells)
    (tmp_path / "ETT-small" / "ETTh1.csv").write_text("".join(lines))
    result = run_cli([*TINY, f"data.root={tmp_path}"], tmp_path / "run")
    assert_user_error(result, "ETTh1.csv line 501, column 'MUFL' holds 'inf', not a finite number", tmp_path / "run")
