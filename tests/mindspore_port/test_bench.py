"""``python -m symtime_repro.bench framework=mindspore`` (graph and PyNative) writes every field of the torch
bench plus MindSpore's own, with MindSpore's outputs close to torch's; ``python -m
symtime_repro.compare_frameworks`` runs both frameworks and writes the side-by-side table."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ms = pytest.importorskip("mindspore", reason="MindSpore tests run in .venv-ms: make test-ms")

from conftest import REPO, TINY  # noqa: E402

TINY_BENCH = [a for a in TINY if not a.startswith(("trainer.epochs", "trainer.limit", "trainer.eval_batch_size"))] + \
    ["trainer.eval_batch_size=64", "bench.warmup=1", "bench.steps=2", "bench.matmul_size=256"]
# The torch bench's fields (tests/test_bench.py) and what a comparison needs besides.
FIELDS = ("train_samples_per_second", "eval_samples_per_second", "flops_per_sample", "eval_flops_per_sample",
          "matmul_peak_flops", "mfu", "eval_mfu", "peak_memory_mb", "data_loading_share",
          "train_first_step_seconds", "eval_first_step_seconds", "output_max_abs_diff", "loss_abs_diff")


def bench(args: list[str], run_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "symtime_repro.bench", "framework=mindspore", *args,
                           f"hydra.run.dir={run_dir}"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_the_mindspore_bench_writes_every_field(mode, tmp_path):
    result = bench([*TINY_BENCH, f"bench.mindspore_mode={mode}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    r = json.loads((tmp_path / "bench.json").read_text())
    for field in FIELDS:
        assert isinstance(r[field], float) and r[field] >= 0, field
    assert (r["framework"], r["mindspore_mode"], r["device"], r["precision"]) == ("mindspore", mode, "cpu", "float32")
    assert r["mindspore_version"] == ms.__version__ and r["compiled"] == (mode == "graph")
    assert r["peak_memory_source"].startswith("rss") and r["peak_memory_mb"] > 0  # MindSpore reports 0 on CPU
    assert 2.0 < r["flops_per_sample"] / r["eval_flops_per_sample"] < 4.0  # torch's counter, as the torch bench
    assert 0 < r["mfu"] and r["amp"] is False and r["loss_scaling"] is False
    assert r["output_max_abs_diff"] <= 1e-4 and r["loss_abs_diff"] <= 1e-5 * max(1.0, r["loss_torch"])
    assert "vs torch" in result.stderr and "MFU" in result.stderr


def test_compare_runs_both_frameworks_and_writes_the_table(tmp_path):
    usual = REPO / ".venv" / "bin" / "python"
    if not usual.is_file():
        pytest.skip(f"{usual} not found: the torch side runs in the usual venv (make install builds it)")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "HYDRA_FULL_ERROR")}
    env["SYMTIME_MINDSPORE_PYTHON"] = sys.executable  # this venv, wherever the test runs from
    out = tmp_path / "compare"
    result = subprocess.run([str(usual), "-m", "symtime_repro.compare_frameworks", *TINY_BENCH,
                             f"hydra.run.dir={out}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = json.loads((out / "compare.json").read_text())
    torch_row, ms_row = table["rows"]
    assert torch_row["framework"].startswith("torch") and ms_row["framework"].startswith("mindspore")
    assert torch_row["output_max_abs_diff"] is None and ms_row["output_max_abs_diff"] <= 1e-4
    assert ms_row["peak_memory"].endswith("(0 on CPU: RSS shown)")
    markdown = (out / "compare.md").read_text()
    assert markdown.count("\n| torch") == 1 and markdown.count("\n| mindspore") == 1
    assert "Command: `python -m symtime_repro.compare_frameworks" in markdown
    assert (out / "torch" / "bench.json").is_file() and (out / "mindspore" / "bench.json").is_file()


def test_compare_relays_a_bench_error_in_one_line(tmp_path):
    usual = REPO / ".venv" / "bin" / "python"
    if not usual.is_file():
        pytest.skip(f"{usual} not found: the torch side runs in the usual venv (make install builds it)")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "HYDRA_FULL_ERROR")}
    env["SYMTIME_MINDSPORE_PYTHON"] = sys.executable
    result = subprocess.run([str(usual), "-m", "symtime_repro.compare_frameworks", *TINY_BENCH,
                             "model.d_model=3000000", "model.d_ff=3000000", f"hydra.run.dir={tmp_path}"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith("error: torch bench: model.n_layers=") and "Traceback" not in result.stderr


def test_mixed_precision_is_mindspores_own_or_a_one_line_missing_kernel(tmp_path):
    """device.amp=true is auto_mixed_precision (bfloat16 on CPU, as torch.amp): recorded when it runs; MindSpore
    2.10 has no bfloat16 MatMul on CPU, which must end as one line naming the kernel, not a traceback."""
    result = bench([*TINY_BENCH, "device.amp=true"], tmp_path)
    if result.returncode == 0:
        r = json.loads((tmp_path / "bench.json").read_text())
        assert (r["amp"], r["precision"], r["mindspore_amp"]) == (True, "bfloat16", "BFloat16")
        return
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "MindSpore failed on CPU" in errors[0] and "missing kernel" in errors[0]
