"""Everything the report knows about particular tasks, behind a few functions.

The rest of the report never compares a task name with a literal: it asks this module, which
reads each task's own declaration (symtime_repro/tasks/facts.py): ``task.metrics`` and the
``task.report`` block of ``conf/task/<name>.yaml``, e.g.

    report:
      order: 1               # where the task's section sorts
      percent: false         # fractions shown ×100, the unit the references publish
      decimals: 4            # digits, as the references print them
      shows_seq_len: true    # a seq_len column (the references name the seq_len they used)
      setting: {name: pred_len, key: task.pred_len}   # what tells a task's rows apart besides the dataset
      plot: forecast         # the test-window plot: forecast | masked | none
      sweep_summary: {...}   # a file the task's sweep writes at its top (M4's scores.json)

A task the package does not ship is read from its runs' records (config.yaml, metrics.json's
``test_metrics``); without a ``report`` block it gets neutral answers.

The interface (``task`` is the name runs record):

- ``metrics(task)`` → the test metrics a table shows, in order (``("mse", "mae")``);
- ``all_metrics()`` → every metric name of every task, shipped or learnt (results.csv's columns);
- ``note_record(task, run_config, test_metrics)`` → learn an unshipped task's facts from a run;
- ``rank(task)`` → where a task's table sorts;
- ``in_percent(task)``, ``decimals(task)``, ``shows_seq_len(task)``;
- ``setting(task, run_metrics, run_config)`` → the text that tells apart a task's rows besides the
  dataset (``"pred_len=96"``, ``"mask_ratio=0.25"``, ``"Hourly"``), from metrics.json or the config;
- ``named_setting_rank(setting)`` → where a setting that is a word (an M4 pattern) sorts, or None;
- ``plot_kind(task)`` → ``FORECAST_WINDOWS``, ``MASKED_WINDOWS`` or None;
- ``sweep_summary(task)`` → a :class:`SweepSummary`, or None.

No torch here: the report runs where only results were copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

from ..tasks import facts as task_facts

FORECAST_WINDOWS = "forecast"  # input history, then truth and forecast over the horizon
MASKED_WINDOWS = "masked"  # truth and reconstruction over the window, hidden points marked


@dataclass(frozen=True)
class Setting:
    """Where a task's setting comes from and how it is written."""

    name: str  # the metrics.json key, and the label in "name=value"
    config_key: str  # the flattened config key, for runs whose metrics.json lacks it
    labelled: bool = True  # "pred_len=96"; False: the bare value ("Hourly")
    number: bool = False  # written with :g, so 0.5 and 0.50 are one setting
    word_order: tuple[str, ...] = ()  # bare values in the order the references publish them (lower case)


@dataclass(frozen=True)
class SweepSummary:
    """A file a task's sweep writes at its top, one row per group of series it scored together."""

    file: str
    title: str
    note: str  # says what the rows are and why they compare like for like
    dataset: str  # the reference dataset of a row `rows` does not name
    rows: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # row -> (reference dataset, setting)

    def reference_key(self, row: str) -> tuple[str, str]:
        """(dataset, setting) of the references that are the same aggregate as ``row``."""
        return self.rows.get(row, (self.dataset, row))


@dataclass(frozen=True)
class TaskFacts:
    """What the report needs to know about one task."""

    metrics: tuple[str, ...]  # the contract's test metrics (docs/contract.md), in table order
    percent: bool = False  # our fractions ×100: the references publish percentages
    decimals: int = 4
    shows_seq_len: bool = False
    setting: Setting | None = None
    plot_kind: str | None = None
    sweep_summary: SweepSummary | None = None
    order: int = 0  # where the task's section sorts in the report


def _setting(declared: Mapping[str, Any] | None) -> Setting | None:
    if not declared:
        return None
    return Setting(str(declared["name"]), str(declared["key"]), bool(declared.get("labelled", True)),
                   bool(declared.get("number", False)), tuple(str(w).lower() for w in declared.get("order", ())))


def _sweep_summary(declared: Mapping[str, Any] | None) -> SweepSummary | None:
    if not declared:
        return None
    rows = {str(row): (str(key[0]), str(key[1])) for row, key in (declared.get("rows") or {}).items()}
    return SweepSummary(str(declared["file"]), str(declared["title"]), " ".join(str(declared["note"]).split()),
                        str(declared["dataset"]), rows)


def _parse(facts: Mapping[str, Any]) -> TaskFacts:
    """A task's facts (tasks/facts.py: ``task.metrics`` and the ``task.report`` block) as a record."""
    shown = facts.get("report") or {}
    return TaskFacts(tuple(str(m) for m in facts.get("metrics") or ()), bool(shown.get("percent", False)),
                     int(shown.get("decimals", 4)), bool(shown.get("shows_seq_len", False)),
                     _setting(shown.get("setting")), shown.get("plot"), _sweep_summary(shown.get("sweep_summary")),
                     int(shown.get("order", len(task_facts.shipped_tasks()) + 1)))


_UNKNOWN = TaskFacts(())
# Facts read from run records (their config.yaml's task section, metrics.json's test_metrics),
# learnt while reading them: a task the package does not ship is reported from its runs alone.
_RECORDED: dict[str, Mapping[str, Any]] = {}


def note_record(task: str, run_config: Mapping[str, Any], test_metrics: Any) -> None:
    """Remember what a run recorded about its task: the facts in its (flattened) config, else the
    metric names of its metrics.json. Facts of a shipped task's YAML fill in what a record lacks."""
    recorded = {key[len("task."):]: value for key, value in run_config.items() if key.startswith("task.")}
    section = _unflatten(recorded)
    if section.get("metrics") is None and isinstance(test_metrics, list):
        section["metrics"] = list(test_metrics)
    section["name"] = task
    if task not in _RECORDED or not task_facts.shipped(task):
        _RECORDED[task] = task_facts.of_record(section)


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


@lru_cache(maxsize=None)
def _shipped(task: str) -> TaskFacts:
    facts = task_facts.shipped(task)
    return _parse(facts) if facts else _UNKNOWN


def _facts(task: str) -> TaskFacts:
    if task_facts.shipped(task):  # the package's own task: its YAML, as for every run of it
        return _shipped(task)
    return _parse(_RECORDED[task]) if task in _RECORDED else _UNKNOWN


def metrics(task: str) -> tuple[str, ...]:
    return _facts(task).metrics


def all_metrics() -> tuple[str, ...]:
    tasks = [*sorted(task_facts.shipped_tasks(), key=rank), *_RECORDED]
    return tuple(dict.fromkeys(m for task in tasks for m in metrics(task)))


def rank(task: str) -> int:
    return _facts(task).order


def in_percent(task: str) -> bool:
    return _facts(task).percent


def decimals(task: str) -> int:
    return _facts(task).decimals


def shows_seq_len(task: str) -> bool:
    return _facts(task).shows_seq_len


def _first_given(*values: Any) -> Any:
    return next((v for v in values if v is not None and v != ""), None)


def setting(task: str, run_metrics: Mapping[str, Any], run_config: Mapping[str, Any]) -> str:
    """``"pred_len=96"``; ``"pred_len=?"`` when neither file says; ``""`` for a task without settings.
    metrics.json wins over the (flattened) config: it records what the run really used."""
    fact = _facts(task).setting
    if fact is None:
        return ""
    value = _first_given(run_metrics.get(fact.name), run_config.get(fact.config_key))
    if not fact.labelled:
        return str(value or "")
    if value is None:
        return f"{fact.name}=?"
    return f"{fact.name}={float(value):g}" if fact.number else f"{fact.name}={value}"


def named_setting_rank(setting: str) -> int | None:
    shipped = sorted(task_facts.shipped_tasks(), key=rank)
    words = [w for task in shipped if _facts(task).setting for w in _facts(task).setting.word_order]
    return words.index(setting.lower()) if setting.lower() in words else None


def plot_kind(task: str) -> str | None:
    return _facts(task).plot_kind


def sweep_summary(task: str) -> SweepSummary | None:
    return _facts(task).sweep_summary
