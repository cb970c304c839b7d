"""The command line end to end, on the shipped ETTh1, exactly as a user runs it."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from conftest import assert_user_error, DATA_ROOT, read_metrics, REPO, run_cli, TINY

CONTRACT_KEYS = {"mse", "mae", "task", "dataset", "mode", "device", "epochs_run", "train_seconds",
              "train_samples_per_second", "peak_memory_mb"}


def test_training_run_writes_every_contract_file(trained_run):
    for name in ("metrics.json", "history.csv", "run.log", "checkpoint.pt", ".hydra/config.yaml"):
        assert (trained_run / name).is_file(), name
    metrics = read_metrics(trained_run)
    assert CONTRACT_KEYS <= metrics.keys()
    assert metrics["task"] == "long_term" and metrics["dataset"] == "ETTh1" and metrics["mode"] == "train"
    assert metrics["device"] == "cpu"
    assert math.isfinite(metrics["mse"]) and math.isfinite(metrics["mae"])
    # A 1-layer model trained on 24 batches must beat predicting zeros (mse 1 in scaled space)
    # but can't be perfect: a sanity band around real learning.
    assert 0.05 < metrics["mse"] < 1.0 and 0.05 < metrics["mae"] < 1.0
    assert metrics["train_samples_per_second"] > 0 and metrics["peak_memory_mb"] > 0

    with open(trained_run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == metrics["epochs_run"] == 2
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(math.isfinite(float(r["train_loss"])) and math.isfinite(float(r["val_loss"])) for r in rows)
    # Official type1: the rate set after epoch 1 is the base rate; halving starts with epoch 3.
    assert float(rows[0]["lr"]) == float(rows[1]["lr"]) == pytest.approx(1e-4)

    log = (trained_run / "run.log").read_text()
    assert "device: CPU" in log and "trainer.limit_train_batches=12" in log and "test: mse" in log
    assert "model.pretrained is null" in log  # the from-scratch warning

    ckpt = torch.load(trained_run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "epoch", "config"} <= ckpt.keys()
    assert ckpt["epoch"] == metrics["best_epoch"]
    assert ckpt["config"]["model"]["d_model"] == 32


def test_same_seed_gives_identical_metrics(trained_run, tmp_path):
    again = tmp_path / "again"
    result = run_cli(TINY, again)
    assert result.returncode == 0, result.stderr[-2000:]
    first, second = read_metrics(trained_run), read_metrics(again)
    assert (first["mse"], first["mae"], first["best_val_loss"]) == (second["mse"], second["mae"],
                                                                     second["best_val_loss"])


def test_mode_test_reproduces_the_test_metrics(trained_run, tmp_path):
    # Only the checkpoint and the data root are given: the network's shape comes from the checkpoint.
    out = tmp_path / "test"
    result = run_cli(["mode=test", f"ckpt={trained_run / 'checkpoint.pt'}", f"data.root={DATA_ROOT}",
                      "trainer.progress=false"], out)
    assert result.returncode == 0, result.stderr[-2000:]
    trained, tested = read_metrics(trained_run), read_metrics(out)
    assert tested["mode"] == "test" and tested["epochs_run"] == 0
    assert tested["mse"] == pytest.approx(trained["mse"], rel=1e-6)
    assert tested["mae"] == pytest.approx(trained["mae"], rel=1e-6)
    assert "from the checkpoint" in result.stderr


def test_multirun_gives_one_run_dir_per_job(tmp_path):
    args = ["-m", *TINY, "trainer.epochs=1", "trainer.limit_train_batches=2", "trainer.limit_eval_batches=2",
            "task.pred_len=12,24", f"hydra.sweep.dir={tmp_path}"]
    result = run_cli(args)
    assert result.returncode == 0, result.stderr[-2000:]
    dirs = sorted(p for p in tmp_path.iterdir() if (p / ".hydra").is_dir())  # beside them: the sweep's report, plots/
    assert len(dirs) == 2
    assert sorted(read_metrics(d)["pred_len"] for d in dirs) == [12, 24]


def test_help_works_from_another_directory(tmp_path):
    result = run_cli(["--help"], cwd=tmp_path)
    assert result.returncode == 0
    assert "dataset: ECL, ETTh1" in result.stdout and "task: anomaly, classification, imputation, long_term, pretrain, short_term" in result.stdout


ERROR_CASES = {
    "unknown dataset": (["dataset=nope"], "dataset=nope is not available; choose one of: ECL, ETTh1"),
    "unknown task": (["task=nope"], "task=nope is not available; choose one of: anomaly, classification, imputation, long_term, pretrain, short_term"),
    "zero horizon": (["task.pred_len=0"], "task.pred_len must be a positive integer, got 0"),
    "non-numeric lr": (["trainer.lr=abc"], "trainer.lr=abc"),
    "missing data file": (["data.root=/nonexistent/place"], "file not found: /nonexistent/place/ETT-small/ETTh1.csv. "
                          "Fetch it with: python -m symtime_repro.data download ETTh1 --root /nonexistent/place"),
    "missing target": (["dataset.target=NOPE"], "target column 'NOPE' is not in"),
    "bad forward layers": (["model.forward_layers=9"], "model.forward_layers must be in 1..model.n_layers"),
    "test without ckpt": (["mode=test"], "mode=test needs a checkpoint"),
    # Sizes that cannot fit: refused before anything is allocated (the kernel would kill the process).
    "huge encoder": (["model.d_model=2147483648", "model.n_heads=1"], "model.n_layers=6, model.d_model=2147483648, "
                     "model.d_ff=2048 make an encoder of 110,680,528,162,392,125,459 values"),
    "huge moving average": (["model.moving_avg=2147483647"], "model.moving_avg=2147483647 pads each window to "
                            "2,147,483,742 steps: a batch of 8 windows x 7 channels takes 448.0 GiB"),
    "huge projection": (["task=classification", "dataset=JapaneseVowels", "model.out_channels=4294967296"],
                        "classification would need 8589934593 tokens but the encoder has 5000 positions"),
    "integer past int64": (["seed=9223372036854775808"], "seed=9223372036854775808 is out of range"),
    "force-added typo": (["++trainer.lrr=0.5"], "trainer.lrr is not a configuration key; did you mean trainer.lr?"),
}


@pytest.mark.parametrize("case", ERROR_CASES, ids=list(ERROR_CASES))
def test_bad_input_ends_with_one_clear_line(case, tmp_path):
    args, expected = ERROR_CASES[case]
    run_dir = tmp_path / "run"
    result = run_cli([f"data.root={DATA_ROOT}", *args], run_dir)
    assert_user_error(result, expected, run_dir)


def test_csv_with_non_numeric_cell_names_line_and_column(tmp_path):
    lines = (DATA_ROOT / "ETT-small" / "ETTh1.csv").read_text().splitlines()
    cells = lines[100].split(",")
    cells[3] = "n/a"
    lines[100] = ",".join(cells)
    (tmp_path / "ETT-small").mkdir()
    (tmp_path / "ETT-small" / "ETTh1.csv").write_text("\n".join(lines) + "\n")
    result = run_cli([*TINY, f"data.root={tmp_path}"], tmp_path / "run")
    assert_user_error(result, "line 101, column 'MUFL' holds 'n/a', not a number", tmp_path / "run")


def test_checkpoint_of_the_wrong_shape_is_named(trained_run, tmp_path):
    result = run_cli([*TINY, "mode=test", f"ckpt={trained_run / 'checkpoint.pt'}", "task.pred_len=48"],
                     tmp_path / "run")
    # Our checkpoints carry their shape: a typed horizon that contradicts it is refused, never replaced...
    assert_user_error(result, "task.pred_len=48 contradicts ckpt=", tmp_path / "run")
    assert "which was trained with task.pred_len=24" in result.stderr
    # ...while a bare state dict (the official layout) must match the command line.
    state = torch.load(trained_run / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    bare = tmp_path / "official_layout.pth"
    torch.save(state, bare)
    result = run_cli([*TINY, "mode=test", f"ckpt={bare}", "task.pred_len=48"], tmp_path / "run3")
    # An official file records nothing, so what it was trained for must be said.
    assert_user_error(result, "is an official checkpoint, which does not record what it was trained on: add task=… "
                              "and dataset=…", tmp_path / "run3")
    result = run_cli([*TINY, "mode=test", f"ckpt={bare}", "task=long_term", "dataset=ETTh1", "task.pred_len=48"],
                     tmp_path / "run2")
    assert_user_error(result, "'projection_trend.weight' has shape (24, 96) in the file but (48, 96) in the model",
                      tmp_path / "run2")


def test_make_run_preset_is_registered():
    assert (REPO / "conf" / "experiment" / "long_term" / "quickstart.yaml").is_file()
    result = run_cli(["experiment=long_term/quickstart", "--cfg", "job"])
    assert result.returncode == 0, result.stderr
    assert "name: symtime_tiny" in result.stdout and "experiment: long_term/quickstart" in result.stdout


def test_test_samples_are_spread_over_the_test_split(trained_run):
    """test_samples.npz holds 4 real test windows, at 0, n/4, n/2, 3n/4: not 4 overlapping neighbours."""
    import numpy as np

    from symtime_repro.datasets import csv_series
    from symtime_repro.datasets.windows import SlidingWindows
    from types import SimpleNamespace

    samples = np.load(trained_run / "test_samples.npz")
    dataset = SimpleNamespace(name="ETTh1", path="ETT-small/ETTh1.csv", split="ett_hour", features="M", target="OT",
                              source="")
    test = SlidingWindows(csv_series.load_splits(dataset, 96, DATA_ROOT).test, 96, 24)
    n = len(test)
    assert samples["x"].shape == (4, 96, 7) and samples["pred"].shape == samples["y"].shape == (4, 24, 7)
    assert list(samples["columns"]) == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    for row, index in enumerate(i * n // 4 for i in range(4)):
        np.testing.assert_array_equal(samples["x"][row], test[index]["x"].numpy())
        np.testing.assert_array_equal(samples["y"][row], test[index]["y"].numpy())
