"""One report from start to end: read the references and the runs, group them, and write report.md,
results.csv and plots/ (each file atomically)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write_bytes, write_csv
from .csv_table import results_fieldnames, results_rows
from .grouping import group_runs
from .markdown import render_tables
from .plots import make_plots
from .references import DEFAULT_REFERENCE_DIR, load_references
from .runs import collect


@dataclass
class Report:
    markdown_path: Path
    csv_path: Path
    tables: str  # the tables part of report.md, as printed to stdout


def write_report(root: Path, out: Path | None = None, reference_dir: Path = DEFAULT_REFERENCE_DIR) -> Report:
    """Collect the runs below ``root`` and write report.md, results.csv and plots/ into ``out``."""
    root = Path(root)
    references = load_references(reference_dir)  # a bad --reference is reported before any run is read
    runs, benches = collect(root)
    out = Path(out) if out is not None else root
    groups = group_runs(runs, references)
    tables = render_tables(root, runs, groups, references, benches)
    plots = make_plots(out, runs, groups)
    csv_path, md_path = out / "results.csv", out / "report.md"
    write_csv(csv_path, results_rows(runs, references), results_fieldnames())
    atomic_write_bytes(md_path, (tables + "\n" + plots).encode())
    return Report(md_path, csv_path, tables)

