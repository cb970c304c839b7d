"""Short-term forecasting on the shipped M4 slice: loss, window sampling, a real run, bad input."""

from __future__ import annotations

import csv
import math
import shutil

import numpy as np
import pytest
import torch

from conftest import assert_png, assert_user_error, DATA_ROOT, m4_scores, read_metrics, report_plots, run_cli
from symtime_repro.datasets import m4
from symtime_repro.tasks.short_term import M4LastWindows, M4TrainWindows, left_padded, smape_loss

SHORT = ["task=short_term", "dataset.seasonal_pattern=Hourly", "model=symtime_tiny", "model.forward_layers=1",
         "trainer.epochs=2", "trainer.batch_size=8",
         "trainer.progress=false", f"data.root={DATA_ROOT}"]


def test_smape_loss_by_hand():
    forecast = torch.tensor([[1.0, 3.0, 0.0, 5.0]], requires_grad=True)
    target = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last point lies past the series' end
    # terms: 0/2, 2/4, 0/0 -> 0, masked; mean over all 4 points
    loss = smape_loss(forecast, target, mask)
    assert loss.item() == pytest.approx(200 * (0 + 0.5 + 0 + 0) / 4)
    loss.backward()
    # The denominator is held constant: d/df |f - y| / (|f| + |y|) = sign(f - y) / (|f| + |y|) * mask.
    assert forecast.grad[0, 1].item() == pytest.approx(200 / 4 * 1 / 4)
    assert forecast.grad[0, 3].item() == 0.0


def test_training_windows_follow_the_official_sampling():
    series = np.arange(1, 101, dtype=np.float64)  # values 1..100
    windows = M4TrainWindows([series], input_len=12, horizon=6, sampling_limit=9)
    torch.manual_seed(0)
    cuts = set()
    for _ in range(200):
        item = windows[[0]]
        x, y, mask = item["x"][0, :, 0], item["y"][0, :, 0], item["mask"][0, :, 0]
        cut = int(x[-1].item())  # x ends right before the cut: its last value is series[cut - 1] = cut
        cuts.add(cut)
        assert torch.equal(x, torch.arange(cut - 11, cut + 1, dtype=torch.float32))
        left = min(6, 100 - cut)
        assert torch.equal(y[:left], torch.arange(cut + 1, cut + 1 + left, dtype=torch.float32))
        assert mask.sum().item() == left and (y[left:] == 0).all()
    assert cuts == set(range(91, 100))  # cut points in [n - limit, n)


def test_cut_in_the_first_horizon_gives_an_empty_target_as_officially():
    windows = M4TrainWindows([np.arange(1.0, 21.0)], input_len=12, horizon=6, sampling_limit=100)
    torch.manual_seed(0)
    seen_empty = seen_full = False
    for _ in range(100):
        item = windows[[0]]
        cut = int((item["x"][0, :, 0] != 0).sum())  # the history before the cut: values 1..cut
        empty = item["mask"].sum().item() == 0
        assert empty == (cut < 6)
        seen_empty, seen_full = seen_empty or empty, seen_full or not empty
    assert seen_empty and seen_full


def test_short_histories_are_zero_padded_on_the_left():
    windows = M4TrainWindows([np.array([5.0, 6.0, 7.0])], input_len=4, horizon=2, sampling_limit=100)
    torch.manual_seed(1)
    x = windows[0]["x"][:, 0]
    assert (x[: 4 - int((x != 0).sum())] == 0).all()
    assert left_padded(np.array([1.0, 2.0]), 4).tolist() == [0, 0, 1, 2]
    assert left_padded(np.arange(10.0), 4).tolist() == [6, 7, 8, 9]


def test_test_inputs_are_the_last_two_horizons_of_training():
    split = m4.load(DATA_ROOT, "Hourly")
    last = M4LastWindows(split, 96)
    assert len(last) == len(split) == 24
    np.testing.assert_allclose(last[3]["x"][:, 0].numpy(), split.train[3][-96:].astype(np.float32))
    np.testing.assert_allclose(last[3]["y"][:, 0].numpy(), split.test[3].astype(np.float32))


@pytest.fixture(scope="module")
def hourly_run(tmp_path_factory):
    """One real tiny M4 Hourly run, shared by the tests that read what it wrote."""
    run_dir = tmp_path_factory.mktemp("hourly") / "run"
    result = run_cli(SHORT, run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def test_m4_run_reports_and_saves_forecasts_the_scorer_agrees_with(hourly_run, tmp_path):
    run_dir = hourly_run
    metrics = read_metrics(run_dir)
    assert metrics["task"] == "short_term" and metrics["seasonal_pattern"] == "Hourly"
    assert (metrics["seq_len"], metrics["pred_len"], metrics["series"]) == (96, 48, 24)
    assert all(math.isfinite(metrics[k]) and metrics[k] > 0 for k in ("smape", "mase", "owa"))
    assert metrics["smape"] < 200  # sMAPE is bounded by 200
    for name in ("history.csv", "run.log", "checkpoint.pt", "forecast.csv"):
        assert (run_dir / name).is_file(), name
    with open(run_dir / "forecast.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:2] == ["id", "F1"] and len(rows) == 25 and rows[1][0] == "H1"
    # The standalone scorer reads the saved forecasts and gives the run's numbers.
    hourly = m4_scores(run_dir / "forecast.csv", tmp_path)["Hourly"]
    for key in ("smape", "mase", "owa"):
        assert hourly[key] == pytest.approx(metrics[key], rel=1e-5)


def test_a_few_series_are_saved_with_history_truth_and_forecast_and_plotted(hourly_run, tmp_path):
    with np.load(hourly_run / "test_samples.npz", allow_pickle=False) as data:
        saved = {key: data[key] for key in data.files}
    assert saved["series"].tolist() == ["H1", "H7", "H13", "H19"]  # spread over the 24 series
    assert saved["x"].shape == (4, 96, 1) and saved["y"].shape == saved["pred"].shape == (4, 48, 1)
    split = m4.load(DATA_ROOT, "Hourly")
    with open(hourly_run / "forecast.csv") as handle:
        forecasts = {row[0]: [float(v) for v in row[1:49]] for row in list(csv.reader(handle))[1:]}
    for i, name in enumerate(saved["series"]):
        row = split.ids.index(name)
        assert np.allclose(saved["y"][i, :, 0], split.test[row])
        assert np.allclose(saved["pred"][i, :, 0], forecasts[name], rtol=1e-6)
        history = split.train[row][-96:]
        assert np.allclose(saved["x"][i, 96 - len(history):, 0], history)
        assert np.isnan(saved["x"][i, :96 - len(history), 0]).all()  # padding is not data

    plots = report_plots(hourly_run, tmp_path / "report")
    assert_png(plots["run_test_windows.png"], (600, 400))


@pytest.mark.parametrize("args,expected", [
    (["dataset.seasonal_pattern=Biweekly"], "unknown M4 seasonal pattern 'Biweekly'"),
    (["dataset=ETTh1"], "task=short_term runs on M4 (dataset=M4), not dataset=ETTh1"),
    (["task.pred_len=24"], "task.pred_len=24 but M4 Hourly has horizon 48"),
])
def test_bad_short_term_input_is_one_clear_line(args, expected, tmp_path):
    result = run_cli([*SHORT, *args], tmp_path / "run")
    assert_user_error(result, expected, tmp_path / "run")


def test_missing_naive2_is_named_before_training(tmp_path):
    (tmp_path / "m4").mkdir()
    for name in ("Hourly-train.csv", "Hourly-test.csv"):
        shutil.copy(DATA_ROOT / "m4" / name, tmp_path / "m4" / name)
    result = run_cli([*SHORT, f"data.root={tmp_path}"], tmp_path / "run")
    assert_user_error(result, f"file not found: {tmp_path / 'm4' / 'submission-Naive2.csv'}. Fetch it with: "
                              f"python -m symtime_repro.data download M4 --root {tmp_path}", tmp_path / "run")
    assert "training:" not in result.stderr  # stopped before any work
