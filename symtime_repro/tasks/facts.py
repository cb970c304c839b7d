"""What a task is, as its YAML declares it: the facts other code asks instead of the task's name.

``conf/task/<name>.yaml`` declares, under ``task:``,

* ``head``: what the network outputs, ``forecast`` (the next ``pred_len`` steps), ``reconstruct``
  (the input window), ``classify`` (class logits) or ``pretrain`` (the pre-training network's
  losses, models/pretrain.py); the model is built from it;
* ``metrics``: the test metrics the task reports, headline first (metrics.json, the run's table,
  the report's columns);
* ``derived``: which of ``seq_len`` / ``pred_len`` the task derives from the data, so ``null``
  is allowed for them (M4 horizons, UEA case lengths);
* ``report``: how the report shows the task's results (units, digits, what tells its rows apart,
  its plot; symtime_repro/report/task_facts.py reads it). Optional: without it, plain numbers.

Every run records them in its config (``config.yaml``, the checkpoint). A record written before
they existed is read with the facts of the task's YAML shipped in the package (:func:`of_record`),
so the report and ``mode=test`` read old runs the same way. No torch here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

FACT_KEYS = ("head", "metrics", "derived", "report")
# The network's heads: models/symtime.py builds the first three, models/pretrain.py the last.
HEADS = ("forecast", "reconstruct", "classify", "pretrain")


@lru_cache(maxsize=None)
def _shipped(name: str) -> tuple[tuple[str, Any], ...]:
    import yaml
    from importlib.resources import files

    path = files("symtime_repro.conf") / "task" / f"{name}.yaml"
    try:
        declared = (yaml.safe_load(path.read_text()) or {}).get("task", {})
    except (OSError, ValueError, AttributeError):  # not a shipped task (your own YAML), or unreadable
        return ()
    return tuple((key, declared[key]) for key in FACT_KEYS if key in declared)


@lru_cache(maxsize=None)
def shipped_tasks() -> tuple[str, ...]:
    """The tasks whose YAML the package ships (conf/task/)."""
    from importlib.resources import files

    folder = files("symtime_repro.conf") / "task"
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")))


def shipped(name: str) -> dict[str, Any]:
    """The facts ``conf/task/<name>.yaml`` of the package declares; {} for a task it does not ship."""
    return {key: list(value) if isinstance(value, (list, tuple)) else value for key, value in _shipped(name)}


def of_record(task: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a recorded ``task`` section: its own, else those its task's YAML declares."""
    facts = shipped(str(task.get("name", "")))
    facts.update({key: task[key] for key in FACT_KEYS if task.get(key) is not None})
    return facts
