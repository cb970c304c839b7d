"""Resume after a real SIGKILL, sweep re-runs that skip finished jobs, and the device-mixing guards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import REPO, TINY, assert_user_error, read_metrics, run_cli
from test_device import _run

# Three short epochs: long enough that a kill lands inside epoch 2, short enough for CI.
RESUMABLE = [*TINY, "trainer.epochs=3", "trainer.limit_train_batches=8", "trainer.limit_eval_batches=8"]


def test_a_killed_run_resumes_to_the_same_metrics(tmp_path):
    whole = tmp_path / "whole"
    result = run_cli(RESUMABLE, whole)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (whole / "last.pt").exists()  # the resume state goes once the run is finished

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "symtime_repro", *RESUMABLE, f"hydra.run.dir={killed}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in process.stderr:  # the progress log: kill inside epoch 2, after some of its steps
        seen.append(line)
        if "epoch 2/3: step" in line:
            break
    else:
        raise AssertionError("the run ended before epoch 2:\n" + "".join(seen[-20:]))
    assert (killed / "last.pt").exists()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL and not (killed / "metrics.json").exists()

    result = run_cli([*RESUMABLE, "resume=true"], killed)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed after epoch 1" in result.stderr
    a, b = read_metrics(whole), read_metrics(killed)
    assert b["resumed_from_epoch"] == 1 and b["epochs_run"] == a["epochs_run"] == 3
    assert (b["mse"], b["mae"]) == (a["mse"], a["mae"])  # bit for bit: weights, optimiser and RNGs restored
    strip = lambda path: [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()]  # noqa: E731
    assert strip(whole / "history.csv") == strip(killed / "history.csv")  # all but the seconds column


def test_resume_refuses_a_changed_config(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "symtime_repro", *RESUMABLE, f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (run_dir / "last.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=30)
    result = run_cli([*RESUMABLE, "resume=true", "trainer.lr=0.01"], run_dir)
    assert_user_error(result, "was started with trainer.lr=0.0001 but this command has trainer.lr=0.01", run_dir)
    # How fast it runs is not what it computes: another thread count (device.threads) may resume it.
    result = run_cli([*RESUMABLE, "resume=true", "device.threads=1"], run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_metrics(run_dir)["threads"] == 1


def test_a_rerun_sweep_skips_finished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "trainer.epochs=1", "trainer.limit_train_batches=2", "trainer.limit_eval_batches=2",
            "task.pred_len=24,48", f"hydra.sweep.dir={sweep}", "resume=true"]
    result = run_cli(args)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())  # not the report's plots/
    assert len(jobs) == 2
    first = (jobs[0] / "metrics.json").read_text()
    (jobs[1] / "metrics.json").unlink()  # as if the second job had been killed
    result = run_cli(args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resume=true: {jobs[0]} already finished" in result.stderr
    assert (jobs[0] / "metrics.json").read_text() == first  # untouched
    assert json.loads((jobs[1] / "metrics.json").read_text())["pred_len"] == 48


def test_a_sweep_mixing_npu_with_another_device_is_refused(tmp_path):
    result = run_cli(["-m", "device=npu,cpu", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert_user_error(result, "a sweep over device=cpu,npu runs its jobs in one process", tmp_path / "sweep")
    assert "transfer_to_npu cannot be undone" in result.stderr and not (tmp_path / "sweep").exists()


def test_after_an_npu_job_the_process_refuses_other_devices():
    """The backstop inside one process (e.g. a launcher that reuses workers): proven with the fake torch_npu."""
    out = _run('''
        from types import SimpleNamespace
        from symtime_repro import device
        from symtime_repro.errors import UserError
        device.setup(SimpleNamespace(name="npu", amp=False, index=0))
        try:
            device.setup(SimpleNamespace(name="cpu", amp=False, index=0))
            refused = ""
        except UserError as exc:
            refused = str(exc)
        print(json.dumps({"refused": refused}))
    ''', serve=True)
    assert "an earlier job of this process ran on the NPU" in out["refused"]
