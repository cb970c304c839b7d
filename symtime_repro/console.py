"""The run's result table goes to standard output (``… > result.txt`` keeps it) and to run.log,
while the log lines stay on standard error: a record marked ``result`` is kept off the console
handler by :class:`NotAResult` (conf/config.yaml's job_logging names it)."""

from __future__ import annotations

import logging
import sys

RESULT = "result"  # the LogRecord attribute that marks the result table


class NotAResult(logging.Filter):
    """Lets every record through except the result table (printed to stdout instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, RESULT, False)


def subset_phrase(metrics: dict) -> str:
    """How much of the test split a capped test scored, from metrics.json's record ("512 of 2857 test
    windows"): the run's table, its warning and the report say it in the same words."""
    unit = metrics.get("test_sample_unit") or "samples"
    return f"{metrics['test_samples_scored']} of {metrics['test_samples_total']} test {unit}"


def show_result(log: logging.Logger, text: str) -> None:
    """``text`` on stdout, and in the run's log file through ``log``."""
    print(text, file=sys.stdout, flush=True)
    log.info(text, extra={RESULT: True})
