"""``logger=tensorboard``: TensorBoard event files in ``<run dir>/tensorboard/`` (torch.utils.tensorboard,
which needs the ``tensorboard`` package: ``pip install 'symtime-repro[track]'``).

* per epoch (step = the epoch): ``train_loss``, ``val_loss``, ``lr``, ``epoch_seconds`` (and
  ``val_<metric>`` where the task watches one), the history.csv row;
* every ``logger.log_every_n_steps`` optimiser steps (step = the step over the whole run):
  ``step/train_loss``, ``step/lr``;
* at the end of a completed run: the resolved config as hyper-parameters in the HParams view, with
  the test metrics, ``best_val_loss`` and ``epochs_run`` as its metrics (scalars of those names).

``tensorboard --logdir outputs`` shows every run under outputs/. A resumed run appends a new event file
to the same folder. Imported only when ``logger.tensorboard`` is true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from .base import FINISHED, RunContext, epoch_metrics, flatten, is_number

EVENTS_DIR = "tensorboard"


def hparam_value(value: Any) -> Any:
    """What the HParams view takes: a bool, number or string (null and lists as their text)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return "null" if value is None else str(value)


class TensorBoardTracker:
    name = "tensorboard"
    wants_steps = True

    def __init__(self) -> None:
        self.writer = None
        self.hparams: dict[str, Any] = {}
        self.folder: Optional[Path] = None

    def start(self, context: RunContext) -> str:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(context.run_dir) / EVENTS_DIR
        self.writer = SummaryWriter(log_dir=str(self.folder))
        self.hparams = {key: hparam_value(value) for key, value in flatten(context.config)}
        return str(self.folder)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        for key, value in epoch_metrics(row).items():
            self.writer.add_scalar(key, value, int(row["epoch"]))
        self.writer.flush()

    def log_step(self, step: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"step/{key}", value, step)

    def finish(self, status: str, metrics: Optional[Mapping[str, Any]]) -> None:
        try:
            if status == FINISHED and metrics:
                self._log_hparams(metrics)
        finally:
            self.writer.close()

    def _log_hparams(self, metrics: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        names = [*metrics.get("test_metrics", []), "best_val_loss", "epochs_run"]
        final = {name: float(metrics[name]) for name in names if is_number(metrics.get(name))}
        experiment, start, end = hparams(self.hparams, final)
        step = int(metrics.get("epochs_run") or 0)
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary, step)
        for name, value in final.items():
            self.writer.add_scalar(name, value, step)
