"""The command line: ``python -m symtime_repro.report FOLDER [--out DIR] [--reference DIR]``.

Prints the tables and the path of report.md; bad input (no folder, no runs, an unreadable
metrics.json, an --out it may not write to) is one ``error:`` line and exit status EXIT_USER_ERROR.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..errors import EXIT_USER_ERROR, UserError
from .references import DEFAULT_REFERENCE_DIR
from .write import write_report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m symtime_repro.report",
        description="Summarise run dirs (a run, a sweep, or any folder of them) into report.md, results.csv "
                    "and plots/, beside the published SymTime numbers.")
    parser.add_argument("folder", type=Path, help="a run dir or a folder holding run dirs (e.g. a sweep dir)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the report (default: FOLDER)")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE_DIR,
                        help="folder of reference CSVs (task,dataset,setting,metric,value,source); "
                             "default: the published numbers shipped in symtime_repro/reference")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = write_report(args.folder, args.out, args.reference)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # an unreadable history.csv, an --out we may not write to
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(report.tables)
    print(f"report: {report.markdown_path}")
    return 0

