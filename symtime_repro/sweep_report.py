"""A sweep reports itself: when a multirun ends, the report of its sweep dir (report.md, results.csv,
plots/: the machinery of ``python -m symtime_repro.report``) is written there, and its tables and
path are printed.

A Hydra callback, ``hydra.callbacks.sweep_report`` in conf/config.yaml. A report that cannot be
written is a warning, never a failed sweep: the runs are what the sweep was for, and the same report
can be written later by hand. A caller that reports after work of its own (the per-task scripts in
scripts/, which score M4 first) turns it off with ``~hydra.callbacks.sweep_report``.

Hydra calls ``on_multirun_end`` when the sweeper returns, so a sweep stopped by a signal or by a
job that ended the process writes no report; ``python -m symtime_repro.report <sweep dir>`` does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("symtime_repro")


def report_sweep(sweep_dir: Path) -> bool:
    """Write the report of ``sweep_dir`` into it and print its tables and path; False (with a
    warning) when it could not be written. A sweep dir that was never created ran nothing: silence."""
    if not sweep_dir.is_dir():
        return False
    try:
        from .report.write import write_report

        report = write_report(sweep_dir)
    except Exception as exc:  # a report is a summary: whatever stops it must not fail the sweep
        log.warning("warning: no report for the sweep in %s (%s: %s); the runs are intact: python -m "
                    "symtime_repro.report %s", sweep_dir, type(exc).__name__, exc, sweep_dir)
        return False
    print(report.tables, flush=True)
    print(f"report: {report.markdown_path}", flush=True)
    return True


class SweepReport(Callback):
    """Writes the sweep's report when any multirun ends (a grid, a search, any launcher)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        report_sweep(Path(str(config.hydra.sweep.dir)))
