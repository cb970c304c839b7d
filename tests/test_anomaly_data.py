"""The anomaly family on the shipped real MSL slice, its windows, and the official scoring functions."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from conftest import DATA_ROOT
from symtime_repro.datasets import anomaly
from symtime_repro.datasets.anomaly import AnomalyWindows
from symtime_repro.errors import UserError
from symtime_repro.metrics import anomaly as anomaly_scores

MSL = DATA_ROOT / "MSL"


def _dataset(name="MSL", path="MSL", source=""):
    return SimpleNamespace(name=name, family="anomaly", path=path, split="official", features="M",
                           target="label", freq="none", source=source)


@pytest.fixture(scope="module")
def msl():
    return anomaly.load(_dataset(), DATA_ROOT)


# --- loader ---------------------------------------------------------------------------------


def test_msl_slice_is_scaled_with_train_statistics(msl):
    raw_train = np.load(MSL / "MSL_train.npy")
    raw_test = np.load(MSL / "MSL_test.npy")
    assert msl.train.shape == (3000, 55) and msl.test.shape == (4000, 55)
    assert msl.train.dtype == np.float32 and msl.test.dtype == np.float32
    np.testing.assert_allclose(msl.train.mean(0), 0, atol=1e-5)
    # Test rows use the train mean/std (sklearn: a constant channel keeps scale 1), not their own.
    std = raw_train.std(0)
    std[std == 0] = 1
    np.testing.assert_allclose(msl.test, (raw_test - raw_train.mean(0)) / std, rtol=1e-5, atol=1e-5)
    assert np.abs(msl.test.mean(0)).max() > 0.1
    # val is the last 20 % of the scaled train (official), not held-out rows.
    assert msl.val.shape == (600, 55)
    np.testing.assert_array_equal(msl.val, msl.train[2400:])
    assert msl.test_labels.dtype == np.int8 and msl.test_labels.shape == (4000,)
    assert set(np.unique(msl.test_labels)) == {0, 1}
    assert msl.info["enc_in"] == 55 and msl.info["test_anomaly_share"] == pytest.approx(449 / 4000)


def test_psm_drops_timestamps_and_zeroes_empty_cells(tmp_path, caplog):
    folder = tmp_path / "PSM"
    folder.mkdir()
    (folder / "train.csv").write_text("timestamp_(min),a,b\n0,1,10\n1,,20\n2,3,30\n")
    (folder / "test.csv").write_text("timestamp_(min),a,b\n5,1,10\n6,2,\n")
    (folder / "test_label.csv").write_text("timestamp_(min),label\n5,0\n6,1\n")
    with caplog.at_level("INFO", logger="symtime_repro.datasets.anomaly"):
        series = anomaly.load(_dataset("PSM", "PSM"), tmp_path)
    assert "train.csv has 1 empty cell(s); set to 0 before scaling, as the official loader does" in caplog.text
    train = np.array([[1, 10], [0, 20], [3, 30]], dtype=float)  # the empty cell became 0
    mean, std = train.mean(0), train.std(0)
    np.testing.assert_allclose(series.train, (train - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(series.test, (np.array([[1, 10], [2, 0]]) - mean) / std, rtol=1e-6)
    assert series.test_labels.tolist() == [0, 1]


def test_swat_label_is_the_last_column(tmp_path):
    folder = tmp_path / "SWaT"
    folder.mkdir()
    (folder / "swat_train2.csv").write_text("s1,s2,Normal/Attack\n1,4,0\n3,8,0\n")
    (folder / "swat2.csv").write_text("s1,s2,Normal/Attack\n2,6,0\n5,4,1\n")
    series = anomaly.load(_dataset("SWaT", "SWaT"), tmp_path)
    assert series.train.shape == (2, 2) and series.test.shape == (2, 2)
    np.testing.assert_allclose(series.test, [[0, 0], [3, -1]], atol=1e-6)
    assert series.test_labels.tolist() == [0, 1]


# --- windows --------------------------------------------------------------------------------


def test_windows_are_official_slices_with_aligned_labels(msl):
    windows = AnomalyWindows(msl.test, msl.test_labels, win=100, step=1)
    assert len(windows) == (4000 - 100) // 1 + 1
    batch = windows[[0, 550, len(windows) - 1]]
    assert batch["x"].shape == (3, 100, 55) and batch["labels"].shape == (3, 100)
    np.testing.assert_array_equal(batch["x"][1].numpy(), msl.test[550:650])
    np.testing.assert_array_equal(batch["labels"][1].numpy(), msl.test_labels[550:650])
    np.testing.assert_array_equal(batch["x"][2].numpy(), msl.test[-100:])
    single = windows[550]
    assert torch.equal(single["x"], batch["x"][1]) and single["labels"][0] == 1
    assert "labels" not in AnomalyWindows(msl.train, None, 100, 1)[[0]]
    with pytest.raises(IndexError):
        windows[len(windows)]


def test_step_100_gives_non_overlapping_windows(msl):
    windows = AnomalyWindows(msl.train, None, win=100, step=100)
    assert len(windows) == 30  # (3000 - 100) // 100 + 1
    stacked = windows[list(range(len(windows)))]["x"].reshape(-1, 55).numpy()
    np.testing.assert_array_equal(stacked, msl.train)
    odd = AnomalyWindows(msl.train[:1050], None, win=100, step=100)
    assert len(odd) == (1050 - 100) // 100 + 1 == 10  # the tail shorter than a window is dropped
    with pytest.raises(UserError, match="shorter than one window of 100 steps; lower task.seq_len"):
        AnomalyWindows(msl.train[:50], None, 100, 1)


# --- point adjustment -----------------------------------------------------------------------


def official_adjustment(gt, pred):
    """A plain transcription of ``adjustment`` in the official utils/tools.py (mutates pred)."""
    anomaly_state = False
    for i in range(len(gt)):
        if gt[i] == 1 and pred[i] == 1 and not anomaly_state:
            anomaly_state = True
            for j in range(i, 0, -1):
                if gt[j] == 0:
                    break
                if pred[j] == 0:
                    pred[j] = 1
            for j in range(i, len(gt)):
                if gt[j] == 0:
                    break
                if pred[j] == 0:
                    pred[j] = 1
        elif gt[i] == 0:
            anomaly_state = False
        if anomaly_state:
            pred[i] = 1
    return gt, pred


def _adjust(gt, pred):
    return anomaly_scores.point_adjust(np.array(gt, dtype=np.int8), np.array(pred, dtype=np.int8)).tolist()


def test_point_adjust_hand_worked():
    # A run with one hit becomes all 1s; a run with no hit stays 0.
    assert _adjust([0, 1, 1, 1, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0, 0, 0]) == [0, 1, 1, 1, 0, 0, 0, 0]
    # False positives outside runs stay; the fill stops at the run's edges.
    assert _adjust([0, 0, 1, 1, 0, 0], [1, 0, 0, 1, 0, 1]) == [1, 0, 1, 1, 0, 1]
    # Index-0 quirk: a run starting at 0 whose first hit is later keeps pred[0] = 0 ...
    assert _adjust([1, 1, 1, 0], [0, 0, 1, 0]) == [0, 1, 1, 0]
    # ... but a hit at index 0 flags the whole run, and a run starting at 1 is filled from 1.
    assert _adjust([1, 1, 1, 0], [1, 0, 0, 0]) == [1, 1, 1, 0]
    assert _adjust([0, 1, 1, 1], [0, 0, 0, 1]) == [0, 1, 1, 1]
    # A run reaching the end of the array, and nothing at all to adjust.
    assert _adjust([0, 0, 1, 1], [0, 0, 1, 0]) == [0, 0, 1, 1]
    assert _adjust([0, 0, 0], [0, 1, 0]) == [0, 1, 0]
    assert _adjust([], []) == []


def _runs(rng, n):
    """0/1 array made of runs of random length (like labels), not independent coin flips."""
    lengths = rng.integers(1, 25, size=n)
    values = np.resize([rng.integers(0, 2), 1], len(lengths))
    values[1::2] = 1 - values[0]
    return np.repeat(values, lengths)[:n].astype(np.int8)


def test_point_adjust_matches_the_official_loop_on_random_runs():
    rng = np.random.default_rng(0)
    for trial in range(200):
        gt = _runs(rng, 300)
        pred = _runs(rng, 300) if trial % 2 else (rng.random(300) < 0.05).astype(np.int8)
        original = pred.copy()
        ours = anomaly_scores.point_adjust(gt, pred)
        np.testing.assert_array_equal(pred, original)  # the input is left alone
        _, expected = official_adjustment(gt.tolist(), pred.tolist())
        assert ours.tolist() == expected, trial
        assert ours.dtype == np.int8


def test_point_adjust_rejects_non_binary_input():
    with pytest.raises(UserError, match="pred must hold only 0 and 1"):
        anomaly_scores.point_adjust(np.zeros(3, np.int8), np.array([0, 2, 1]))
    with pytest.raises(UserError, match="differ in length"):
        anomaly_scores.point_adjust(np.zeros(3, np.int8), np.zeros(4, np.int8))


# --- threshold and scores -------------------------------------------------------------------


def test_threshold_is_the_percentile_of_train_and_test_energies():
    train = np.array([1, 2, 3, 4], dtype=np.float32)
    test = np.array([5, 6, 7, 8, 9, 10], dtype=np.float32)
    # 10 sorted values 1..10; the 90th percentile (ratio 10 %) sits at position 0.9 * 9 = 8.1:
    # 9 + 0.1 * (10 - 9) = 9.1 (numpy's default linear interpolation).
    assert anomaly_scores.threshold(train, test, 10) == pytest.approx(9.1, rel=1e-6)
    # Ratio 50 %: the median of 1..10 = 5.5; ratio 1 %: position 0.99 * 9 = 8.91 -> 9.91.
    assert anomaly_scores.threshold(train, test, 50) == pytest.approx(5.5)
    assert anomaly_scores.threshold(train, test, 1) == pytest.approx(9.91, rel=1e-6)
    # Same value, bit for bit, as the official formula on the concatenation.
    energies = np.random.default_rng(1).random(1001).astype(np.float32)
    assert anomaly_scores.threshold(energies[:400], energies[400:], 1.0) == float(np.percentile(energies, 99.0))
    with pytest.raises(UserError, match=r"task.anomaly_ratio is a percent in \(0, 100\), got 0"):
        anomaly_scores.threshold(train, test, 0)
    with pytest.raises(UserError, match="NaN or inf"):
        anomaly_scores.threshold(train, np.array([np.nan], np.float32), 1)


def test_binary_scores_match_sklearn():
    rng = np.random.default_rng(2)
    cases = [(rng.random(500) < p, rng.random(500) < q) for p, q in ((0.1, 0.05), (0.3, 0.5), (0.5, 0.0))]
    cases.append((np.zeros(50, bool), np.zeros(50, bool)))  # 0/0 everywhere
    cases.append((np.zeros(50, bool), np.ones(50, bool)))
    for gt, pred in cases:
        gt, pred = gt.astype(np.int8), pred.astype(np.int8)
        ours = anomaly_scores.binary_scores(gt, pred)
        # zero_division=0 gives the values of the official default ("warn": warn, then 0) without the warning.
        precision, recall, f1, _ = precision_recall_fscore_support(gt, pred, average="binary", zero_division=0)
        assert ours["accuracy"] == pytest.approx(accuracy_score(gt, pred), abs=1e-15)
        assert ours["precision"] == pytest.approx(precision, abs=1e-15)
        assert ours["recall"] == pytest.approx(recall, abs=1e-15)
        assert ours["f1"] == pytest.approx(f1, abs=1e-15)


def test_binary_scores_hand_worked():
    gt = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], np.int8)
    pred = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], np.int8)  # tp 3, fn 1, fp 1, tn 5
    assert anomaly_scores.binary_scores(gt, pred) == pytest.approx(
        {"accuracy": 0.8, "precision": 0.75, "recall": 0.75, "f1": 0.75})


# --- bad input ------------------------------------------------------------------------------


def _copy_msl(tmp_path):
    shutil.copytree(MSL, tmp_path / "MSL")
    return tmp_path / "MSL"


def test_wrong_length_labels_name_both_lengths(tmp_path):
    folder = _copy_msl(tmp_path)
    np.save(folder / "MSL_test_label.npy", np.zeros(3990, dtype=bool))
    with pytest.raises(UserError, match=r"MSL_test_label.npy holds 3990 labels but the test data .* has 4000 rows"):
        anomaly.load(_dataset(), tmp_path)


def test_channel_mismatch_is_reported(tmp_path):
    folder = _copy_msl(tmp_path)
    np.save(folder / "MSL_test.npy", np.load(MSL / "MSL_test.npy")[:, :54])
    with pytest.raises(UserError, match=r"MSL_train.npy has 55 channels but .*MSL_test.npy has 54"):
        anomaly.load(_dataset(), tmp_path)


def test_missing_file_names_it_and_the_layout(tmp_path):
    folder = _copy_msl(tmp_path)
    (folder / "MSL_test.npy").unlink()
    with pytest.raises(UserError) as err:
        anomaly.load(_dataset(source="https://example.org/tslib"), tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert str(folder / "MSL_test.npy") in message
    assert "MSL_train.npy, MSL_test.npy, MSL_test_label.npy" in message
    assert "TSLib data folder" in message and "https://example.org/tslib" in message


def test_bad_npy_contents_are_reported(tmp_path):
    folder = _copy_msl(tmp_path)
    test = np.load(MSL / "MSL_test.npy")
    test[123, 7] = np.nan
    np.save(folder / "MSL_test.npy", test)
    with pytest.raises(UserError, match=r"MSL_test.npy row 123 holds NaN or inf"):
        anomaly.load(_dataset(), tmp_path)
    np.save(folder / "MSL_test.npy", test[:, 0])
    with pytest.raises(UserError, match=r"MSL_test.npy has shape \(4000,\) but must be \[time, channels\]"):
        anomaly.load(_dataset(), tmp_path)
    np.save(folder / "MSL_test.npy", np.load(MSL / "MSL_test.npy"))
    labels = np.load(MSL / "MSL_test_label.npy").astype(np.int64)
    labels[9] = 2
    np.save(folder / "MSL_test_label.npy", labels)
    with pytest.raises(UserError, match="must be 0 or 1; row 9 holds 2"):
        anomaly.load(_dataset(), tmp_path)
