"""report.md's tables: one per task (with the paper's averages and the sweep's summary), devices and
throughput, failed or unfinished runs, and benchmarks. Everything but the plots."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import task_facts
from .grouping import Group, paper_averages, run_sort_key
from .references import Reference
from .runs import Bench, Run, shorten, wall_seconds

def fmt(value: float | None, digits: int, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_mean_std(stat: tuple[float, float | None, int] | None, digits: int) -> str:
    if stat is None:
        return "–"
    mean, std, _ = stat
    return fmt(mean, digits) if std is None else f"{fmt(mean, digits)} ± {fmt(std, digits)}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def task_section(task: str, groups: Sequence[Group], references: Sequence[Reference]) -> str:
    metrics, digits = task_facts.metrics(task), task_facts.decimals(task)
    with_reference = [m for m in metrics if any(m in g.references for g in groups)]
    show_seq_len = task_facts.shows_seq_len(task)
    show_variant = any(g.variant for g in groups)
    show_note = any(g.note for g in groups)
    header = ["dataset", "setting"] + (["seq_len"] if show_seq_len else []) + (["variant"] if show_variant else [])
    header += ["n"] + list(metrics)
    for metric in with_reference:
        header += [f"ref {metric}", f"Δ {metric}"]
    header += ["note"] if show_note else []
    rows = []
    for g in groups:
        row = [g.dataset, g.setting] + ([g.seq_len if g.seq_len is not None else "?"] if show_seq_len else [])
        row += [g.variant] if show_variant else []
        row += [len(g.runs)] + [fmt_mean_std(g.stats.get(m), digits) for m in metrics]
        for metric in with_reference:
            ref = g.references.get(metric)
            row += [fmt(ref.value if ref else None, digits), fmt(g.difference(metric), digits, signed=True)]
        row += [g.note] if show_note else []
        rows.append(row)

    unit = (" Metrics in percent: our fractions × 100, the unit the references publish."
            if task_facts.in_percent(task) else "")
    marks = ""
    if any(g.subset for g in groups):
        marks += (" Rows noted *subset test* scored only a sample of the test set (trainer.limit_eval_batches): "
                  "they are not compared with reference numbers nor counted in the averages below.")
    if any(r.transfer for g in groups for r in g.runs):
        marks += (" Rows noted *transfer evaluation* test a model trained on another dataset: they are not compared "
                  "with reference numbers nor counted in the averages below.")
    if any(g.reevaluation for g in groups):
        marks += (" Rows noted *re-evaluation* test a checkpoint again (mode=test): n counts evaluations of the same "
                  "weights, not trained seeds, and such a row counts in the averages below only where no training "
                  "row has its dataset and setting.")
    parts = [f"## {task}", "",
             f"Test metrics, mean ± sample std over runs that differ only in seed (n runs).{unit} "
             f"Δ = ours − reference.{marks}", "", markdown_table(header, rows), ""]
    if not with_reference:
        parts += ["No per-dataset reference value matches these rows.", ""]

    averages = paper_averages(task, groups, references)
    if averages:
        avg_rows = []
        for avg in averages:
            avg_rows.append([f"paper: {avg.reference.dataset}", avg.reference.metric, fmt(avg.reference.value, digits),
                             fmt(avg.ours, digits), fmt(avg.difference, digits, signed=True), avg.note])
        header = ["paper averages", "metric", "paper", "ours (mean of rows)", "Δ", "note"]
        parts += ["Paper averages:", "", markdown_table(header, avg_rows), ""]

    sources = sorted({g.references[m].source for g in groups for m in g.references}
                     | {a.reference.source for a in averages})
    if sources:
        parts += ["Reference sources:", ""] + [f"- {s}" for s in sources] + [""]
    return "\n".join(parts)


def _number(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def device_section(runs: Sequence[Run]) -> str:
    rows = [[r.name, r.task, r.dataset, r.setting, r.seed if r.seed is not None else "?",
             r.metrics.get("device_name") or r.metrics.get("device") or "?",
             _number(r.metrics.get("train_samples_per_second")), _number(r.metrics.get("peak_memory_mb")),
             _number(wall_seconds(r)), r.metrics.get("epochs_run", "?")]
            for r in sorted((r for r in runs if r.completed), key=run_sort_key)]
    header = ["run", "task", "dataset", "setting", "seed", "device", "train samples/s", "peak MB", "wall s", "epochs"]
    parts = ["## Devices and throughput", ""]
    if not rows:
        return "\n".join(parts + ["No completed run.", ""])
    return "\n".join(parts + ["Wall s is `wall_seconds` where the run recorded it, else train + test seconds.", "",
                               markdown_table(header, rows), ""])


def problems_section(runs: Sequence[Run]) -> str:
    bad = [r for r in runs if not r.completed]
    parts = ["## Failed or incomplete runs", ""]
    if not bad:
        return "\n".join(parts + ["None: every run dir holds a completed metrics.json.", ""])
    rows = [[r.name, r.status, r.task or "?", r.dataset or "?", r.setting, shorten(r.reason, 300)]
            for r in sorted(bad, key=run_sort_key)]
    return "\n".join(parts + [markdown_table(["run", "status", "task", "dataset", "setting", "reason"], rows), ""])


def sweep_summary_section(root: Path, task: str, references: Sequence[Reference]) -> str:
    """The summary a task's sweep wrote at its top (the M4 scorer's scores.json: per pattern, "Others",
    "Average"), beside the references that are the same aggregate (the repo's logged "Others", the
    paper's M4 average); "" when the task has none or the sweep did not write it."""
    summary = task_facts.sweep_summary(task)
    if summary is None:
        return ""
    path = Path(root) / summary.file
    try:
        scores = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    if not isinstance(scores, dict) or not scores:
        return ""
    metrics, digits = task_facts.metrics(task), task_facts.decimals(task)
    header = ["group", "series", *metrics, "reference", "Δ"]
    rows = []
    for group, values in scores.items():
        if not isinstance(values, dict):
            continue
        dataset, setting = summary.reference_key(group)
        same = [r for r in references if r.task == task
                and r.dataset.lower() == dataset.lower() and r.setting.lower() == setting.lower()]
        found = [f"{r.metric} {r.value:g}" for r in same]
        deltas = [f"{r.metric} {values[r.metric] - r.value:+.{digits}f}" for r in same
                  if isinstance(values.get(r.metric), (int, float))]
        rows.append([group, values.get("series", ""), *(fmt(values.get(m), digits) for m in metrics),
                     ", ".join(found), ", ".join(deltas)])
    if not rows:
        return ""
    return "\n".join([f"### {summary.title} ({path.name})", "", summary.note, "", markdown_table(header, rows), ""])


def bench_section(benches: Sequence[Bench]) -> str:
    """Timings of ``python -m symtime_repro.bench`` found below the folder: not runs, no metrics."""
    if not benches:
        return ""
    rows = []
    for b in sorted(benches, key=lambda b: b.name):
        r = b.result
        if not r:
            rows.append([b.name, "–", "–", "no bench.json (running, killed or failed; see its run.log)", "–", "–", "–",
                         "–"])
            continue
        mfu = r.get("mfu")
        rows.append([b.name, r.get("task", "?"), r.get("dataset", "?"), r.get("device_name") or r.get("device", "?"),
                     _number(r.get("train_samples_per_second")), _number(r.get("eval_samples_per_second")),
                     f"{mfu:.1%}" if isinstance(mfu, (int, float)) else "–", _number(r.get("peak_memory_mb"))])
    header = ["bench", "task", "dataset", "device", "train samples/s", "eval samples/s", "MFU", "peak MB"]
    return "\n".join(["## Benchmarks (python -m symtime_repro.bench)", "",
                      "Timings, not runs: they have no test metrics and are not in the tables above.", "",
                      markdown_table(header, rows), ""])


def render_tables(root: Path, runs: Sequence[Run], groups: Sequence[Group], references: Sequence[Reference],
                  benches: Sequence[Bench] = ()) -> str:
    """Everything but the plots: the part also printed to stdout."""
    counts = {status: sum(r.status == status for r in runs) for status in dict.fromkeys(r.status for r in runs)}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    benched = f"; {len(benches)} bench dir(s), listed apart" if benches else ""
    parts = [f"# SymTime reproduction report: {root}", "",
             f"{len(runs)} run dir(s): {summary or 'none'}{benched}. "
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}.", ""]
    for task in sorted({g.task for g in groups}, key=lambda t: (task_facts.rank(t), t)):
        parts.append(task_section(task, [g for g in groups if g.task == task], references))
        if task_facts.sweep_summary(task) is not None:
            parts.append(sweep_summary_section(root, task, references))
    if not groups:
        parts += ["No completed run: no result table.", ""]
    parts.append(device_section(runs))
    parts.append(problems_section(runs))
    parts.append(bench_section(benches))
    return "\n".join(parts)


