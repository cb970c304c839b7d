"""Classification end to end on the shipped JapaneseVowels, and its bad input."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from conftest import assert_png, assert_user_error, DATA_ROOT, read_metrics, report_plots, run_cli

CLASSIFY = ["task=classification", "dataset=JapaneseVowels", "model=symtime_tiny", "model.forward_layers=2",
            "model.out_channels=8", "trainer.epochs=3",
            "trainer.lr=0.001", "trainer.progress=false", f"data.root={DATA_ROOT}"]


@pytest.fixture(scope="module")
def vowels_run(tmp_path_factory):
    """One real tiny JapaneseVowels run, shared by the tests that read what it wrote."""
    run_dir = tmp_path_factory.mktemp("vowels") / "run"
    result = run_cli(CLASSIFY, run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def test_japanese_vowels_run_derives_shapes_and_reports_accuracy(vowels_run):
    run_dir = vowels_run
    metrics = read_metrics(run_dir)
    assert metrics["task"] == "classification" and metrics["dataset"] == "JapaneseVowels"
    assert metrics["seq_len"] == 29  # the longest case, derived from the data
    assert metrics["cases"] == 370  # every TEST case scored
    # 9 classes: chance is 0.11; three epochs of a tiny model already separate speakers well.
    assert 0.3 < metrics["accuracy"] <= 1.0
    assert metrics["best_val_accuracy"] == pytest.approx(metrics["accuracy"])  # official: val = TEST
    with open(run_dir / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == metrics["epochs_run"] and "val_accuracy" in rows[0]
    assert all(math.isfinite(float(r["train_loss"])) for r in rows)
    log = (run_dir / "run.log").read_text()
    assert "validation = the TEST split" in log and "device: CPU" in log


def test_test_predictions_give_the_accuracy_and_the_report_draws_the_confusion_matrix(vowels_run, tmp_path):
    metrics = read_metrics(vowels_run)
    with np.load(vowels_run / "test_predictions.npz", allow_pickle=False) as data:
        label, pred, case, classes = data["label"], data["pred"], data["case"], data["classes"]
    assert list(classes) == [str(i) for i in range(1, 10)]  # the .ts file's labels, in class-index order
    assert len(label) == len(pred) == metrics["cases"] == 370 and list(case) == list(range(370))
    # The true classes are TEST's own labels, in file order: the last ':' field of each case line.
    lines = (DATA_ROOT / "JapaneseVowels" / "JapaneseVowels_TEST.ts").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1
    written = [line.rsplit(":", 1)[1].strip() for line in lines[start:] if line.strip()]
    assert [classes[i] for i in label] == written
    counts = np.zeros((9, 9), dtype=int)
    np.add.at(counts, (label, pred), 1)
    assert counts.sum() == 370 and np.trace(counts) / 370 == pytest.approx(metrics["accuracy"])
    assert (vowels_run / "test_predictions.npz").stat().st_size < 4000

    plots = report_plots(vowels_run, tmp_path / "report")
    assert_png(plots["run_confusion.png"])
    assert "### Confusion matrices" in (tmp_path / "report" / "report.md").read_text()


def test_holdout_validation_and_a_longer_window(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli([*CLASSIFY, "trainer.epochs=1", "dataset.validation=holdout", "task.seq_len=40"], run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "validation = the TEST split" not in (run_dir / "run.log").read_text()
    metrics = read_metrics(run_dir)
    assert metrics["cases"] == 370 and metrics["seq_len"] == 40  # extra zero padding, same cases


@pytest.mark.parametrize("args,expected", [
    (["dataset=ETTh1"], "task=classification runs on the UEA datasets"),
    (["task.seq_len=10"], "task.seq_len=10 is shorter than the longest case (29)"),
    (["dataset.validation=sometimes"], "dataset.validation must be test or holdout"),
])
def test_bad_classification_input_is_one_clear_line(args, expected, tmp_path):
    result = run_cli([*CLASSIFY, *args], tmp_path / "run")
    assert_user_error(result, expected, tmp_path / "run")
