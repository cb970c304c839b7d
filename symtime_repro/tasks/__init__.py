"""Tasks: one module and one YAML each. The trainer talks to a task only through the
:class:`~symtime_repro.tasks.base.Task` protocol; everything else asks the task's YAML.

Adding a task: write a module with a class implementing ``Task`` (deriving ``BaseTask`` gives the
optional parts) bound to the module-level name ``TASK``, and a YAML ``conf/task/<name>.yaml`` that
sets ``task.name`` and declares what the task is (:mod:`.facts`: ``task.head``, ``task.metrics``,
``task.derived``). The module is ``symtime_repro/tasks/<name>.py``, or any importable module named
by ``task.module`` (a task kept in your own project; its YAML then lives in a folder you add with
``hydra.searchpath=[file:///abs/path/conf]``). Nothing else changes: the module is imported on
demand, so an unused task costs nothing at start-up.

This package's ``__init__`` and :mod:`.facts` import no torch: the config check, the checkpoint
rules and the report ask them questions without loading a network.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Optional

from ..errors import UserError

if TYPE_CHECKING:
    from .base import Task


def module_name(name: str, module: Optional[str] = None) -> str:
    """The Python module that implements task ``name``: ``task.module``, else ours by that name."""
    return module or f"{__name__}.{name}"


def module_exists(name: str, module: Optional[str] = None) -> bool:
    if not module and (not name or not name.isidentifier()):
        return False
    try:
        return importlib.util.find_spec(module_name(name, module)) is not None
    except (ImportError, ValueError):  # task.module=a.b where package a does not exist
        return False


def make_task(cfg) -> "Task":
    """The task ``cfg.task`` names: the ``TASK`` class of its module, given the run config."""
    name, module = cfg.task.name, module_name(cfg.task.name, cfg.task.module)
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise  # a missing dependency inside the task module is a bug, not a bad name
        raise UserError(f"task.name={name}: no module {module} implements it") from exc
    if not hasattr(found, "TASK"):
        raise UserError(f"task.name={name}: module {module} has no TASK (the class implementing the task)")
    return found.TASK(cfg)



def task_class(name: str, module: Optional[str] = None) -> type:
    """The ``TASK`` class of task ``name``, not built: what it declares (``monitor``,
    ``validates_on_test``). Imports the task's module, and so torch."""
    module = module_name(name, module)
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise UserError(f"task.name={name}: no module {module} implements it") from exc
    if not hasattr(found, "TASK"):
        raise UserError(f"task.name={name}: module {module} has no TASK (the class implementing the task)")
    return found.TASK
