"""The :class:`Tracker` protocol every tracker implements, and :class:`Trackers`, the composite the run
and the training loop talk to.

A tracker is a view of the run dir, never its record: whatever a tracker does (an unreachable server,
a full disk, a bug of its library), the run goes on. :class:`Trackers` catches a tracker's failure,
warns once, drops that tracker for the rest of the run and keeps a one-line note of it for
``metrics.json`` (``"tracking": {"mlflow": "failed: …"}``).

Pure Python: the training loop imports this module, and nothing here loads torch, MLflow or
TensorBoard (the trackers themselves are imported by :func:`symtime_repro.tracking.make_tracker`, and
only when chosen).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Protocol

log = logging.getLogger("symtime_repro.tracking")

SWEEP_FILE = "mlflow_sweep.json"  # in a multirun's folder: the MLflow parent run of its jobs

# The statuses of a tracked run, MLflow's names: ours map onto them (docs/tracking.md).
FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"


@dataclass
class RunContext:
    """What a tracker is told when the run starts (symtime_repro/run.py fills it in)."""

    run_dir: Path
    config: dict[str, Any]  # the resolved config, as config.yaml records it
    tags: dict[str, str]  # task, dataset, device, device_name, model, experiment, seed, git_commit, …
    run_name: str
    resume: bool = False  # resume=true: continue the tracked run this run dir names, if any
    sweep_dir: Optional[Path] = None  # a multirun's folder (its parent run is named there), else None
    history: list[dict[str, Any]] = field(default_factory=list)  # rows already in history.csv (resume)


class Tracker(Protocol):
    """One experiment tracker. Any exception it raises is caught by :class:`Trackers`."""

    name: str  # the logger.<name> switch that chose it: mlflow, tensorboard
    wants_steps: bool  # whether log_step() does anything (the loop reads the loss only then)

    def start(self, context: RunContext) -> str:
        """Open (or, on resume, reopen) the tracked run; returns the note ``metrics.json`` records."""

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """One row of history.csv (``epoch``, ``train_loss``, ``val_loss``, ``lr``, ``seconds``, …)."""

    def log_step(self, step: int, values: Mapping[str, float]) -> None:
        """Training scalars at optimiser step ``step`` (counted over the whole run, from 1)."""

    def finish(self, status: str, metrics: Optional[Mapping[str, Any]]) -> None:
        """Record the result (``metrics.json``'s values, None when there is none) and the run dir's
        files, and close the tracked run with ``status`` (FINISHED, FAILED or KILLED)."""


def epoch_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """A history.csv row as the per-epoch series: its columns by name, ``seconds`` as ``epoch_seconds``
    (``train_loss``, ``val_loss``, ``lr``, ``epoch_seconds``, and ``val_<metric>`` where a task watches one)."""
    return {("epoch_seconds" if key == "seconds" else key): float(value) for key, value in row.items()
            if key != "epoch" and is_number(value)}


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool (what a tracker can plot)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def result_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of ``metrics.json``, by their names there (the test metrics, best_val_loss,
    train_seconds, peak_memory_mb, …)."""
    return {key: float(value) for key, value in metrics.items() if is_number(value)}


def flatten(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``{"trainer": {"lr": 1e-4}}`` as ``("trainer.lr", 1e-4)``: the config as dotted keys."""
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def one_line(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class Trackers:
    """The chosen trackers as one: each call goes to every tracker still working. A tracker that
    raises is warned about once, dropped, and noted; the run never sees the exception."""

    def __init__(self, trackers: list[Tracker], step_every: int = 0,
                 notes: Optional[dict[str, str]] = None) -> None:
        self.trackers = list(trackers)
        self.notes: dict[str, str] = dict(notes or {})  # logger name -> "run …" / "failed: …" (metrics.json)
        self._step_every = step_every
        self.started = False
        self.finished = False

    @property
    def chosen(self) -> bool:
        """Whether any logger was chosen (metrics.json then records ``tracking``)."""
        return bool(self.trackers or self.notes)

    @property
    def step_every(self) -> int:
        """Every how many optimiser steps the loop should call log_step (0: never)."""
        return self._step_every if any(t.wants_steps for t in self.trackers) else 0

    def _call(self, method: str, *args) -> None:
        for tracker in list(self.trackers):
            try:
                result = getattr(tracker, method)(*args)
            except Exception as exc:  # noqa: BLE001 - a tracker never fails the run
                self.fail(tracker.name, exc, method)
                self.trackers.remove(tracker)
            else:
                if method == "start":
                    self.notes[tracker.name] = str(result)

    def fail(self, name: str, exc: BaseException, during: str) -> None:
        self.notes[name] = f"failed: {one_line(exc)}"
        log.warning("logger.%s: tracking failed while %s (%s); the run goes on without it, and its run dir "
                    "holds the complete record", name, _DOING.get(during, during), one_line(exc))

    def start(self, context: RunContext) -> None:
        if self.started:
            return
        self.started = True
        self._call("start", context)
        for tracker in self.trackers:
            log.info("logger.%s: %s", tracker.name, self.notes[tracker.name])

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        if self.started and not self.finished:
            self._call("log_epoch", row)

    def log_step(self, step: int, values: Mapping[str, float]) -> None:
        if self.started and not self.finished:
            self._call("log_step", step, values)

    def finish(self, status: str, metrics: Optional[Mapping[str, Any]] = None) -> None:
        """Close every tracked run once (later calls do nothing)."""
        if not self.started or self.finished:
            return
        self.finished = True
        self._call("finish", status, metrics)


_DOING = {"start": "starting the run", "log_epoch": "logging an epoch", "log_step": "logging a step",
          "finish": "closing the run"}


class NullTracker(Trackers):
    """No logger chosen (``logger=none``), or a process other than 0 under torchrun."""

    def __init__(self) -> None:
        super().__init__([])
