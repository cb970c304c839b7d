"""Everything the report knows about particular tasks, in one place, behind a few functions.

The rest of the report never compares a task name with a literal: it asks this module. Each task
the report knows is one :class:`TaskFacts` record in ``_KNOWN``; a task missing there (a new one)
gets neutral answers, and its metric names are learnt from its runs' metrics.json.

The interface (``task`` is the name runs record, e.g. ``"long_term"``):

- ``metrics(task)`` → the test metrics a table shows, in order (``("mse", "mae")``);
- ``all_metrics()`` → every metric name of every task, known or learnt (results.csv's columns);
- ``note_recorded_metrics(task, names)`` → remember the metric names a run of an unknown task
  recorded (metrics.json's ``test_metrics``); ignored for a task listed here;
- ``rank(task)`` → where a task's table sorts: known tasks in ``_KNOWN``'s order, others after;
- ``in_percent(task)`` → whether metrics are shown ×100, the unit the references publish;
- ``decimals(task)`` → digits the task's metrics are printed with, as the references print them;
- ``shows_seq_len(task)`` → whether the task's table has a seq_len column;
- ``setting(task, run_metrics, run_config)`` → the text that tells apart a task's rows besides the
  dataset (``"pred_len=96"``, ``"mask_ratio=0.25"``, ``"Hourly"``), from metrics.json or the config;
- ``named_setting_rank(setting)`` → where a setting that is a word (an M4 pattern) sorts, or None;
- ``plot_kind(task)`` → which test-window plot a run gets: ``FORECAST_WINDOWS``,
  ``IMPUTATION_WINDOWS`` or None;
- ``sweep_summary(task)`` → the file a task's sweep writes at its top, scoring all runs together
  (the M4 scorer's scores.json), as a :class:`SweepSummary`, or None.

Every answer comes from a task's :class:`TaskFacts`, so the records can later be read from facts
each task declares in its own YAML without touching the callers. This module imports nothing of
the project (and no torch): the report runs where only results were copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

FORECAST_WINDOWS = "forecast"  # input history, then truth and forecast over the horizon
IMPUTATION_WINDOWS = "imputation"  # truth and reconstruction over the window, hidden points marked


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


M4_SUMMARY = SweepSummary(
    file="scores.json",  # written by scripts/short_term_forecast.sh: all patterns scored together
    title="M4 summary",
    note=("Scored together by `python -m symtime_repro.metrics.m4 score` (the official M4 summary: \"Others\" = "
          "Weekly + Daily + Hourly and \"Average\" = all six patterns, weighted by series count), so "
          "these compare like for like with the references beside them."),
    dataset="M4",
    rows={"Others": ("M4", "Others"), "Average": ("M4 (average)", "avg")},
)

# The order of this table is the order of the report's sections.
_KNOWN: dict[str, TaskFacts] = {
    "long_term": TaskFacts(("mse", "mae"), shows_seq_len=True,  # the references name the seq_len they used
                           setting=Setting("pred_len", "task.pred_len"), plot_kind=FORECAST_WINDOWS),
    "short_term": TaskFacts(("smape", "mase", "owa"), decimals=3,  # M4 scores are published with 3 digits
                            setting=Setting("seasonal_pattern", "dataset.seasonal_pattern", labelled=False,
                                            word_order=("yearly", "quarterly", "monthly", "weekly", "daily",
                                                        "hourly", "others")),
                            sweep_summary=M4_SUMMARY),
    "imputation": TaskFacts(("mse", "mae"), setting=Setting("mask_ratio", "task.mask_ratio", number=True),
                            plot_kind=IMPUTATION_WINDOWS),
    "classification": TaskFacts(("accuracy",), percent=True, decimals=2),
    "anomaly": TaskFacts(("precision", "recall", "f1", "accuracy"), percent=True, decimals=2),
}
_UNKNOWN = TaskFacts(())
# Metric names runs of tasks missing from _KNOWN recorded in metrics.json ("test_metrics"), learnt
# while reading them: a new task is reported without a change here.
_RECORDED_METRICS: dict[str, tuple[str, ...]] = {}


def _facts(task: str) -> TaskFacts:
    return _KNOWN.get(task, _UNKNOWN)


def metrics(task: str) -> tuple[str, ...]:
    return _facts(task).metrics or _RECORDED_METRICS.get(task, ())


def note_recorded_metrics(task: str, names: list[Any]) -> None:
    if task not in _KNOWN:
        _RECORDED_METRICS[task] = tuple(str(name) for name in names)


def all_metrics() -> tuple[str, ...]:
    known = (m for facts in _KNOWN.values() for m in facts.metrics)
    learnt = (m for names in _RECORDED_METRICS.values() for m in names)
    return tuple(dict.fromkeys([*known, *learnt]))


def rank(task: str) -> int:
    order = list(_KNOWN)
    return order.index(task) if task in order else len(order)


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
    words = [word for facts in _KNOWN.values() if facts.setting for word in facts.setting.word_order]
    return words.index(setting.lower()) if setting.lower() in words else None


def plot_kind(task: str) -> str | None:
    return _facts(task).plot_kind


def sweep_summary(task: str) -> SweepSummary | None:
    return _facts(task).sweep_summary
