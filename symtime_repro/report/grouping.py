"""Grouping completed runs into table rows: runs that differ only in seed are one row (mean ± std),
with the matching reference values, and the paper's averages beside the mean of our rows."""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..config import NOT_RESULT_KEYS
from ..tasks.facts import FACT_KEYS
from . import task_facts
from .references import Reference, find_reference, setting_fields
from .runs import Run, first_given, metric_value

# Config keys a row does not tell apart: those that never change results, and the seed (a row is
# the mean over seeds).
IGNORED_CONFIG_KEYS = NOT_RESULT_KEYS | {"seed"}
FACT_PATHS = [["task", fact] for fact in FACT_KEYS]


def _result_key(key: str) -> bool:
    """A config key that tells runs apart. A task's declared facts (task.head, task.report.…) follow
    from its name: a run recorded before they existed is still a seed of the same experiment."""
    return key not in IGNORED_CONFIG_KEYS and key.split(".")[:2] not in FACT_PATHS


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n − 1); no std for a single run."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def run_fingerprint(run: Run) -> dict[str, Any]:
    """What must agree for runs to be seeds of one experiment: the composed config minus the seed
    and keys that don't change results; runs without .hydra/ fall back to metrics.json fields."""
    if run.config:
        return {k: v for k, v in run.config.items() if _result_key(k)}
    keys = ("model", "mode", "pretrained", "ckpt", "device", "seq_len", "pred_len")
    return {k: run.metrics.get(k) for k in keys}


@dataclass
class Group:
    """Runs that differ only in seed: one table row."""

    task: str
    dataset: str
    setting: str
    seq_len: int | None
    runs: list[Run]
    variant: str = ""  # the config keys telling apart groups with the same dataset and setting
    stats: dict[str, tuple[float, float | None, int]] = field(default_factory=dict)
    references: dict[str, Reference] = field(default_factory=dict)

    def difference(self, metric: str) -> float | None:
        if metric in self.stats and metric in self.references:
            return self.stats[metric][0] - self.references[metric].value
        return None

    @property
    def subset(self) -> bool:
        return self.runs[0].subset  # one group never mixes subset and full tests (group_runs' key)

    @property
    def reevaluation(self) -> bool:
        return self.runs[0].reevaluation

    @property
    def comparable(self) -> bool:
        return self.runs[0].comparable  # group_runs' key keeps apart what compares and what does not

    @property
    def note(self) -> str:
        """What the row is, where it is not a full-test training run."""
        notes = []
        if self.reevaluation:
            ckpts = sorted({str(first_given(r.metrics.get("ckpt"), r.config.get("ckpt")) or "?") for r in self.runs})
            shown = ", ".join("/".join(Path(c).parts[-3:]) for c in ckpts[:2]) + (", …" if len(ckpts) > 2 else "")
            notes.append(f"re-evaluation (mode=test) of {shown}")
        if self.runs[0].transfer:
            trained = sorted({str(r.metrics.get("trained_on")) for r in self.runs})
            notes.append(f"transfer evaluation: a model trained on {', '.join(trained)}; not compared with references")
        if self.subset:
            phrases = sorted({r.subset_phrase for r in self.runs})
            notes.append(f"subset test: {phrases[0] if len(phrases) == 1 else 'a sample of the test set'} "
                         "(trainer.limit_eval_batches); not compared with references")
        return "; ".join(notes)


def _fingerprint_key(fingerprint: dict[str, Any]) -> str:
    return json.dumps(fingerprint, sort_keys=True, default=str)


def variant_labels(fingerprints: Sequence[dict[str, Any]], limit: int = 4) -> list[str]:
    """For groups sharing a dataset and setting, a short ``key=value`` label per group naming the
    config keys whose values differ (so two rows for ETTh1 pred_len=96 say why they are two)."""
    if len(fingerprints) < 2:
        return [""] * len(fingerprints)
    keys = sorted({k for fp in fingerprints for k in fp})
    differing = [k for k in keys if len({json.dumps(fp.get(k, "?"), default=str) for fp in fingerprints}) > 1]
    labels = []
    for fp in fingerprints:
        parts = [f"{k}={fp.get(k, '?')}" for k in differing]
        labels.append(", ".join(parts[:limit]) + (", …" if len(parts) > limit else ""))
    return labels


def setting_sort_key(setting: str) -> tuple:
    """Named settings (M4 patterns) in their published order, then settings by their first number."""
    named = task_facts.named_setting_rank(setting)
    if named is not None:
        return (0, named, "")
    numbers = [float(v) for v in setting_fields(setting).values() if re.fullmatch(r"[-+0-9.eE]+", v)]
    return (1, numbers[0] if numbers else math.inf, setting)


def group_runs(runs: Iterable[Run], references: Sequence[Reference]) -> list[Group]:
    """Completed runs grouped by (task, dataset, setting, config without seed), with each metric's
    mean ± std and the matching reference values."""
    buckets: dict[tuple, list[Run]] = {}
    fingerprints: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        if not run.completed:
            continue
        fingerprint = run_fingerprint(run)
        # Subset tests and re-evaluations are never pooled with full-test training runs, whatever
        # the config files say (old run dirs lack config.yaml).
        key = (run.task, run.dataset, run.setting, run.seq_len,
               _fingerprint_key({**fingerprint, "subset test": run.subset, "re-evaluation": run.reevaluation,
                                 "trained on": run.metrics.get("trained_on") if run.transfer else None}))
        buckets.setdefault(key, []).append(run)
        fingerprints[key] = fingerprint

    groups: dict[tuple, Group] = {}
    for key, members in buckets.items():
        task, dataset, setting, seq_len, _ = key
        group = Group(task, dataset, setting, seq_len, sorted(members, key=lambda r: (r.seed is None, r.seed, r.name)))
        for metric in task_facts.metrics(task):
            values = [v for v in (metric_value(r, metric) for r in members) if v is not None]
            if values:
                mean, std = mean_std(values)
                group.stats[metric] = (mean, std, len(values))
            ref = find_reference(references, task, dataset, setting, seq_len, metric) if group.comparable else None
            if ref is not None:
                group.references[metric] = ref
        groups[key] = group

    # Label groups that would otherwise be two indistinguishable rows.
    same_row: dict[tuple, list[tuple]] = {}
    for key in groups:
        same_row.setdefault(key[:4], []).append(key)
    for keys in same_row.values():
        for key, label in zip(keys, variant_labels([fingerprints[k] for k in keys])):
            groups[key].variant = label

    return sorted(groups.values(), key=lambda g: (task_facts.rank(g.task), g.task, g.dataset.lower(),
                                                  setting_sort_key(g.setting), g.seq_len or 0, g.variant))


@dataclass
class PaperAverage:
    """A paper average (over datasets the figure does not name) beside the mean of our rows."""

    reference: Reference
    ours: float | None
    rows: list[str]  # "dataset setting" of each of our rows in the mean

    @property
    def difference(self) -> float | None:
        return None if self.ours is None else self.ours - self.reference.value

    @property
    def note(self) -> str:
        # The figure never names its datasets (nor, for M4, how patterns are weighted), so the two
        # numbers are never the same average; say what each one is.
        shown = ", ".join(self.rows[:8]) + (f", … ({len(self.rows)} rows)" if len(self.rows) > 8 else "")
        return (f"not like-for-like: the paper's {self.reference.dataset}; ours is the plain mean of our "
                f"{len(self.rows)} row(s): {shown or 'none'}")


def averaged_groups(groups: Sequence[Group]) -> list[Group]:
    """The rows "ours" averages beside the paper: full tests only, and a re-evaluation only where no
    training run covers its dataset and setting (else one model would count twice)."""
    trained = {(g.task, g.dataset, g.setting, g.seq_len) for g in groups if not g.reevaluation and g.comparable}
    return [g for g in groups if g.comparable
            and (not g.reevaluation or (g.task, g.dataset, g.setting, g.seq_len) not in trained)]


def paper_averages(task: str, groups: Sequence[Group], references: Sequence[Reference]) -> list[PaperAverage]:
    found = []
    for ref in references:
        if not (ref.is_average and ref.task == task):
            continue
        used = [g for g in averaged_groups(groups) if g.task == task and ref.metric in g.stats]
        ours = statistics.fmean(g.stats[ref.metric][0] for g in used) if used else None
        found.append(PaperAverage(ref, ours, [" ".join(filter(None, (g.dataset, g.setting, g.variant))) for g in used]))
    return found


def run_sort_key(run: Run) -> tuple:
    """The order runs are listed in: by task, dataset, setting and seed, as the tables' rows."""
    return (task_facts.rank(run.task), run.dataset.lower(), setting_sort_key(run.setting), run.seed or 0, run.name)

