"""results.csv: one row per run (failed ones too), for programs rather than readers."""

from __future__ import annotations

from typing import Any, Sequence

from . import task_facts
from .grouping import run_sort_key
from .references import Reference, find_reference
from .runs import Run, first_given, metric_value, wall_seconds

def results_fieldnames() -> list[str]:
    metrics = list(task_facts.all_metrics())
    fields = ["run_dir", "status", "reason", "task", "dataset", "setting", "seq_len", "seed", "mode", "test_subset",
              "test_samples_scored", "test_samples_total", "unit"]
    fields += metrics
    fields += ["device", "device_name", "train_samples_per_second", "peak_memory_mb", "wall_seconds", "epochs_run"]
    for metric in metrics:
        fields += [f"{metric}_reference", f"{metric}_difference"]
    return fields + ["reference_source"]


def results_rows(runs: Sequence[Run], references: Sequence[Reference]) -> list[dict[str, Any]]:
    """One row per run (failed ones too), metrics in the report's unit, each with the matching
    reference value and ours − reference."""
    rows = []
    for run in sorted(runs, key=run_sort_key):
        row: dict[str, Any] = {
            "run_dir": run.name, "status": run.status, "reason": run.reason, "task": run.task,
            "dataset": run.dataset, "setting": run.setting, "seq_len": run.seq_len, "seed": run.seed,
            "mode": first_given(run.metrics.get("mode"), run.config.get("mode")), "test_subset": run.subset,
            "test_samples_scored": run.metrics.get("test_samples_scored"),
            "test_samples_total": run.metrics.get("test_samples_total"),
            "unit": "percent" if task_facts.in_percent(run.task) and run.completed else "",
            "device": run.metrics.get("device"), "device_name": run.metrics.get("device_name"),
            "train_samples_per_second": run.metrics.get("train_samples_per_second"),
            "peak_memory_mb": run.metrics.get("peak_memory_mb"), "wall_seconds": wall_seconds(run),
            "epochs_run": run.metrics.get("epochs_run"),
        }
        sources = []
        for metric in task_facts.metrics(run.task) if run.completed else ():
            value = metric_value(run, metric)
            row[metric] = value
            if not run.comparable:  # a sample of the test set, or another dataset's model: no reference
                continue
            ref = find_reference(references, run.task, run.dataset, run.setting, run.seq_len, metric)
            if ref is not None:
                row[f"{metric}_reference"] = ref.value
                row[f"{metric}_difference"] = None if value is None else value - ref.value
                sources.append(ref.source)
        row["reference_source"] = "; ".join(dict.fromkeys(sources))
        rows.append(row)
    return rows


