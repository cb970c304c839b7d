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
from symtime_repro.errors import UserError
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


# -- dataset.validation=holdout: a validation split held out of TRAIN (what a search needs) ---------


def short_term_task(*overrides):
    """The short_term task of a tiny run, built in-process with its splits (no training)."""
    from hydra import compose, initialize_config_dir

    from conftest import REPO
    from symtime_repro.config import register_configs, validate
    from symtime_repro.tasks import make_task

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        keys = {o.split("=", 1)[0] for o in overrides}  # each key once: Hydra takes one value per key
        cfg = compose("config", overrides=[*(a for a in SHORT if a.split("=", 1)[0] not in keys), *overrides])
    task = make_task(validate(cfg))
    return task, task.datasets()


@pytest.mark.parametrize("pattern", ["Hourly", "Weekly"])
def test_holdout_validation_truth_is_the_last_horizon_of_each_series_training_part(pattern):
    task, splits = short_term_task(f"dataset.seasonal_pattern={pattern}", "dataset.validation=holdout")
    split, horizon = m4.load(DATA_ROOT, pattern), m4.get_pattern(pattern).horizon
    assert not type(task).validates_on_test(task.cfg)
    assert len(splits.val) == len(split) == 24  # every shipped series is long enough (Weekly's shortest: 457)
    for row, history in enumerate(split.train):
        item = splits.val[row]
        assert item["holdout_series"].item() == row
        np.testing.assert_array_equal(item["y"][:, 0].numpy(), history[-horizon:].astype(np.float32))
        # Input: the 2H points before the held-out ones, as the test input is cut from the whole part.
        np.testing.assert_array_equal(item["x"][:, 0].numpy(), left_padded(history[:-horizon], 2 * horizon))
        np.testing.assert_array_equal(splits.train.series[row].numpy(), history[:-horizon].astype(np.float32))
    # The test is the one of dataset.validation=test: whole training parts forecast the M4 test horizon.
    _, official = short_term_task(f"dataset.seasonal_pattern={pattern}")
    assert official.val is official.test
    assert type(splits.test) is type(official.test) and splits.test.rows_key == "series"
    assert torch.equal(splits.test.x, official.test.x) and torch.equal(splits.test.y, official.test.y)


def test_no_training_window_reaches_the_held_out_points():
    """Training windows of the real Weekly slice's series (lengths 457…2597), each point's value set
    to its position (1…n): every target and input lies in series[:-H], and cuts reach up to its end."""
    split = m4.load(DATA_ROOT, "Weekly")
    horizon, limit = split.pattern.horizon, split.pattern.window_sampling_limit
    positions = m4.M4Split(split.pattern, split.ids, [np.arange(1.0, len(s) + 1) for s in split.train], split.test)
    holdout = m4.hold_out(positions)
    windows = M4TrainWindows(holdout.training, 2 * horizon, horizon, limit)
    torch.manual_seed(0)
    reached_the_end = 0
    for _ in range(40):
        batch = windows[list(range(len(split)))]
        for row, history in enumerate(split.train):
            last_trained = len(history) - horizon  # position of the last point left in training
            targets = batch["y"][row, :, 0][batch["mask"][row, :, 0] == 1]
            assert targets.numel() == 0 or targets.max().item() <= last_trained
            assert batch["x"][row].max().item() <= last_trained
            reached_the_end += int(targets.numel() > 0 and targets.max().item() == last_trained)
    assert reached_the_end > 0  # the boundary is tight: the last training point is a target
    np.testing.assert_array_equal(holdout.validation.test[:, 0], [len(s) - horizon + 1 for s in split.train])


def test_series_too_short_to_hold_out_a_horizon_are_kept_out_of_validation_and_counted(tmp_path, caplog):
    """The real M4's shortest series keep enough (Yearly: 13 points, H 6); a row of just H + 1 points
    (the loader accepts H) cannot: it is not validated, trains on its whole part, and the log says so."""
    (tmp_path / "m4").mkdir()
    shutil.copy(DATA_ROOT / "m4" / "Weekly-test.csv", tmp_path / "m4" / "Weekly-test.csv")
    shutil.copy(DATA_ROOT / "m4" / "submission-Naive2.csv", tmp_path / "m4" / "submission-Naive2.csv")
    lines = (DATA_ROOT / "m4" / "Weekly-train.csv").read_text().splitlines()
    for number in (1, 4):  # W1 and W4: 14 values (H = 13 + 1); the other cells stay as padding
        cells = lines[number].split(",")
        lines[number] = ",".join(cells[:15] + ['""'] * (len(cells) - 15))
    (tmp_path / "m4" / "Weekly-train.csv").write_text("\n".join(lines) + "\n")
    split = m4.load(tmp_path, "Weekly")
    assert [len(split.train[i]) for i in (0, 3)] == [14, 14]
    with caplog.at_level("INFO"):
        task, splits = short_term_task("dataset.seasonal_pattern=Weekly", "dataset.validation=holdout",
                                       f"data.root={tmp_path}")
    assert task.holdout.too_short == ["W1", "W4"] and len(splits.val) == 22
    assert task.holdout.validation.ids == [i for i in split.ids if i not in ("W1", "W4")]
    np.testing.assert_array_equal(splits.train.series[0].numpy(), split.train[0].astype(np.float32))  # whole
    assert "2 series too short to hold out 13 points and keep 2 (first: W1)" in caplog.text
    assert len(splits.test) == 24  # the test scores every series


def test_no_series_long_enough_to_hold_out_is_one_clear_line():
    split = m4.load(DATA_ROOT, "Weekly")
    short = m4.M4Split(split.pattern, split.ids[:2], [s[:14] for s in split.train[:2]], split.test[:2])
    with pytest.raises(UserError, match="no series has 15 training points or more, so none can hold out its last "
                                        "13 .* use dataset.validation=test"):
        m4.hold_out(short)


@pytest.fixture(scope="module")
def holdout_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("holdout") / "run"
    result = run_cli([*SHORT, "dataset.validation=holdout"], run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def test_a_holdout_run_validates_on_the_held_out_points_and_tests_on_the_m4_test(holdout_run, hourly_run, tmp_path):
    metrics, official = read_metrics(holdout_run), read_metrics(hourly_run)
    log = (holdout_run / "run.log").read_text()
    assert "validation = held out of TRAIN (dataset.validation=holdout): the last 48 training points of 24 series" in log
    assert "validation = the test set (official protocol" in (hourly_run / "run.log").read_text()
    # The validation loss is sMAPE of the held-out points, not the test sMAPE the official run validates on.
    history = list(csv.DictReader(open(holdout_run / "history.csv")))
    assert metrics["best_val_loss"] == pytest.approx(min(float(r["val_loss"]) for r in history))
    assert 0 < metrics["best_val_loss"] < 200 and metrics["best_val_loss"] != pytest.approx(metrics["smape"])
    official_history = list(csv.DictReader(open(hourly_run / "history.csv")))
    assert float(official_history[int(official["best_epoch"]) - 1]["val_loss"]) == pytest.approx(official["smape"])
    # The test: every series, scored as before (the scorer agrees) on the M4 test horizon.
    assert metrics["series"] == 24 and all(math.isfinite(metrics[k]) for k in ("smape", "mase", "owa"))
    hourly = m4_scores(holdout_run / "forecast.csv", tmp_path)["Hourly"]
    for key in ("smape", "mase", "owa"):
        assert hourly[key] == pytest.approx(metrics[key], rel=1e-5)
