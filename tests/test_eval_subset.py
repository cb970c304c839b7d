"""trainer.limit_eval_batches: a seeded sample spread over the split, recorded, marked and kept apart."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA_ROOT, m4_scores, REPO, TINY, read_metrics, run_cli
from symtime_repro import report
from symtime_repro.config import DatasetConfig
from symtime_repro.datasets import csv_series, m4, uea
from symtime_repro.datasets.windows import spread_indices

CAPPED = [*TINY, "trainer.epochs=1", "trainer.limit_train_batches=2", "trainer.limit_eval_batches=1"]
SEED = 2025  # the config's default seed


def test_spread_indices_are_a_seeded_sorted_sample_the_same_every_time():
    picked = spread_indices(2857, 512, SEED)
    assert picked == spread_indices(2857, 512, SEED) == sorted(set(picked)) and len(picked) == 512
    assert picked != list(range(512)) and picked[-1] > 2000  # over the whole split, not its start
    assert picked != spread_indices(2857, 512, SEED + 1)
    assert spread_indices(10, 64, SEED) == list(range(10))  # a cap above the split: all of it


def test_a_capped_test_records_marks_and_spreads_its_sample(tmp_path):
    run_dir = tmp_path / "sweep" / "capped"
    result = run_cli(CAPPED, run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = read_metrics(run_dir)
    assert (metrics["test_samples_scored"], metrics["test_samples_total"], metrics["test_subset"]) == (512, 2857, True)
    assert metrics["test_sample_unit"] == "windows"
    assert "mse              " in result.stdout and "(subset: 512 of 2857 test windows)" in result.stdout
    assert result.stderr.count("the test scored a subset") == 1  # one warning
    # The windows the run kept for plots are windows of the seeded sample, spread over the split.
    (_, _, test), _ = csv_series.window_splits(DatasetConfig(), 96, 24, DATA_ROOT)  # ETTh1
    picked = spread_indices(len(test), 512, SEED)
    kept = np.load(run_dir / "test_samples.npz")["x"]
    for row, position in enumerate(i * 512 // 4 for i in range(4)):
        np.testing.assert_allclose(kept[row], test[picked[position]]["x"].numpy(), rtol=1e-6)
    assert picked[-1] > 2000

    done = subprocess.run([sys.executable, "-m", "symtime_repro.report", str(tmp_path / "sweep")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "subset test: 512 of 2857 test windows" in done.stdout
    with open(tmp_path / "sweep" / "results.csv") as handle:
        row = next(csv.DictReader(handle))
    assert (row["test_subset"], row["test_samples_scored"], row["test_samples_total"]) == ("True", "512", "2857")


def test_a_full_test_says_so_too(trained_run):
    metrics = read_metrics(trained_run)
    assert metrics["test_subset"] is False and metrics["test_samples_scored"] == metrics["test_samples_total"] == 2857


def test_a_capped_classification_test_sees_more_than_one_speaker(tmp_path):
    """JapaneseVowels' TEST file lists its cases speaker by speaker: the first batches are one class."""
    args = ["task=classification", "dataset=JapaneseVowels", "model=symtime_tiny", "model.forward_layers=1",
            "model.out_channels=8", "trainer.epochs=1", "trainer.batch_size=12", "trainer.limit_train_batches=2",
            "trainer.limit_eval_batches=2", "trainer.progress=false", f"data.root={DATA_ROOT}"]
    result = run_cli(args, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = read_metrics(tmp_path / "run")
    assert (metrics["test_samples_scored"], metrics["test_samples_total"], metrics["test_subset"]) == (24, 370, True)
    jv = DatasetConfig(name="JapaneseVowels", family="uea", path="JapaneseVowels", split="official")
    labels = uea.load(jv, DATA_ROOT, SEED).test.labels
    assert len(set(labels[:24].tolist())) == 1  # what the first two batches held
    assert len(set(labels[spread_indices(370, 24, SEED)].tolist())) > 3
    assert "(subset: 24 of 370 test cases)" in result.stdout
    # The confusion matrix's file names the cases scored and holds their own labels.
    with np.load(tmp_path / "run" / "test_predictions.npz") as saved:
        assert saved["case"].tolist() == spread_indices(370, 24, SEED)
        assert saved["label"].tolist() == labels[saved["case"]].tolist()


def test_a_capped_m4_test_scores_its_series_against_their_own_naive2_and_is_no_submission(tmp_path):
    run_dir = tmp_path / "run"
    args = ["task=short_term", "dataset.seasonal_pattern=Hourly", "model=symtime_tiny", "model.forward_layers=1",
            "trainer.epochs=1", "trainer.batch_size=8", "trainer.limit_eval_batches=1", "trainer.progress=false",
            f"data.root={DATA_ROOT}"]
    result = run_cli(args, run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = read_metrics(run_dir)
    assert (metrics["series"], metrics["test_samples_scored"], metrics["test_samples_total"]) == (8, 8, 24)
    assert not (run_dir / "forecast.csv").exists() and "not a full M4 submission" in result.stderr
    ids = m4.load(DATA_ROOT, "Hourly").ids
    with open(run_dir / "forecast_subset.csv") as handle:
        written = [row[0] for row in csv.reader(handle)][1:]
    assert written == [ids[i] for i in spread_indices(24, 8, SEED)] != ids[:8]
    with np.load(run_dir / "test_samples.npz") as saved:  # the plotted series are among those scored
        assert len(saved["series"]) == 4 and set(saved["series"].tolist()) <= set(written)
    # The scorer, given those series, agrees: the run scored them against their own truth and Naive2.
    hourly = m4_scores(run_dir / "forecast_subset.csv", tmp_path)["Hourly"]
    for key in ("smape", "mase", "owa"):
        assert hourly[key] == pytest.approx(metrics[key], rel=1e-5)


def test_a_re_evaluation_records_the_config_it_ran_and_the_report_labels_it(trained_run, tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "trained").symlink_to(trained_run)
    run_dir = tree / "reeval"
    # The command line's model is the default base model (d_ff 2048); the checkpoint's is d_ff 64.
    result = run_cli(["mode=test", f"ckpt={trained_run / 'checkpoint.pt'}", f"data.root={DATA_ROOT}",
                      "trainer.progress=false"], run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    import yaml

    ran = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (ran["model"]["d_ff"], ran["task"]["pred_len"], ran["mode"]) == (64, 24, "test")
    assert yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["model"]["d_ff"] == 2048

    text = report.write_report(tree).markdown_path.read_text()
    row = next(line for line in text.splitlines() if "re-evaluation (mode=test) of" in line)
    assert "d_ff" not in row and "mode=test" in row
    # The paper's average beside ours counts the trained model once, not its re-evaluation as another row.
    average = next(line for line in text.splitlines() if line.startswith("| paper: average"))
    assert "plain mean of our 1 row(s): ETTh1 pred_len=24 ckpt=None" in average


def test_a_refused_run_writes_no_config(tmp_path):
    result = run_cli([*TINY, "model.forward_layers=9"], tmp_path / "run")
    assert result.returncode == 2
    assert not (tmp_path / "run" / "config.yaml").exists()
