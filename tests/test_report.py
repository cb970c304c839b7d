"""`python -m symtime_repro.report`: run dirs in, report.md / results.csv / plots out."""

from __future__ import annotations

import ast
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, read_metrics, run_cli, TINY
from symtime_repro import report

ECL_LOGGED_MSE = 0.16191181540489197  # symtime_repo_logged_results.csv: long_term ECL pred_len=96 (seq_len=96)
ECL_LOGGED_MAE = 0.25291380286216736
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAILED_LOG = ("[2026-11-25 07:56:08,164][symtime_repro][ERROR] error: dataset ECL: file not found: "
              "data/electricity/electricity.csv. Fetch it with: python -m symtime_repro.data download ECL\n")

needs_matplotlib = pytest.mark.skipif(report.load_matplotlib() is None,
                                      reason="matplotlib is not installed (pip install matplotlib)")


def write_run(folder: Path, task: str, dataset: str, seed: int, config: dict | None = None, **values) -> Path:
    """A run dir as symtime_repro.run writes it: metrics.json, history.csv, and .hydra/ when given."""
    folder.mkdir(parents=True)
    metrics = {**values, "task": task, "dataset": dataset, "mode": "train", "device": "cpu",
               "device_name": "CPU test", "epochs_run": 2, "train_seconds": 1.5, "test_seconds": 0.5,
               "train_samples_per_second": 100.0, "peak_memory_mb": 321.0, "model": "symtime", "seed": seed,
               "status": "completed"}
    metrics.setdefault("seq_len", 96)
    metrics.setdefault("pred_len", 0)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "history.csv").write_text("epoch,train_loss,val_loss,lr,seconds\n1,0.9,1.1,0.0001,0.4\n"
                                        "2,0.7,1.0,0.0001,0.4\n")
    if config is not None:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump({**config, "seed": seed}))
    return folder


def write_samples(folder: Path, imputation: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 96, 3)).astype(np.float32)
    y = rng.normal(size=(4, 96 if imputation else 24, 3)).astype(np.float32)
    arrays = dict(x=x, y=y, pred=y + 0.1, columns=np.array(["HUFL", "MUFL", "OT"]))
    if imputation:
        arrays["mask"] = rng.random(size=y.shape) < 0.25
    np.savez_compressed(folder / "test_samples.npz", **arrays)


@pytest.fixture()
def tree(tmp_path) -> Path:
    """Two seeds of ECL pred_len=96, another horizon, an imputation and a classification run, one
    failed and one unfinished run."""
    root = tmp_path / "runs"
    write_run(root / "ecl96" / "0", "long_term", "ECL", 1, mse=0.15, mae=0.25, pred_len=96)
    write_run(root / "ecl96" / "1", "long_term", "ECL", 2, mse=0.17, mae=0.27, pred_len=96)
    write_samples(root / "ecl96" / "0", imputation=False)
    # seq_len 336: the logged result for pred_len=192 was taken with seq_len 96, so no match.
    write_run(root / "ecl192", "long_term", "ECL", 1, mse=0.2, mae=0.3, pred_len=192, seq_len=336)
    imputation = write_run(root / "imp", "imputation", "ETTh1", 1, {"task": {"name": "imputation", "mask_ratio": 0.25}},
                           mse=0.05, mae=0.15)
    write_samples(imputation, imputation=True)
    write_run(root / "cls", "classification", "JapaneseVowels", 1, accuracy=0.75)
    failed = root / "failed"
    (failed / ".hydra").mkdir(parents=True)
    (failed / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "long_term", "pred_len": 96},
                                                                   "dataset": {"name": "ECL"}}))
    (failed / "run.log").write_text("[x][symtime_repro.device][INFO] device: CPU\n" + FAILED_LOG)
    (root / "unfinished" / ".hydra").mkdir(parents=True)
    return root


def read_results(path: Path) -> dict[str, dict]:
    with open(path, newline="") as handle:
        return {row["run_dir"]: row for row in csv.DictReader(handle)}


def test_tables_aggregate_seeds_and_compare_with_the_logged_reference(tree, capsys):
    assert report.main([str(tree)]) == 0
    text = (tree / "report.md").read_text()
    # ECL pred_len=96: mean ± sample std of 0.15 and 0.17 over n=2, then reference and ours − reference.
    ecl = next(line for line in text.splitlines() if line.startswith("| ECL | pred_len=96 |"))
    cells = [c.strip() for c in ecl.strip("|").split("|")]
    assert cells[:7] == ["ECL", "pred_len=96", "96", "2", "0.1600 ± 0.0141", "0.2600 ± 0.0141", "0.1619"]
    assert cells[7] == f"{0.16 - ECL_LOGGED_MSE:+.4f}" == "-0.0019"
    assert cells[8:] == ["0.2529", f"{0.26 - ECL_LOGGED_MAE:+.4f}"]
    ecl192 = next(line for line in text.splitlines() if line.startswith("| ECL | pred_len=192 |"))
    assert "| 336 | 1 | 0.2000 | 0.3000 | – | – | – | – |" in ecl192  # seq_len differs: no reference
    assert "| ETTh1 | mask_ratio=0.25 | 1 | 0.0500 | 0.1500 |" in text
    # Classification in percent, beside the paper's average (74.9), labelled as not like-for-like.
    assert "Metrics in percent" in text and "| JapaneseVowels |  | 1 | 75.00 |" in text
    assert ("| paper: average (datasets not named in figure) | accuracy | 74.90 | 75.00 | +0.10 "
            "| not like-for-like") in text
    # The failed and the unfinished run are listed, with their reasons.
    assert "| failed | failed | long_term | ECL | pred_len=96 | error: dataset ECL: file not found" in text
    assert "| unfinished | running or killed | ? | ? |  | no metrics.json and no run.log |" in text
    # Device table: wall time falls back to train + test seconds.
    assert "| ecl96/0 | long_term | ECL | pred_len=96 | 1 | CPU test | 100.0 | 321.0 | 2.0 | 2 |" in text
    out = capsys.readouterr().out
    assert "| ECL | pred_len=96 |" in out and out.rstrip().endswith(f"report: {tree / 'report.md'}")


def test_results_csv_has_one_row_per_run_with_reference_and_difference(tree, tmp_path):
    out = tmp_path / "elsewhere"
    assert report.main([str(tree), "--out", str(out)]) == 0
    assert not (tree / "report.md").exists()  # --out is honoured
    rows = read_results(out / "results.csv")
    assert set(rows) == {"ecl96/0", "ecl96/1", "ecl192", "imp", "cls", "failed", "unfinished"}
    first = rows["ecl96/0"]
    assert (first["status"], first["setting"], first["seq_len"], first["seed"]) == (
        "completed", "pred_len=96", "96", "1")
    assert float(first["mse"]) == 0.15 and float(first["mse_reference"]) == ECL_LOGGED_MSE
    assert float(first["mse_difference"]) == pytest.approx(0.15 - ECL_LOGGED_MSE)
    assert "repo run log" in first["reference_source"]
    assert rows["ecl192"]["mse_reference"] == ""
    assert rows["cls"]["unit"] == "percent" and float(rows["cls"]["accuracy"]) == pytest.approx(75.0)
    assert rows["failed"]["status"] == "failed" and "file not found" in rows["failed"]["reason"]
    assert rows["unfinished"]["status"] == "running or killed"


@needs_matplotlib
def test_plots_are_real_pngs_linked_from_the_report(tree):
    assert report.main([str(tree)]) == 0
    text = (tree / "report.md").read_text()
    plots = sorted((tree / "plots").glob("*.png"))
    names = {p.name for p in plots}
    expected = {"ecl96_0_loss.png", "ecl96_0_test_windows.png", "imp_test_windows.png", "long_term_vs_reference.png"}
    assert expected <= names
    assert "ecl192_test_windows.png" not in names  # no test_samples.npz there
    for path in plots:
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 5000, path.name
        assert f"](plots/{path.name})" in text


def test_without_matplotlib_the_report_says_how_to_get_plots(tree, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    assert report.main([str(tree)]) == 0
    assert report.NO_MATPLOTLIB_NOTE in (tree / "report.md").read_text()
    assert "pip install matplotlib" in report.NO_MATPLOTLIB_NOTE
    assert not (tree / "plots").exists()


def test_runs_that_differ_in_more_than_seed_are_separate_rows(tmp_path):
    base = {"task": {"name": "long_term", "seq_len": 96, "pred_len": 96}, "dataset": {"name": "ETTh1"}}
    for i, d_model in enumerate((32, 32, 64)):
        write_run(tmp_path / f"r{i}", "long_term", "ETTh1", i, {**base, "model": {"d_model": d_model}},
                  mse=0.4 + i / 10, mae=0.4, pred_len=96)
    groups = report.group_runs(report.collect_runs(tmp_path), report.load_references())
    assert [(g.variant, len(g.runs)) for g in groups] == [("model.d_model=32", 2), ("model.d_model=64", 1)]
    assert groups[0].stats["mse"][0] == pytest.approx(0.45) and groups[1].stats["mse"][1] is None


@pytest.mark.parametrize("ours, seq_len, reference, expected", [
    ("pred_len=96", 96, "pred_len=96 (seq_len=96)", True),
    ("pred_len=96", 336, "pred_len=96 (seq_len=96)", False),
    ("pred_len=192", 96, "pred_len=96 (seq_len=96)", False),
    ("mask_ratio=0.5", 96, "mask_ratio=0.50", True),
    ("Yearly", 12, "yearly", True),
    ("Hourly", 96, "Others", False),
])
def test_setting_matching(ours, seq_len, reference, expected):
    assert report.setting_matches(ours, seq_len, reference) is expected


def test_failure_reason_takes_the_last_error_line():
    traceback = "Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: CUDA out of memory\n"
    assert report.failure_reason(traceback) == "RuntimeError: CUDA out of memory"
    assert report.failure_reason(FAILED_LOG).startswith("error: dataset ECL: file not found")
    assert report.failure_reason("[t][x][INFO] epoch 1: train loss 0.5\n") is None


def _one_error_line(capsys, argv) -> str:
    assert report.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err
    return lines[0]


def test_bad_input_is_one_error_line(tmp_path, capsys):
    assert "no such folder" in _one_error_line(capsys, [str(tmp_path / "nope")])
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert "no run dirs under" in _one_error_line(capsys, [str(tmp_path / "empty")])
    broken = tmp_path / "broken" / "run"
    broken.mkdir(parents=True)
    (broken / "metrics.json").write_text('{"mse": 0.1, ')
    assert f"cannot read {broken / 'metrics.json'}" in _one_error_line(capsys, [str(tmp_path / "broken")])
    assert "no such folder" in _one_error_line(capsys, [str(broken.parent), "--reference", str(tmp_path / "x")])


def test_a_real_tiny_run_reported_through_the_command_line(tmp_path):
    run_dir = tmp_path / "sweep" / "run"
    result = run_cli([*TINY, "trainer.epochs=1", "trainer.limit_train_batches=2", "trainer.limit_eval_batches=2"],
                     run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = read_metrics(run_dir)

    done = subprocess.run([sys.executable, "-m", "symtime_repro.report", str(tmp_path / "sweep")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| ETTh1 | pred_len=24 | 96 | 1 |" in done.stdout and "report.md" in done.stdout
    row = read_results(tmp_path / "sweep" / "results.csv")["run"]
    assert row["status"] == "completed" and math.isclose(float(row["mse"]), metrics["mse"])
    assert row["device_name"] == metrics["device_name"]

    missing = subprocess.run([sys.executable, "-m", "symtime_repro.report", str(tmp_path / "nope")], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no such folder")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_a_task_the_report_does_not_know_is_reported_with_its_recorded_metrics(tmp_path):
    """A sixth task needs no change here: its runs say which metrics.json keys are its test metrics."""
    write_run(tmp_path / "a", "forecast_v2", "ETTh1", 1, crps=0.30, test_metrics=["crps"])
    write_run(tmp_path / "b", "forecast_v2", "ETTh1", 2, crps=0.34, test_metrics=["crps"])
    result = report.write_report(tmp_path)
    text = result.markdown_path.read_text()
    assert "## forecast_v2" in text and "| ETTh1 |" in text and "0.3200 ± 0.0283" in text
    with open(result.csv_path) as handle:
        assert sorted(float(r["crps"]) for r in csv.DictReader(handle)) == [0.30, 0.34]


def test_a_short_term_sweep_summary_is_compared_like_for_like(tmp_path):
    """scores.json (the M4 scorer's summary of a sweep) sits beside the logged "Others" and the paper's
    M4 average, which are the same aggregates."""
    write_run(tmp_path / "0_short_term_M4", "short_term", "M4", 2025, smape=12.0, mase=1.0, owa=0.9,
              seasonal_pattern="Hourly")
    summary = {"Hourly": {"smape": 12.0, "mase": 1.0, "owa": 0.9, "series": 414},
               "Others": {"smape": 5.0, "mase": 3.5, "owa": 1.1, "series": 4773},
               "Average": {"smape": 12.5, "mase": 1.7, "owa": 0.9, "series": 100000}}
    (tmp_path / "scores.json").write_text(json.dumps(summary))
    text = report.write_report(tmp_path).markdown_path.read_text()
    assert "### M4 summary (scores.json)" in text
    assert "| Others | 4773 | 5.000 | 3.500 | 1.100 | smape 4.941, mase 3.327, owa 1.045 | " \
           "smape +0.059, mase +0.173, owa +0.055 |" in text
    assert "| Average | 100000 | 12.500 | 1.700 | 0.900 | owa 0.849 | owa +0.051 |" in text


def test_subset_tested_runs_are_marked_and_kept_from_every_reference_comparison(tmp_path):
    write_run(tmp_path / "full", "long_term", "ECL", 1, mse=0.15, mae=0.25, pred_len=96, test_subset=False,
              test_samples_scored=5165, test_samples_total=5165, test_sample_unit="windows")
    write_run(tmp_path / "capped", "long_term", "ECL", 1, mse=0.9, mae=0.9, pred_len=96, test_subset=True,
              test_samples_scored=1024, test_samples_total=5165, test_sample_unit="windows")
    result = report.write_report(tmp_path)
    text = result.markdown_path.read_text()
    capped = next(line for line in text.splitlines() if "subset test: 1024 of 5165 test windows" in line)
    assert "0.9000" in capped and f"{ECL_LOGGED_MSE:.4f}" not in capped  # no reference, no Δ
    full = next(line for line in text.splitlines() if line.startswith("| ECL |") and "0.1500" in line)
    assert f"{ECL_LOGGED_MSE:.4f}" in full
    average = next(line for line in text.splitlines() if line.startswith("| paper: average") and "| mse |" in line)
    assert "| 0.1500 |" in average and "of our 1 row(s)" in average
    rows = read_results(result.csv_path)
    assert rows["capped"]["test_subset"] == "True" and rows["capped"]["mse_reference"] == ""
    assert rows["full"]["test_subset"] == "False" and float(rows["full"]["mse_reference"]) == ECL_LOGGED_MSE


def test_bench_dirs_are_listed_apart_not_as_failed_runs(tmp_path):
    outputs = tmp_path / "outputs"
    bench = subprocess.run([sys.executable, "-m", "symtime_repro.bench", *TINY, "bench.warmup=0", "bench.steps=1",
                            "bench.matmul_size=64", f"hydra.run.dir={outputs / 'bench' / 'long_term' / 'ETTh1' / 't'}"],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr[-2000:]
    killed = outputs / "bench" / "long_term" / "ETTh1" / "killed"  # a bench that never wrote bench.json
    (killed / ".hydra").mkdir(parents=True)
    (killed / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"name": "bench"}}}))
    (killed / "run.log").write_text("[t][symtime_repro.bench][INFO] timing\n")
    write_run(outputs / "long_term" / "run", "long_term", "ETTh1", 1, mse=0.4, mae=0.4, pred_len=96)
    text = report.write_report(outputs).markdown_path.read_text()
    assert "1 run dir(s): 1 completed; 2 bench dir(s), listed apart" in text
    assert "None: every run dir holds a completed metrics.json." in text
    section = text.split("## Benchmarks")[1]
    assert "| bench/long_term/ETTh1/t | long_term | ETTh1 |" in section
    assert "| bench/long_term/ETTh1/killed | – | – | no bench.json" in section
    assert set(read_results(outputs / "results.csv")) == {"long_term/run"}


@needs_matplotlib
def test_a_one_epoch_loss_plot_shows_its_values_and_the_bar_legend_covers_no_bar(tree, tmp_path, monkeypatch):
    figures = {}
    monkeypatch.setattr(report.plots, "_save", lambda figure, path: figures.setdefault(path.name, figure))
    one = write_run(tmp_path / "one", "long_term", "ETTh1", 1, mse=0.4, mae=0.4, pred_len=96)
    (one / "history.csv").write_text("epoch,train_loss,val_loss,lr,seconds\n1,0.6398,1.187,0.0001,0.4\n")
    Figure = report.load_matplotlib()
    report.plot_history(Figure, report.read_run(one, tmp_path), tmp_path / "one_loss.png")
    ax = figures["one_loss.png"].axes[0]
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > 1.187  # not a zoom around a point
    assert list(ax.get_xticks()) == [1]
    assert {t.get_text() for t in ax.texts} == {"0.6398", "1.187"}

    assert report.main([str(tree)]) == 0
    bars = figures["long_term_vs_reference.png"]
    assert all(ax.get_legend() is None for ax in bars.axes) and len(bars.legends) == 1


@needs_matplotlib
def test_a_short_loss_plot_has_whole_epoch_ticks_the_best_epoch_and_a_log_axis_when_needed(tmp_path, monkeypatch):
    figures = {}
    monkeypatch.setattr(report.plots, "_save", lambda figure, path: figures.setdefault(path.name, figure))
    Figure = report.load_matplotlib()
    three = write_run(tmp_path / "three", "classification", "JapaneseVowels", 1, accuracy=0.8, best_epoch=2,
                      monitor="accuracy")
    (three / "history.csv").write_text("epoch,train_loss,val_loss,val_accuracy,lr,seconds\n"
                                       "1,2.2,2.1,0.5,0.001,1\n2,2.0,1.9,0.8,0.001,1\n3,1.9,1.95,0.7,0.001,1\n")
    report.plot_history(Figure, report.read_run(three, tmp_path), tmp_path / "three_loss.png")
    ax = figures["three_loss.png"].axes[0]
    assert list(ax.get_xticks()) == [1, 2, 3] and ax.get_yscale() == "linear"
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["train loss", "validation loss", "best epoch 2 (by validation accuracy)"]

    steep = write_run(tmp_path / "steep", "long_term", "ETTh1", 1, mse=0.4, mae=0.4, best_epoch=4, monitor="loss")
    rows = "".join(f"{e},{10.0 ** (1 - e)},{2 * 10.0 ** (1 - e)},0.0001,1\n" for e in range(1, 5))
    (steep / "history.csv").write_text("epoch,train_loss,val_loss,lr,seconds\n" + rows)  # 10 down to 0.01
    report.plot_history(Figure, report.read_run(steep, tmp_path), tmp_path / "steep_loss.png")
    ax = figures["steep_loss.png"].axes[0]
    assert ax.get_yscale() == "log" and list(ax.get_xticks()) == [1, 2, 3, 4]
    assert "best epoch 4" in ax.get_legend_handles_labels()[1]


def test_a_transfer_evaluation_is_marked_and_kept_from_the_datasets_references(tmp_path):
    write_run(tmp_path / "trained", "long_term", "ECL", 1, mse=0.15, mae=0.25, pred_len=96)
    transfer = write_run(tmp_path / "transfer", "long_term", "ECL", 1, mse=0.6, mae=0.5, pred_len=96,
                         trained_on="Weather", transfer_evaluation=True, ckpt="runs/weather/checkpoint.pt")
    metrics = json.loads((transfer / "metrics.json").read_text())
    (transfer / "metrics.json").write_text(json.dumps({**metrics, "mode": "test"}))
    result = report.write_report(tmp_path)
    text = result.markdown_path.read_text()
    row = next(line for line in text.splitlines() if "transfer evaluation: a model trained on Weather" in line)
    assert "0.6000" in row and f"{ECL_LOGGED_MSE:.4f}" not in row  # no reference, no Δ
    average = next(line for line in text.splitlines() if line.startswith("| paper: average") and "| mse |" in line)
    assert "| 0.1500 |" in average and "of our 1 row(s)" in average  # the ECL model alone
    rows = read_results(result.csv_path)
    assert rows["transfer"]["mse_reference"] == "" and float(rows["trained"]["mse_reference"]) == ECL_LOGGED_MSE


def test_only_task_facts_names_a_task():
    """Every task-specific choice of the report lives in report/task_facts.py, so that it can be re-backed
    by facts each task declares: no other report module holds a task name as a string."""
    package = REPO / "symtime_repro" / "report"
    tasks = {"long_term", "short_term", "imputation", "classification", "anomaly"}
    named = [f"{path.name}:{node.lineno} {node.value!r}" for path in sorted(package.glob("*.py"))
             if path.name != "task_facts.py" for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Constant) and node.value in tasks]
    assert named == []


def test_the_report_imports_without_torch():
    """The report runs where only results were copied: importing it must not need torch."""
    code = "import sys, symtime_repro.report; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60).returncode == 0
