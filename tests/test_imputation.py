"""Imputation: masks, masked-point metrics, and a real run on the shipped ETTh1."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from conftest import assert_user_error, DATA_ROOT, read_metrics, run_cli, TINY
from symtime_repro.tasks.base import eval_generator
from symtime_repro.tasks.imputation import Imputation, draw_mask

IMPUTE = [a for a in TINY if not a.startswith("task.pred_len")] + ["task=imputation", "model.forward_layers=2"]


def _task(mask_rng="seeded", features="M", ratio=0.25, seed=11):
    cfg = SimpleNamespace(task=SimpleNamespace(mask_ratio=ratio, mask_rng=mask_rng, seq_len=96, pred_len=0),
                          dataset=SimpleNamespace(features=features), seed=seed)
    return Imputation(cfg)


def test_mask_hides_the_requested_share():
    hidden = draw_mask(torch.Size([200, 96, 7]), 0.375, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert hidden.dtype == torch.bool
    assert hidden.float().mean().item() == pytest.approx(0.375, abs=0.005)


def test_metrics_cover_only_hidden_points_and_repeat_with_the_seed():
    x = torch.randn(10, 96, 3, generator=torch.Generator().manual_seed(1))
    batches = [{"x": x[:6]}, {"x": x[6:]}]
    identity = torch.nn.Identity()  # returns the zero-filled input: error = -x on hidden points
    task = _task()
    first, second = task.evaluate(identity, batches), task.evaluate(identity, batches)
    assert first == second
    # Window i's mask comes from a generator of its own, seeded from (seed, i): the same whatever the
    # batches (a checkpoint tested later with another eval batch size) and under any sharing.
    hidden = torch.stack([draw_mask(x.shape[1:], 0.25, torch.device("cpu"), eval_generator(11, i)) for i in range(10)])
    assert task.evaluate(identity, [{"x": x[:3]}, {"x": x[3:]}]) == pytest.approx(first, rel=1e-12)
    assert first["mse"] == pytest.approx(x[hidden].square().mean().item(), rel=1e-6)
    assert first["mae"] == pytest.approx(x[hidden].abs().mean().item(), rel=1e-6)
    # features=MS scores only the last channel
    ms = _task(features="MS").evaluate(identity, batches)
    assert ms["mse"] == pytest.approx(x[..., -1:][hidden[..., -1:]].square().mean().item(), rel=1e-6)
    # A share that starts at window 6 draws window 6's mask onwards: two shares merge to the whole.
    from symtime_repro.metrics.merge import merge_states

    class Share(list):
        def __init__(self, batches, offset, batch_offset):
            super().__init__(batches)
            self.offset, self.batch_offset = offset, batch_offset

    shares = [task.evaluation_state(identity, Share(batches[:1], 0, 0)),
              task.evaluation_state(identity, Share(batches[1:], 6, 1))]
    merged = task.metrics_from(merge_states(shares))
    assert merged["mse"] == pytest.approx(first["mse"], rel=1e-12) and merged["mae"] == pytest.approx(first["mae"], rel=1e-12)


def test_global_masks_follow_the_global_rng_like_the_official_code():
    x = torch.randn(4, 96, 3)
    task = _task(mask_rng="global")
    torch.manual_seed(5)
    a = task.evaluate(torch.nn.Identity(), [{"x": x}])
    b = task.evaluate(torch.nn.Identity(), [{"x": x}])
    torch.manual_seed(5)
    assert task.evaluate(torch.nn.Identity(), [{"x": x}]) == a and a != b


def test_imputation_run_repeats_exactly_with_the_same_seed(tmp_path):
    runs = []
    for name in ("a", "b"):
        result = run_cli([*IMPUTE, "task.mask_ratio=0.25"], tmp_path / name)
        assert result.returncode == 0, result.stderr[-2000:]
        runs.append(read_metrics(tmp_path / name))
    first, second = runs
    assert first["task"] == "imputation" and first["epochs_run"] == 2
    assert math.isfinite(first["mse"]) and 0.01 < first["mse"] < 1.5
    assert (first["mse"], first["mae"]) == (second["mse"], second["mae"])
    for name in ("history.csv", "run.log", "checkpoint.pt"):
        assert (tmp_path / "a" / name).is_file()
    # mode=test takes the network's shape from the checkpoint but the mask ratio from the user.
    result = run_cli(["mode=test", f"ckpt={tmp_path / 'a' / 'checkpoint.pt'}", f"data.root={DATA_ROOT}",
                      "task.mask_ratio=0.5", "trainer.progress=false"], tmp_path / "test")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "task.mask_ratio" not in result.stderr  # not overridden from the checkpoint
    retested = read_metrics(tmp_path / "test")
    assert retested["task"] == "imputation" and retested["mse"] != first["mse"]


def test_mask_ratio_out_of_range_is_one_clear_line(tmp_path):
    result = run_cli([*IMPUTE, "task.mask_ratio=1.5", f"data.root={DATA_ROOT}"], tmp_path / "run")
    assert_user_error(result, "task.mask_ratio must be in (0, 1), got 1.5", tmp_path / "run")
