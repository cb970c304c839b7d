"""Preemption: what SIGTERM / SIGINT do to a run, and SLURM's requeue.

One :class:`StopRequest` is in force for the whole command (the CLI installs it before Hydra
composes anything) and one for each run (``run.run``); the run's replaces the command's while the
run lasts. What the first signal does depends on the run's ``phase``:

* ``training``: it is remembered and acted on at the next step boundary (or after validation):
  the state is saved in ``last.pt``, then :class:`Preempted` is raised. Under torchrun the
  processes agree every step, so all of them stop after the same step.
* ``set-up`` and ``testing``: :class:`Preempted` is raised at once. Nothing is lost by stopping
  there: before training nothing exists yet, and during the test the trained state is already
  saved (``resume=true`` runs the test again).

A second signal ends the process at once with status 128 + N, without saving. A signal is never
lost: ``check()`` raises for one whose raise some code swallowed.

This module imports no torch at load time: the CLI needs it before anything heavy is imported.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

from .errors import EXIT_PREEMPTED, Preempted

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_on_signal_while_starting() -> None:
    """Until the CLI's own handling is in place (importing Hydra and torch takes a second or two), a
    signal ends the command with one line and status 75: nothing has been written yet."""
    def stop(signum, frame) -> None:
        print(f"stopped by {signal.Signals(signum).name} while starting, before anything was written; run the "
              f"same command again", file=sys.stderr)
        requeue_slurm_job()
        raise SystemExit(EXIT_PREEMPTED)  # no traceback, wherever the import was

    for sig in SIGNALS:
        signal.signal(sig, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)  # one held back across the mimalloc re-exec: now


class StopRequest:
    def __init__(self, run_dir: Optional[Path] = None, dist=None, device=None) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.dist, self.device = dist, device  # set by the trainer: processes agree under torchrun
        self.phase = "set-up"
        self.signum: Optional[int] = None
        self._previous: dict = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():  # signals reach only the main thread
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)  # see allocator.restart_with_mimalloc
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            os._exit(128 + signum)  # asked twice: stop now, without saving
        self.signum = signum
        if self.phase != "training":
            raise Preempted(signum, self.run_dir, phase=self.phase)
        log.warning("received %s: saving the run at the end of this step (send it again to stop at once)",
                    signal.Signals(signum).name)

    def check(self) -> None:
        """Outside training: stop now if a signal came (and its raise was swallowed)."""
        if self.signum is not None:
            raise Preempted(self.signum, self.run_dir, phase=self.phase)

    def requested(self) -> bool:
        """In training: whether any process was asked to stop (all processes call this together)."""
        if self.dist is None or not self.dist.enabled:
            return self.signum is not None
        import torch

        flag = torch.tensor(1 if self.signum is not None else 0, device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag)


def requeued() -> bool:
    """A SLURM job that was requeued (after a preemption) and started again."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0
    except ValueError:
        return False


def requeue_slurm_job() -> None:
    """Under SLURM, put this job back in the queue; when it starts again it resumes by itself
    (SLURM_RESTART_COUNT > 0 implies resume=true). Only process 0 of a torchrun job asks."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job or os.environ.get("RANK", "0") != "0" or os.environ.get("SYMTIME_REPRO_REQUEUE", "1") == "0":
        return
    import subprocess

    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("could not requeue SLURM job %s (%s); resubmit it with resume=true", job, exc)
        return
    if done.returncode == 0:
        log.warning("requeued SLURM job %s: it resumes from the saved state when it starts again", job)
    else:
        log.warning("scontrol requeue %s failed (%s); resubmit it with resume=true", job, done.stderr.strip())
