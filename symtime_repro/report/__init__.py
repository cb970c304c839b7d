"""Turn run directories into a report: ``python -m symtime_repro.report DIR [--out DIR] [--reference DIR]``.

Reads every run dir below ``DIR`` (docs/contract.md: ``metrics.json``, ``history.csv``, ``run.log``,
``.hydra/``; ``test_samples.npz``, ``test_predictions.npz``, ``anomaly_scores.npz`` where a task
wrote them) and writes into ``--out`` (default ``DIR``):

- ``report.md``: one table per task (mean ± std over runs that differ only in seed, with the
  published reference values and our difference), the paper's averages beside the mean of our
  rows, a device/throughput table, the failed or unfinished runs with their reasons, and plots;
- ``results.csv``: one row per run, for programs;
- ``plots/*.png`` when matplotlib is installed (loss curves, test windows and M4 series, confusion
  matrices, anomaly energy over time, ours vs reference).

Every file is written atomically. Bad input (no folder, no runs, an unreadable metrics.json) ends
with one ``error:`` line and exit status ``errors.EXIT_USER_ERROR``.

The modules, in the order data flows through them:

- ``runs``: reading run dirs and bench dirs (metrics.json, config, run.log);
- ``references``: the published numbers (``symtime_repro/reference/*.csv``) and matching them;
- ``grouping``: runs that differ only in seed as one row, and the paper's averages;
- ``markdown``, ``csv_table``, ``plots``: report.md, results.csv and plots/;
- ``write``: all of the above for one folder; ``cli``: the command line (``__main__`` runs it);
- ``task_facts``: all the report knows about particular tasks; no other module names a task.

Nothing here imports torch: the report runs where only results were copied.
"""

from .cli import main
from .grouping import group_runs
from .plots import NO_MATPLOTLIB_NOTE, load_matplotlib, plot_history
from .references import DEFAULT_REFERENCE_DIR, load_references, setting_matches
from .runs import collect_runs, failure_reason, read_run
from .write import Report, write_report

__all__ = ["DEFAULT_REFERENCE_DIR", "NO_MATPLOTLIB_NOTE", "Report", "collect_runs", "failure_reason", "group_runs",
           "load_matplotlib", "load_references", "main", "plot_history", "read_run", "setting_matches",
           "write_report"]
