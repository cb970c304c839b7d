"""Anomaly detection end to end on the shipped MSL slice, both scoring protocols, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import assert_png, assert_user_error, DATA_ROOT, read_metrics, report_plots, run_cli
from symtime_repro.metrics import anomaly as anomaly_scores
from symtime_repro.tasks.anomaly import per_point

DETECT = ["task=anomaly", "dataset=MSL", "model=symtime_tiny", "model.forward_layers=1", "model.stride=8",
          "trainer.epochs=2", "trainer.batch_size=64",
          "trainer.limit_train_batches=8", "trainer.progress=false", f"data.root={DATA_ROOT}"]


@pytest.fixture(scope="module")
def msl_run(tmp_path_factory):
    """One real tiny MSL run (official overlapping scoring), shared by the tests that read what it wrote."""
    run_dir = tmp_path_factory.mktemp("msl") / "run"
    result = run_cli(DETECT, run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def read_scores(run_dir) -> dict:
    with np.load(run_dir / "anomaly_scores.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def test_msl_run_scores_every_overlapping_window(msl_run):
    run_dir = msl_run
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
    # Each point scored once: the saved scores are the scoring's own, and give its numbers again.
    saved = read_scores(run_dir)
    assert "time" not in saved and saved["start"] == 0 and len(saved["energy"]) == saved["copies"] == 4000
    assert saved["energy"].dtype == np.float32 and float(saved["threshold"]) == metrics["threshold"]
    assert np.array_equal(saved["pred"], saved["energy"] > saved["threshold"])
    assert np.array_equal(saved["label"], np.load(DATA_ROOT / "MSL" / "MSL_test_label.npy")[:4000].astype(np.int8))
    assert np.array_equal(saved["adjusted"], anomaly_scores.point_adjust(saved["label"], saved["pred"]))
    rescored = anomaly_scores.binary_scores(saved["label"], saved["adjusted"])
    assert all(rescored[k] == pytest.approx(metrics[k]) for k in ("precision", "recall", "f1", "accuracy"))


def test_the_saved_scores_are_one_per_test_point_and_the_report_draws_them(msl_run, tmp_path):
    metrics = read_metrics(msl_run)
    saved = read_scores(msl_run)
    points = (metrics["test_windows"] - 1) * 1 + 100  # MSL's test windows start at every point
    assert len(saved["energy"]) == len(saved["label"]) == len(saved["pred"]) == len(saved["adjusted"]) == points
    assert saved["copies"] == metrics["test_windows"] * 100  # the energies the scoring thresholded
    assert float(saved["threshold"]) == metrics["threshold"] and str(saved["scoring"]) == "official"
    assert saved["energy"].dtype == np.float32 and np.isfinite(saved["energy"]).all()
    # energy = the largest over the windows holding a point, so "flagged" is "above the threshold".
    assert np.array_equal(saved["pred"], saved["energy"] > saved["threshold"])
    assert saved["label"].sum() > 0 and saved["adjusted"].sum() >= saved["pred"].sum() > 0
    assert (msl_run / "anomaly_scores.npz").stat().st_size < 60_000

    plots = report_plots(msl_run, tmp_path / "report")
    assert_png(plots["run_anomaly_scores.png"], (800, 250))
    assert "### Anomaly energy over time" in (tmp_path / "report" / "report.md").read_text()


def test_per_point_scores_follow_the_windows_holding_each_point():
    # Three windows of 3 at step 1 (points 0-4), the middle one flagged at its last step (point 3).
    energy = np.array([1, 2, 3, 5, 1, 4, 0, 6, 2], dtype=np.float32)
    flag = (energy > 4.5).astype(np.int8)
    time, per, flags = per_point(np.array([0, 1, 2]), 3, energy, {"pred": flag})
    assert time.tolist() == [0, 1, 2, 3, 4]
    assert per.tolist() == [1, 5, 3, 6, 2]  # point 1: windows 0 and 1 gave 2 and 5
    assert flags["pred"].tolist() == [0, 1, 0, 1, 0]
    # A capped test scores a sample of windows: the points not scored are left out, not filled in.
    time, per, _ = per_point(np.array([0, 6]), 3, np.arange(6, dtype=np.float32), {})
    assert time.tolist() == [0, 1, 2, 6, 7, 8] and per.tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("ratio", ["0", "150"])
def test_anomaly_ratio_out_of_range_is_one_clear_line(ratio, tmp_path):
    result = run_cli([*DETECT, f"task.anomaly_ratio={ratio}"], tmp_path / "run")
    assert_user_error(result, f"task.anomaly_ratio is a percent in (0, 100), got {float(ratio)}", tmp_path / "run")
