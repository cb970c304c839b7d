"""M4 metrics (sMAPE, MASE, OWA), the competition's aggregation, submission files and a scorer CLI.

    python -m symtime_repro.metrics.m4 score FORECAST.csv --root DATA_ROOT [--json OUT.json]

FORECAST.csv is in the competition's submission format (``id,F1,…,F48``, ``NA`` beyond a series'
horizon), holding any subset of the 100 000 series. Each seasonal pattern present is scored
against its test set; series absent from the file are not scored.

The definitions follow TSLib's ``utils/m4_summary.py`` (itself N-BEATS' evaluation code), which
reproduces the published competition figures:

* sMAPE = mean over series and horizon steps of 200 |F - A| / (|A| + |F|), a 0/0 term counting 0;
* MASE = mean over series of mean|F - A| / mean|x[t] - x[t - m]| over the series' train history x,
  m = the pattern's frequency (24 for Hourly, 12 Monthly, 4 Quarterly, else 1);
* OWA = (sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2) / 2, from the group's averages (not the mean of
  per-series ratios).
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..datasets.m4 import BY_PREFIX, PATTERNS, SUBMISSION_WIDTH, M4Split, get_pattern, load, naive2
from ..errors import EXIT_USER_ERROR, UserError
from ..files import atomic_write_bytes, write_json

OTHERS = ("Weekly", "Daily", "Hourly")  # the competition reports these three together as "Others"
NA = "NA"


# --------------------------------------------------------------------------------------------------
# Metrics


def smape(forecast: np.ndarray, actual: np.ndarray) -> float:
    """Symmetric MAPE in percent over every value (TSLib's ``smape_2`` averaged, as M4 scores it)."""
    forecast, actual = _same_shape(forecast, actual)
    denominator = np.abs(actual) + np.abs(forecast)
    # Both zero means a perfect forecast of 0: count it as 0 (TSLib divides by 1 there), not NaN.
    denominator[denominator == 0.0] = 1.0
    return float(np.mean(200.0 * np.abs(forecast - actual) / denominator))


def mase_scales(insample: Sequence[np.ndarray], frequency: int) -> np.ndarray:
    """Per series, the in-sample mean absolute error of the seasonal naive forecast at lag ``frequency``."""
    scales = np.empty(len(insample))
    for i, history in enumerate(insample):
        history = np.asarray(history, dtype=np.float64)
        if len(history) <= frequency:
            raise ValueError(f"series {i} has {len(history)} points; MASE at lag {frequency} needs more")
        scales[i] = np.mean(np.abs(history[frequency:] - history[:-frequency]))
    return scales


def mase(forecast: np.ndarray, actual: np.ndarray, insample: list[np.ndarray], frequency: int) -> float:
    """Mean over series of the MASE of each series' forecast row (rows align with ``insample``)."""
    forecast, actual = _same_shape(forecast, actual)
    forecast, actual = np.atleast_2d(forecast), np.atleast_2d(actual)
    if len(insample) != len(forecast):
        raise ValueError(f"{len(forecast)} forecast rows but {len(insample)} in-sample series")
    errors = np.mean(np.abs(forecast - actual), axis=1)
    return float(np.mean(errors / mase_scales(insample, frequency)))


def _same_shape(forecast: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    forecast = np.asarray(forecast, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if forecast.shape != actual.shape:
        raise ValueError(f"forecast shape {forecast.shape} differs from actual shape {actual.shape}")
    return forecast, actual


def owa(model_smape: float, model_mase: float, naive2_smape: float, naive2_mase: float) -> float:
    return (model_smape / naive2_smape + model_mase / naive2_mase) / 2


def score_pattern(forecast: np.ndarray, split: M4Split, naive2_forecast: np.ndarray) -> dict:
    """sMAPE, MASE and OWA (relative to Naive2) of one pattern's forecasts, rows in ``split.ids`` order.

    The result also carries Naive2's own sMAPE and MASE on the same series (``naive2_smape``,
    ``naive2_mase``): :func:`aggregate` needs them for the OWA of "Others" and "Average".
    """
    info = split.pattern
    expected = (len(split.ids), info.horizon)
    for name, array in (("forecast", forecast), ("Naive2 forecast", naive2_forecast)):
        if np.shape(array) != expected:
            raise UserError(f"M4 {info.name}: the {name} has shape {np.shape(array)}, expected {expected} "
                            f"({len(split.ids)} series x horizon {info.horizon})")
    scales = mase_scales(split.train, info.frequency)
    flat = np.flatnonzero(scales == 0)
    if flat.size:
        raise UserError(f"M4 {info.name}: MASE is undefined for series {split.ids[flat[0]]}: its train history "
                        f"does not change at lag {info.frequency}; leave that series out of the forecast file")
    model_smape = smape(forecast, split.test)
    model_mase = mase(forecast, split.test, split.train, info.frequency)
    naive_smape = smape(naive2_forecast, split.test)
    naive_mase = mase(naive2_forecast, split.test, split.train, info.frequency)
    return {"smape": model_smape, "mase": model_mase, "owa": owa(model_smape, model_mase, naive_smape, naive_mase),
            "series": len(split.ids), "naive2_smape": naive_smape, "naive2_mase": naive_mase}


def aggregate(per_pattern: dict[str, dict]) -> dict[str, dict]:
    """``per_pattern`` plus the competition's "Others" and "Average" rows where they are defined.

    As TSLib's ``M4Summary.summarize_groups``: a group's sMAPE and MASE (of the model and of Naive2)
    are the means of its patterns' values weighted by their series counts, and its OWA is computed
    from those weighted means (not a mean of OWAs). "Others" is Weekly+Daily+Hourly; "Average" is
    all six patterns (TSLib divides by the 100 000 series, i.e. the sum of the six counts).

    Subsets: "Others" is added only when Weekly, Daily and Hourly are all present and "Average" only
    when all six are, because a mean over fewer patterns is a different quantity from the published
    one. The weights are the ``series`` counts actually scored, which equal TSLib's group sizes when
    every series is scored; when only some series of a pattern are scored, the rows describe those.
    """
    out = {name: dict(scores) for name, scores in per_pattern.items()}
    groups = {"Others": OTHERS, "Average": tuple(PATTERNS)}
    for group, members in groups.items():
        if not all(name in per_pattern for name in members):
            continue
        counts = np.array([per_pattern[name]["series"] for name in members], dtype=np.float64)
        total = counts.sum()

        def weighted(key: str) -> float:
            return float(np.dot(counts, [per_pattern[name][key] for name in members]) / total)

        row = {key: weighted(key) for key in ("smape", "mase", "naive2_smape", "naive2_mase")}
        row["owa"] = owa(row["smape"], row["mase"], row["naive2_smape"], row["naive2_mase"])
        row["series"] = int(total)
        out[group] = {key: row[key] for key in ("smape", "mase", "owa", "series", "naive2_smape", "naive2_mase")}
    return out


# --------------------------------------------------------------------------------------------------
# Submission files (the competition's format: id,F1..F48, NA beyond the horizon)


def write_submission(path, ids: list[str], forecasts: np.ndarray) -> None:
    """Write forecasts as ``id,F1,…,F48`` rows, padded with ``NA`` as ``submission-Naive2.csv`` is.

    ``forecasts`` is [len(ids), H] with H <= 48; rows of different horizons can share one array by
    padding the shorter ones with trailing NaN. Lines end in LF (the Naive2 file, written on
    Windows, uses CRLF; every CSV reader, ours included, accepts both).
    """
    forecasts = np.asarray(forecasts, dtype=np.float64)
    if forecasts.ndim != 2 or len(forecasts) != len(ids):
        raise ValueError(f"forecasts must be [len(ids)={len(ids)}, horizon], got shape {forecasts.shape}")
    if forecasts.shape[1] > SUBMISSION_WIDTH:
        raise ValueError(f"at most {SUBMISSION_WIDTH} forecast steps per series, got {forecasts.shape[1]}")
    buffer = io.StringIO()
    buffer.write(",".join(["id"] + [f"F{i}" for i in range(1, SUBMISSION_WIDTH + 1)]) + "\n")
    for series_id, row in zip(ids, forecasts):
        finite = np.isfinite(row)
        length = int(finite.sum())
        if not finite[:length].all():
            raise UserError(f"forecast for {series_id} has a NaN or infinite value inside its horizon; "
                            f"check the model output")
        cells = [repr(float(v)) for v in row[:length]] + [NA] * (SUBMISSION_WIDTH - length)
        buffer.write(f"{series_id}," + ",".join(cells) + "\n")
    atomic_write_bytes(Path(path), buffer.getvalue().encode())


def read_submission(path) -> dict[str, np.ndarray]:
    """``{id: forecasts}`` from a submission file, each row without its ``NA`` padding."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"forecast file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()  # LF or CRLF
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not a text CSV file ({exc.reason} at byte {exc.start})") from None
    header = [cell.strip().strip('"') for cell in lines[0].split(",")] if lines else []
    if len(header) < 2 or header[0] != "id":
        found = lines[0].strip()[:60] if lines else "an empty file"
        raise UserError(f"{path} line 1 must be the header id,F1,…,F48 (the M4 submission format); found {found!r}")
    out: dict[str, np.ndarray] = {}
    line_of: dict[str, int] = {}
    for number, text in enumerate(lines[1:], start=2):
        cells = [cell.strip().strip('"') for cell in text.split(",")]
        if cells == [""]:
            continue  # blank line
        series_id, values = cells[0], cells[1:]
        if series_id in line_of:
            raise UserError(f"{path} line {number}: id {series_id} already appeared on line {line_of[series_id]}")
        n = len(values)
        while n and values[n - 1] in ("", NA):  # NA pads a row up to F48
            n -= 1
        bad = next((i for i, cell in enumerate(values[:n]) if not _is_finite_number(cell)), None)
        if bad is not None:
            column = header[bad + 1] if bad + 1 < len(header) else f"{bad + 2}"
            raise UserError(f"{path} line {number}, id {series_id}, column {column} holds {values[bad][:40]!r}, "
                            f"not a number (NA may only pad the end of a row)")
        out[series_id] = np.array(values[:n], dtype=np.float64)
        line_of[series_id] = number
    return out


def _is_finite_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------------
# Scoring a submission file


def score_file(forecast_path: str | Path, root: str | Path,
               patterns: Sequence[str] | None = None) -> tuple[dict[str, dict], dict[str, int]]:
    """Scores per pattern present in the file (plus Others/Average), and each pattern's total series.

    ``patterns`` limits scoring to those patterns (rows of the others are ignored), e.g. to score
    the Hourly rows of a full 100 000-row submission when only the Hourly data is at hand.
    """
    for name in patterns or ():
        get_pattern(name)
    forecasts = read_submission(forecast_path)
    if not forecasts:
        raise UserError(f"{forecast_path} holds no forecasts")
    by_pattern: dict[str, list[str]] = {}
    for series_id in forecasts:
        info = BY_PREFIX.get(series_id[:1])
        if info is None or not series_id[1:].isdigit():
            raise UserError(f"{forecast_path}: id {series_id!r} is not an M4 series id (a letter "
                            f"{'/'.join(BY_PREFIX)} followed by a number)")
        by_pattern.setdefault(info.name, []).append(series_id)
    if patterns and not any(name in by_pattern for name in patterns):
        raise UserError(f"{forecast_path} holds no series of {', '.join(patterns)}")
    per_pattern: dict[str, dict] = {}
    totals: dict[str, int] = {}
    for name in PATTERNS:  # competition order
        if name not in by_pattern or (patterns and name not in patterns):
            continue
        try:
            split = load(root, name)
        except UserError as exc:
            if patterns or len(by_pattern) == 1:
                raise
            raise UserError(f"{exc} (To score only some patterns of {forecast_path}, pass --pattern NAME.)") from None
        wanted = by_pattern[name]
        selected = select(split, wanted, forecast_path)
        horizon = split.pattern.horizon
        rows = []
        for series_id in selected.ids:
            row = forecasts[series_id]
            if len(row) != horizon:
                raise UserError(f"{forecast_path}: id {series_id} has {len(row)} forecasts, but the {name} "
                                f"horizon is {horizon}")
            rows.append(row)
        per_pattern[name] = score_pattern(np.stack(rows), selected, naive2(root, name, selected.ids))
        totals[name] = len(split.ids)
    return aggregate(per_pattern), totals


def select(split: M4Split, ids: list[str], source: str | Path = "the forecast") -> M4Split:
    """The series ``ids`` of ``split`` (kept in the split's order), or a UserError naming an unknown id."""
    row_of = {series_id: i for i, series_id in enumerate(split.ids)}
    unknown = [series_id for series_id in ids if series_id not in row_of]
    if unknown:
        raise UserError(f"{source}: id {unknown[0]} is not in the {split.pattern.name} test set "
                        f"({len(split.ids)} series){f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}")
    rows = sorted(row_of[series_id] for series_id in ids)
    return M4Split(split.pattern, [split.ids[i] for i in rows], [split.train[i] for i in rows], split.test[rows])


def format_table(scores: dict[str, dict], totals: dict[str, int]) -> str:
    lines = [f"{'pattern':<10} {'series':>13} {'sMAPE':>8} {'MASE':>8} {'OWA':>7}", "-" * 50]
    for name, row in scores.items():
        series = f"{row['series']} of {totals[name]}" if name in totals else str(row["series"])
        lines.append(f"{name:<10} {series:>13} {row['smape']:>8.3f} {row['mase']:>8.3f} {row['owa']:>7.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m symtime_repro.metrics.m4",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="score a submission file against the M4 test set")
    score.add_argument("forecast", help="submission CSV: id,F1,...,F48 (NA beyond the horizon); any subset of series")
    score.add_argument("--root", default="data", help="data root holding m4/<Pattern>-train.csv, -test.csv and "
                                                      "submission-Naive2.csv (default: data)")
    score.add_argument("--pattern", action="append", dest="patterns", metavar="NAME",
                       help="score only this seasonal pattern (repeatable; default: every pattern in the file)")
    score.add_argument("--json", dest="json_out", help="also write the scores to this JSON file")
    args = parser.parse_args(argv)
    try:
        scores, totals = score_file(args.forecast, args.root, args.patterns)
        print(format_table(scores, totals))
        notes = []
        if "Others" not in scores:
            notes.append("Others needs all of Weekly, Daily and Hourly")
        if "Average" not in scores:
            notes.append("Average needs all six patterns")
        if notes:
            print(f"({'; '.join(notes)})")
        if args.json_out:
            write_json(Path(args.json_out), scores)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
