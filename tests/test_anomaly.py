"""Anomaly detection end to end on the shipped MSL slice, both scoring protocols, bad input."""

from __future__ import annotations

import math

import pytest

from conftest import assert_user_error, DATA_ROOT, read_metrics, run_cli

DETECT = ["task=anomaly", "dataset=MSL", "model=symtime_tiny", "model.forward_layers=1", "model.stride=8",
          "trainer.epochs=2", "trainer.batch_size=64",
          "trainer.limit_train_batches=8", "trainer.progress=false", f"data.root={DATA_ROOT}"]


def test_msl_run_scores_every_overlapping_window(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(DETECT, run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = read_metrics(run_dir)
    assert metrics["task"] == "anomaly" and metrics["anomaly_ratio"] == 1.0  # MSL's official ratio
    assert metrics["scoring"] == "official" and metrics["test_windows"] == 4000 - 100 + 1
    for key in ("precision", "recall", "f1", "accuracy"):
        assert 0.0 <= metrics[key] <= 1.0 and math.isfinite(metrics[key])
    # The slice holds labelled anomalies and the threshold flags 1 % of energies: point
    # adjustment must turn some hits into whole detected segments.
    assert metrics["recall"] > 0 and metrics["threshold"] > 0
    assert "windows/s" in (run_dir / "run.log").read_text()
    for name in ("history.csv", "run.log", "checkpoint.pt"):
        assert (run_dir / name).is_file()


def test_non_overlapping_scoring_counts_each_point_once(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli([*DETECT, "trainer.epochs=1", "task.test_windows=non_overlapping", "task.anomaly_ratio=2"],
                     run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = read_metrics(run_dir)
    assert metrics["scoring"] == "non_overlapping" and metrics["test_windows"] == 4000 // 100
    assert metrics["anomaly_ratio"] == 2.0


@pytest.mark.parametrize("ratio", ["0", "150"])
def test_anomaly_ratio_out_of_range_is_one_clear_line(ratio, tmp_path):
    result = run_cli([*DETECT, f"task.anomaly_ratio={ratio}"], tmp_path / "run")
    assert_user_error(result, f"task.anomaly_ratio is a percent in (0, 100), got {float(ratio)}", tmp_path / "run")
