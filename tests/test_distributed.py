"""Data-parallel training under torchrun (Gloo on CPU), and the per-rank device mapping."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY, assert_user_error, read_metrics, run_cli
from test_device import _run

# Dropout off and LayerNorm: with them, two processes compute exactly what one process computes on
# the same global batches (BatchNorm would normalise each process's half on its own, and dropout
# masks come from each process's generator). Whole epochs of batches of 1420: the shipped ETTh1 has
# 8521 = 6 * 1420 + 1 training windows (seq_len 96, pred_len 24), so every epoch ends with a global
# batch of ONE window, which one of the two processes trains and the other joins with weight 0.
EXACT_BATCH, TRAIN_WINDOWS = 1420, 8521
EXACT = [*[a for a in TINY if not a.startswith(("trainer.batch_size=", "trainer.limit_train_batches="))],
         f"trainer.batch_size={EXACT_BATCH}", "trainer.epochs=2", "model.norm=LayerNorm", "model.dropout=0",
         "model.attn_dropout=0", "model.out_dropout=0"]


def torchrun(args: list[str], run_dir, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "symtime_repro", *args, f"hydra.run.dir={run_dir}"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    fresh = not any((Path(run_dir) / name).exists() for name in ("metrics.json", "last.pt"))
    if result.returncode != 0 and fresh:
        # Seen once in a full CI run and not reproducible: a 2-process start failing (the rendezvous
        # port, most likely). Start once more from a clean dir; a real error fails both times.
        shutil.rmtree(run_dir, ignore_errors=True)
        retry = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        retry.stderr = f"[first attempt failed: {result.stderr[-1500:]}]\n{retry.stderr}"
        return retry
    return result


def test_two_processes_train_exactly_as_one_and_write_one_run_dir(tmp_path):
    single = tmp_path / "single"
    result = run_cli(EXACT, single)
    assert result.returncode == 0, result.stderr[-2000:]
    double = tmp_path / "double"
    result = torchrun(EXACT, double)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = read_metrics(single), read_metrics(double)
    assert two["world_size"] == 2 and one["world_size"] == 1
    # Every window of both epochs was trained, the last one-window batch included, by both runs.
    assert TRAIN_WINDOWS % EXACT_BATCH == 1 and f"training: {TRAIN_WINDOWS} windows" in result.stderr
    assert f"({TRAIN_WINDOWS // EXACT_BATCH + 1} batches of {EXACT_BATCH} over 2 processes)" in result.stderr
    assert two["mse"] == pytest.approx(one["mse"], rel=1e-5) and two["mae"] == pytest.approx(one["mae"], rel=1e-5)
    assert two["epochs_run"] == one["epochs_run"] == 2
    # The same global batches: the logged training losses agree too.
    strip = lambda path: [line.split(",")[:3] for line in path.read_text().splitlines()[1:]]  # noqa: E731
    for a, b in zip(strip(single / "history.csv"), strip(double / "history.csv")):
        assert [float(x) for x in a] == pytest.approx([float(x) for x in b], rel=1e-5)
    files = sorted(p.name for p in double.iterdir())
    assert files == [".hydra", "checkpoint.pt", "config.yaml", "history.csv", "metrics.json", "run.log", "test_samples.npz"]
    assert result.stdout.count("result\n") == 1  # one result table: only process 0 reports

    # The distributed checkpoint tests in one process to the same numbers.
    tested = tmp_path / "tested"
    result = run_cli([*EXACT, "mode=test", f"ckpt={double / 'checkpoint.pt'}"], tested)
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_metrics(tested)["mse"] == pytest.approx(two["mse"], rel=1e-6)
    # And the other way round: the single-process checkpoint tested by two processes.
    tested_two = tmp_path / "tested_two"
    result = torchrun([*EXACT, "mode=test", f"ckpt={single / 'checkpoint.pt'}"], tested_two)
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_metrics(tested_two)["mse"] == pytest.approx(one["mse"], rel=1e-6)


def pids_of(marker: str) -> list[int]:
    """Processes whose command line holds ``marker`` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry))
    return found


def test_a_sweep_under_torchrun_is_refused(tmp_path):
    result = run_cli(["-m", "task.pred_len=24,48"], tmp_path / "run", env={"WORLD_SIZE": "2", "RANK": "0",
                                                                           "LOCAL_RANK": "0"})
    assert_user_error(result, "under torchrun a command trains one run", tmp_path / "run")


def test_each_process_takes_the_npu_of_its_local_rank_and_too_many_are_refused():
    out = _run('''
        from types import SimpleNamespace
        from symtime_repro import device
        from symtime_repro.distributed import Dist
        from symtime_repro.errors import UserError
        second = device.setup(SimpleNamespace(name="npu", amp=False, index=0), Dist(world=2, rank=1, local_rank=1))
        try:
            device.setup(SimpleNamespace(name="npu", amp=False, index=0), Dist(world=4, rank=3, local_rank=3))
            refused = ""
        except UserError as exc:
            refused = str(exc)
        print(json.dumps({"where": str(second.torch_device), "asked": ASKED, "refused": refused}))
    ''', serve=True)
    assert out["where"] == "npu:1" and "set_device 1" in out["asked"]
    assert "LOCAL_RANK=3 but only 2 NPU device(s) are visible" in out["refused"]
    assert "--nproc_per_node=2" in out["refused"]


def test_backends_are_chosen_per_device_and_nccl_is_not_hard_coded():
    from symtime_repro.distributed import BACKENDS

    assert BACKENDS == {"cpu": "gloo", "cuda": "nccl", "npu": "hccl"}


def test_a_killed_two_process_run_resumes_to_the_same_metrics(tmp_path):
    """Dropout and BatchNorm on: every process's random state is saved, so the resumed run goes on
    exactly as the uninterrupted two-process run."""
    import signal
    import time

    args = [*TINY, "trainer.epochs=3", "trainer.limit_train_batches=8"]
    whole = tmp_path / "whole"
    first = torchrun(args, whole)
    assert first.returncode == 0, first.stderr[-3000:]
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "symtime_repro", *args, f"hydra.run.dir={killed}"]
    process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (killed / "last.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    # torchrun and both workers (the workers run in sessions of their own, so no process-group kill).
    for pid in pids_of(f"hydra.run.dir={killed}"):
        os.kill(pid, signal.SIGKILL)
    process.wait(timeout=30)
    time.sleep(0.5)
    assert not pids_of(f"hydra.run.dir={killed}")
    assert not (killed / "metrics.json").exists()
    result = torchrun([*args, "resume=true"], killed)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed after epoch" in result.stderr
    a, b = read_metrics(whole), read_metrics(killed)
    assert (a["mse"], a["mae"]) == (b["mse"], b["mae"]) and b["resumed_from_epoch"] >= 1
