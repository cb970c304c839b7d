"""Tasks: one module each. The trainer talks to a task only through :class:`Task`.

Adding a task: write ``symtime_repro/tasks/<name>.py`` with a class implementing :class:`Task`,
add its import path to ``TASKS`` below, and add ``conf/task/<name>.yaml``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from ..errors import UserError

# name -> "module:Class"; imported on demand so an unused task costs nothing at start-up.
TASKS = {
    "long_term": "symtime_repro.tasks.long_term:LongTermForecasting",
    "short_term": "symtime_repro.tasks.short_term:ShortTermForecasting",
    "imputation": "symtime_repro.tasks.imputation:Imputation",
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

    def save_test_outputs(self, run_dir) -> None:
        """Called after the test evaluation; write extra files (optional, see BaseTask)."""


class BaseTask:
    """Defaults for the optional parts of :class:`Task`."""

    name = ""

    def save_test_outputs(self, run_dir) -> None:
        """Write task-specific test artefacts (e.g. the M4 forecast CSV) into the run dir."""


def make_task(cfg) -> Task:
    name = cfg.task.name
    if name not in TASKS:
        known = ", ".join(TASKS)
        raise UserError(f"task={name} is not implemented yet in this version (available: {known})")
    module_name, class_name = TASKS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)(cfg)
