"""Tasks: one module each. The trainer talks to a task only through :class:`Task`.

Adding a task: write ``symtime_repro/tasks/<name>.py`` with a class implementing :class:`Task`,
add its import path to ``TASKS`` below, and add ``conf/task/<name>.yaml``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from ..errors import UserError

# name -> "module:Class"; imported on demand so an unused task costs nothing at start-up.
TASKS = {
    "long_term": "symtime_repro.tasks.long_term:LongTermForecasting",
    "short_term": "symtime_repro.tasks.short_term:ShortTermForecasting",
    "imputation": "symtime_repro.tasks.imputation:Imputation",
    "classification": "symtime_repro.tasks.classification:Classification",
    "anomaly": "symtime_repro.tasks.anomaly:AnomalyDetection",
}


@dataclass
class Splits:
    """The three datasets of a run and the facts derived from the data (``enc_in`` ...)."""

    train: Dataset
    val: Dataset
    test: Dataset
    info: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    name: str
    monitor: tuple[str, str]  # (metric name from evaluate(), "min" or "max") for early stopping

    def datasets(self) -> Splits:
        """Load and check the data (fail here, before any work, on bad input)."""

    def build_model(self, splits: Splits) -> nn.Module:
        """The network for this task, sized from the data."""

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar loss of one training batch (already on the device)."""

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Metrics over a split; must include ``loss`` (the early-stopping criterion)."""

    def test_metric_names(self) -> tuple[str, ...]:
        """The metrics.json keys this task reports (GUIDE section 2)."""

    def test(self, model: nn.Module, splits: Splits, batches_for) -> dict[str, Any]:
        """Test metrics (BaseTask: evaluate() on the test split)."""

    def save_test_outputs(self, run_dir) -> None:
        """Called after the test evaluation; write extra files (optional, see BaseTask)."""


class BaseTask:
    """Defaults for the optional parts of :class:`Task`."""

    name = ""
    # The validation metric early stopping watches, and whether lower or higher is better.
    monitor: tuple[str, str] = ("loss", "min")

    def test(self, model: nn.Module, splits: Splits,
             batches_for: Callable[[Dataset], Iterable[dict[str, torch.Tensor]]]) -> dict[str, Any]:
        """Test metrics; by default :meth:`evaluate` on the test split. ``batches_for(dataset)``
        yields a split's batches on the device (anomaly detection also needs the train split)."""
        return self.evaluate(model, batches_for(splits.test))

    def save_test_outputs(self, run_dir) -> None:
        """Write task-specific test artefacts (e.g. the M4 forecast CSV) into the run dir."""


def make_task(cfg) -> Task:
    name = cfg.task.name
    if name not in TASKS:
        known = ", ".join(TASKS)
        raise UserError(f"task={name} is not implemented yet in this version (available: {known})")
    module_name, class_name = TASKS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)(cfg)
