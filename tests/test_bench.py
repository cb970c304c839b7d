"""`python -m symtime_repro.bench`, torch.compile, AMP and the mimalloc restart, on real data (CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO, TINY, read_metrics, run_cli, tiny_model_cfg
from symtime_repro import allocator
from symtime_repro.device import Device
from symtime_repro.models import build_model
from symtime_repro.training import compile_model, compile_unavailable

BENCH_FIELDS = ("train_samples_per_second", "eval_samples_per_second", "flops_per_sample", "matmul_peak_flops",
                "mfu", "peak_memory_mb", "data_loading_share", "train_first_step_seconds", "eval_first_step_seconds")
TINY_BENCH = [a for a in TINY if not a.startswith(("trainer.epochs", "trainer.limit"))] + \
    ["bench.warmup=1", "bench.steps=3", "bench.matmul_size=256"]


def run_bench(args, run_dir, env=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "symtime_repro.bench", *args, f"hydra.run.dir={run_dir}"],
                          cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600)


def test_bench_reports_every_field_with_sane_values(tmp_path):
    result = run_bench(TINY_BENCH, tmp_path / "bench")
    assert result.returncode == 0, result.stderr[-3000:]
    bench = json.loads((tmp_path / "bench" / "bench.json").read_text())
    for field in BENCH_FIELDS:
        assert isinstance(bench[field], float) and bench[field] >= 0, field
    assert bench["train_samples_per_second"] > 0 and bench["eval_samples_per_second"] > 0
    # A training step is a forward and a backward pass: about 3x the forward's FLOPs.
    assert 2.0 < bench["flops_per_sample"] / bench["eval_flops_per_sample"] < 4.0
    assert 0 < bench["mfu"] < 1.5 and bench["matmul_peak_flops"] > 1e8
    assert bench["batch_size"] == 64 and bench["precision"] == "float32" and not bench["compiled"]
    assert (bench["framework"], bench["peak_memory_source"], bench["amp"]) == ("torch", "rss", False)
    assert "MFU" in result.stderr and "bench.json" in result.stderr
    assert not (tmp_path / "bench" / "metrics.json").exists()  # a benchmark is not a result


def test_bench_with_amp_measures_in_bfloat16(tmp_path):
    result = run_bench([*TINY_BENCH, "device.amp=true"], tmp_path / "bench")
    assert result.returncode == 0, result.stderr[-3000:]
    bench = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert bench["precision"] == "bfloat16" and bench["amp"] is True and bench["mfu"] > 0


def test_bench_bad_override_is_one_line(tmp_path):
    result = run_bench([*TINY_BENCH, "bench.steps=0"], tmp_path / "bench")
    assert result.returncode == 2 and "bench.steps >= 1" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_mindspore_mode_is_refused_with_the_choices(tmp_path):
    result = run_bench([*TINY_BENCH, "bench.mindspore_mode=fast"], tmp_path / "bench")
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert "bench.mindspore_mode" in errors[0] and "graph" in errors[0] and "pynative" in errors[0]


def test_a_float32_bench_on_the_npu_turns_hf32_off_and_records_it(monkeypatch):
    from types import SimpleNamespace

    from symtime_repro.bench import pin_npu_float32

    # torch_npu's switches (torch.npu.matmul / conv .allow_hf32; conv's is on by default), faked: no NPU here
    fake = SimpleNamespace(matmul=SimpleNamespace(allow_hf32=True), conv=SimpleNamespace(allow_hf32=True))
    monkeypatch.setattr(torch, "npu", fake, raising=False)
    npu = Device("npu", torch.device("cpu"), "Ascend910B (fake)")
    assert pin_npu_float32(npu) == {"npu_matmul_allow_hf32": False, "npu_conv_allow_hf32": False}
    assert fake.matmul.allow_hf32 is False and fake.conv.allow_hf32 is False
    fake.conv.allow_hf32 = True  # mixed precision keeps torch_npu's defaults
    assert pin_npu_float32(Device("npu", torch.device("cpu"), "Ascend910B (fake)", amp=True))["npu_conv_allow_hf32"]
    assert pin_npu_float32(Device("cpu", torch.device("cpu"), "cpu")) == {}


def test_compiled_model_matches_the_eager_one():
    device = Device("cpu", torch.device("cpu"), "cpu")
    reason = compile_unavailable(device)
    if reason:
        pytest.skip(f"torch.compile is not available here: {reason}")
    torch.manual_seed(0)
    model = build_model("forecast", 3, 96, 24, tiny_model_cfg()).eval()
    x = torch.randn(4, 96, 3)
    with torch.inference_mode():
        eager = model(x)
    state_keys = list(model.state_dict())
    assert compile_model(model, device)
    with torch.inference_mode():
        compiled = model(x)
    assert list(model.state_dict()) == state_keys  # checkpoints keep the official key names
    assert (compiled - eager).abs().max().item() <= 1e-5


def test_compile_without_a_compiler_is_skipped_with_the_reason(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {"PATH": str(bare), "CXX": ""}  # python is called by its absolute path
    result = run_cli([*TINY, "trainer.compile=true", "trainer.epochs=1", "trainer.limit_train_batches=2"],
                     tmp_path / "run", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trainer.compile=true skipped: no C++ compiler" in result.stderr
    assert read_metrics(tmp_path / "run")["compiled"] is False


@pytest.mark.skipif(allocator.mimalloc_library() is None, reason="cmeel-mimalloc is not installed here")
def test_mimalloc_restart_changes_speed_not_numbers(tmp_path):
    args = [*TINY, "trainer.epochs=1", "trainer.limit_train_batches=3"]
    fast = run_cli(args, tmp_path / "fast", env={"SYMTIME_REPRO_ALLOCATOR": "auto"})
    plain = run_cli(args, tmp_path / "plain", env={"SYMTIME_REPRO_ALLOCATOR": "system"})
    assert fast.returncode == 0 and plain.returncode == 0, fast.stderr[-1000:] + plain.stderr[-1000:]
    a, b = read_metrics(tmp_path / "fast"), read_metrics(tmp_path / "plain")
    assert a["allocator"] == "mimalloc" and b["allocator"] == "system"
    assert (a["mse"], a["mae"]) == (b["mse"], b["mae"])
    assert "mimalloc memory allocator" in fast.stderr


def test_a_bad_allocator_choice_is_one_line(tmp_path):
    result = run_cli(TINY, tmp_path / "run", env={"SYMTIME_REPRO_ALLOCATOR": "tcmalloc"})
    assert result.returncode == 2 and "SYMTIME_REPRO_ALLOCATOR='tcmalloc'" in result.stderr


def test_mimalloc_keeps_freed_memory_unless_told_otherwise(tmp_path):
    """MIMALLOC_PURGE_DELAY=-1: without it every training step faulted its memory in again (allocator.py)."""
    library = tmp_path / "libmimalloc.so"
    env = allocator.mimalloc_env(library, {"LD_PRELOAD": "/other.so", "PATH": "/bin"})
    assert env["MIMALLOC_PURGE_DELAY"] == "-1" and env["LD_PRELOAD"] == f"{library}:/other.so"
    assert env["SYMTIME_REPRO_ALLOCATOR"] == "mimalloc" and env["PATH"] == "/bin"
    assert allocator.mimalloc_env(library, {"MIMALLOC_PURGE_DELAY": "10"})["MIMALLOC_PURGE_DELAY"] == "10"
