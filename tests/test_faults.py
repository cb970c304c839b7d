"""Numerical faults: a NaN/inf loss stops the run with status failed (or skips the batch), and an
infinite value in a data file is named at load time. Real data, real training steps."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import DATA_ROOT, REPO, TINY, assert_user_error, run_cli
from symtime_repro.config import register_configs
from symtime_repro.errors import RunFailed
from symtime_repro.run import prepare
from symtime_repro.training import Trainer


def test_an_exploding_learning_rate_fails_the_run_clearly(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli([*TINY, "trainer.lr=1e12"], run_dir)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "became NaN/inf at epoch 1, step" in errors[0]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["epoch"] == 1 and metrics["step"] >= 1
    assert "mse" not in metrics  # never a file that looks like a success


def trainer_and_task(tmp_path, *overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "trainer.epochs=1", "trainer.limit_train_batches=6", *overrides])
    rc, device, task, splits, model, dist = prepare(cfg)
    return Trainer(rc.trainer, device, tmp_path, rc.seed, asdict(rc), dist), task, splits, model


def poison(task, at_call: int):
    """The task's real loss, made NaN on one call (as a batch with a bad value would)."""
    real, calls = task.training_loss, []

    def loss(model, batch):
        calls.append(1)
        value = real(model, batch)
        return value * float("nan") if len(calls) == at_call else value

    task.training_loss = loss


def test_a_nan_batch_is_skipped_and_counted_when_asked(tmp_path):
    trainer, task, splits, model = trainer_and_task(tmp_path, "trainer.on_nonfinite=skip")
    poison(task, at_call=3)
    fit = trainer.fit(task, model, splits)
    assert fit.skipped_batches == 1 and fit.epochs_run == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step never reached the weights
    assert fit.train_samples == 5 * 64


def test_a_nan_batch_stops_the_run_by_default_naming_epoch_and_step(tmp_path):
    trainer, task, splits, model = trainer_and_task(tmp_path)
    poison(task, at_call=4)
    with pytest.raises(RunFailed, match="epoch 1, step 4") as failure:
        trainer.fit(task, model, splits)
    assert failure.value.details == {"epoch": 1, "step": 4}


def test_an_infinite_value_in_a_csv_is_named_at_load_time(tmp_path):
    (tmp_path / "ETT-small").mkdir()
    lines = (DATA_ROOT / "ETT-small" / "ETTh1.csv").read_text().splitlines(keepends=True)
    cells = lines[500].split(",")
    cells[3] = "inf"
    lines[500] = ",".join(cells)
    (tmp_path / "ETT-small" / "ETTh1.csv").write_text("".join(lines))
    result = run_cli([*TINY, f"data.root={tmp_path}"], tmp_path / "run")
    assert_user_error(result, "ETTh1.csv line 501, column 'MUFL' holds 'inf', not a finite number", tmp_path / "run")


# --- preemption: SIGTERM / SIGINT at a step boundary, requeue under SLURM -------------------------

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from conftest import read_metrics  # noqa: E402

PREEMPTIBLE = [*TINY, "trainer.epochs=3", "trainer.limit_train_batches=8"]


def start(args, run_dir, env=None) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen([sys.executable, "-m", "symtime_repro", *args, f"hydra.run.dir={run_dir}"], cwd=REPO,
                            env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(process: subprocess.Popen, text: str) -> list[str]:
    seen = []
    for line in process.stderr:
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"never saw {text!r}:\n" + "".join(seen[-20:]))


def test_sigterm_saves_at_the_step_boundary_and_resume_ends_as_an_uninterrupted_run(tmp_path):
    whole = tmp_path / "whole"
    assert run_cli(PREEMPTIBLE, whole).returncode == 0
    stopped = tmp_path / "stopped"
    process = start(PREEMPTIBLE, stopped)
    wait_for(process, "epoch 2/3: step")
    process.send_signal(signal.SIGTERM)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 75, rest[-2000:]
    assert "stopped by SIGTERM inside epoch 2 after step" in rest and "resume=true" in rest
    assert (stopped / "last.pt").is_file() and not (stopped / "metrics.json").exists()
    result = run_cli([*PREEMPTIBLE, "resume=true"], stopped)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "inside epoch 2 after step" in result.stderr
    a, b = read_metrics(whole), read_metrics(stopped)
    assert (a["mse"], a["mae"]) == (b["mse"], b["mae"])


def test_a_second_signal_stops_at_once(tmp_path):
    process = start([*PREEMPTIBLE, "trainer.batch_size=2048"], tmp_path / "run")  # steps of about a second
    wait_for(process, "training:")
    process.send_signal(signal.SIGINT)
    wait_for(process, "received SIGINT")  # the first one is taken: saving at the end of this step
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 128 + signal.SIGINT
    assert not (tmp_path / "run" / "last.pt").exists()


def test_under_slurm_a_preempted_job_requeues_itself_and_resumes_when_restarted(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    (bin_dir / "scontrol").chmod(0o755)
    env = {"SLURM_JOB_ID": "4242", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    run_dir = tmp_path / "run"
    process = start(PREEMPTIBLE, run_dir, env)
    wait_for(process, "epoch 2/3: step")
    process.send_signal(signal.SIGTERM)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 75, rest[-2000:]
    assert calls.read_text().split() == ["requeue", "4242"] and "requeued SLURM job 4242" in rest
    # SLURM starts the job again with SLURM_RESTART_COUNT=1: it resumes without being told to.
    result = run_cli(PREEMPTIBLE, run_dir, env={**env, "SLURM_RESTART_COUNT": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "a requeued job, so resume=true" in result.stderr and "resumed after epoch" in result.stderr
    assert read_metrics(run_dir)["resumed_from_epoch"] is not None


def test_a_second_run_on_a_busy_run_dir_is_refused_and_the_first_is_unharmed(tmp_path):
    run_dir = tmp_path / "run"
    first = start([*PREEMPTIBLE, "trainer.batch_size=1024"], run_dir)
    wait_for(first, "training:")
    config_before = (run_dir / ".hydra" / "config.yaml").read_text()
    second = run_cli([*TINY, "trainer.lr=0.5"], run_dir)
    assert_user_error_keeping(second, f"run dir {run_dir} is in use by another run (pid {first.pid}")
    assert (run_dir / ".hydra" / "config.yaml").read_text() == config_before  # its record untouched
    first.stderr.read()
    assert first.wait(timeout=300) == 0
    assert read_metrics(run_dir)["status"] == "completed" and not (run_dir / ".lock").exists()
    # A lock left by a dead process does not block the next run.
    (run_dir / ".lock").write_text(f"{__import__('socket').gethostname()} 999999999\n")
    again = run_cli([*TINY, "trainer.epochs=1", "trainer.limit_train_batches=2"], tmp_path / "run")
    assert again.returncode == 0, again.stderr[-2000:]


def assert_user_error_keeping(result, expected: str) -> None:
    """As conftest's assert_user_error, for a dir whose metrics.json belongs to another run."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected in errors[0], result.stderr


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path):
    """ENOSPC injected at the write of the epoch-2 checkpoint: the epoch-1 file stays whole, and the
    run ends with one line, not a traceback."""
    run_dir = tmp_path / "run"
    hook = tmp_path / "sitecustomize.py"
    # The disk fills up while the epoch-2 checkpoint is flushed: the real atomic write path runs.
    hook.write_text(
        "import errno, os\n"
        "real_fsync, count = os.fsync, [0]\n"
        "def fsync(fd):\n"
        "    if os.path.basename(os.readlink(f'/proc/self/fd/{fd}')).startswith('.checkpoint.pt.'):\n"
        "        count[0] += 1\n"
        "        if count[0] == 2:\n"
        "            raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "    return real_fsync(fd)\n"
        "os.fsync = fsync\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "SYMTIME_REPRO_ALLOCATOR": "system"}
    result = run_cli([*TINY, "trainer.epochs=3", "trainer.limit_train_batches=4"], run_dir, env=env)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "no space left on the device writing" in errors[0] and "checkpoint.pt" in errors[0]
    saved = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert saved["epoch"] == 1  # the previous checkpoint, whole
    assert not (run_dir / "metrics.json").exists()
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]  # no half-written leftovers


# --- a signal in every phase of a run: set-up, validation, testing, or any random moment ------------

import random  # noqa: E402
import time  # noqa: E402

from conftest import run_cli_in_process  # noqa: E402,F401  (the cli_in_process fixture hands it out)


def signal_self_on_call(monkeypatch, owner, name: str, sig=signal.SIGTERM) -> None:
    """``owner.name`` sends ``sig`` to this very process on its first call, then does its real work:
    a real signal, delivered exactly in the phase that calls it."""
    real, calls = getattr(owner, name), []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), sig)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


def stopped_line(capfd) -> str:
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err[-3000:]
    lines = [line for line in (out + err).splitlines() if "stopped by SIG" in line]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def test_a_signal_during_set_up_stops_at_once_and_writes_no_result(tmp_path, cli_in_process, monkeypatch, capfd):
    import symtime_repro.run as run_module

    signal_self_on_call(monkeypatch, run_module, "check_fits_in_memory", signal.SIGINT)  # data read, no model yet
    run_dir = tmp_path / "run"
    assert cli_in_process([*TINY, f"hydra.run.dir={run_dir}"]) == 75
    assert "stopped by SIGINT during set-up, before training started; nothing is lost" in stopped_line(capfd)
    assert not [p.name for p in run_dir.iterdir() if p.name in ("metrics.json", "last.pt", "checkpoint.pt", ".lock")]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the process is left as it was


def test_a_signal_during_validation_saves_the_whole_epoch(tmp_path, cli_in_process, monkeypatch, capfd, trained_run):
    signal_self_on_call(monkeypatch, Trainer, "evaluate")
    run_dir = tmp_path / "run"
    assert cli_in_process([*TINY, f"hydra.run.dir={run_dir}"]) == 75
    assert "stopped by SIGTERM after epoch 1; the state is saved" in stopped_line(capfd)
    assert torch.load(run_dir / "last.pt", weights_only=False)["in_epoch"] is None  # a finished epoch, not a part
    monkeypatch.undo()
    result = run_cli([*TINY, "resume=true"], run_dir)
    assert result.returncode == 0 and "resumed after epoch 1 (" in result.stderr, result.stderr[-2000:]
    assert (read_metrics(run_dir)["mse"], read_metrics(run_dir)["mae"]) == \
        (read_metrics(trained_run)["mse"], read_metrics(trained_run)["mae"])


def test_a_signal_during_testing_keeps_the_training_and_resume_tests_again(tmp_path, cli_in_process, monkeypatch,
                                                                         capfd, trained_run):
    signal_self_on_call(monkeypatch, Trainer, "test")
    run_dir = tmp_path / "run"
    assert cli_in_process([*TINY, f"hydra.run.dir={run_dir}"]) == 75
    assert "stopped by SIGTERM during testing; the trained model is saved" in stopped_line(capfd)
    assert {"checkpoint.pt", "last.pt", "history.csv"} <= {p.name for p in run_dir.iterdir()}
    assert not (run_dir / "metrics.json").exists()
    monkeypatch.undo()
    result = run_cli([*TINY, "resume=true"], run_dir)
    assert result.returncode == 0 and "resumed after epoch 2 (" in result.stderr, result.stderr[-2000:]
    assert read_metrics(run_dir)["epochs_run"] == 2  # no epoch trained again, the test run once more
    assert (read_metrics(run_dir)["mse"], read_metrics(run_dir)["mae"]) == \
        (read_metrics(trained_run)["mse"], read_metrics(trained_run)["mae"])


# Moments drawn from a fixed seed, so CI sends the same signals at the same delays on every run; where
# they land (start-up, data, a step, validation, a checkpoint write, the test) varies with the machine.
RANDOM_MOMENTS = random.Random(2025)
SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGKILL]
ATTEMPTS = int(os.environ.get("SYMTIME_SIGNAL_ATTEMPTS", "1"))  # moments per signal; CI: one (10 s each)


@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_signal_at_a_random_moment_loses_nothing(sig, tmp_path, trained_run):
    """SIGTERM, SIGINT or SIGKILL at a random moment of a real run, then the same command with
    resume=true: the final metrics are those of the uninterrupted run, and nothing on the way was
    a traceback or a metrics.json that is not the final one."""
    expected = read_metrics(trained_run)
    span = expected["wall_seconds"] + 3.0  # the run, plus starting Python and importing torch
    for attempt in range(ATTEMPTS):
        delay = RANDOM_MOMENTS.uniform(0.2, span)  # from when our code runs (Python itself starts first)
        run_dir = tmp_path / f"run{attempt}"
        process = start(TINY, run_dir)
        time.sleep(delay)
        process.send_signal(sig)
        err = process.stderr.read()
        code = process.wait(timeout=120)
        context = f"{sig.name} after {delay:.2f}s: exit {code}\n{err[-2000:]}"
        assert code in ((0, -signal.SIGKILL) if sig == signal.SIGKILL else (0, 75)), context
        assert "Traceback" not in err, context
        if (run_dir / "metrics.json").exists():  # only a finished run writes it: the final numbers already
            assert read_metrics(run_dir)["status"] == "completed", context
        result = run_cli([*TINY, "resume=true"], run_dir)
        assert result.returncode == 0, context + "\nresume:\n" + result.stderr[-2000:]
        got = read_metrics(run_dir)
        assert (got["mse"], got["mae"], got["epochs_run"]) == (expected["mse"], expected["mae"],
                                                              expected["epochs_run"]), context


def test_running_out_of_memory_fails_the_run_in_one_line(tmp_path, cli_in_process, monkeypatch, capfd):
    """A real allocator failure (4 TiB asked of the CPU allocator) during validation, injected there."""
    real = Trainer.evaluate

    def evaluate(self, *args, **kwargs):
        torch.empty(2**40)  # RuntimeError: DefaultCPUAllocator: can't allocate memory
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    run_dir = tmp_path / "run"
    assert cli_in_process([*TINY, f"hydra.run.dir={run_dir}"]) == 3
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    errors = [line for line in (out + err).splitlines() if "error:" in line]
    assert len(errors) == 1 and "out of memory during training (it tried to allocate 4,096.0 GiB); lower " \
        "trainer.batch_size" in errors[0], err[-2000:]
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "failed" and metrics["phase"] == "training" and "mse" not in metrics
