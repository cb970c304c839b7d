"""ETT and TSLib "custom" CSV files (ETTh*, ETTm*, ECL, Traffic, Weather, Exchange, ILI).

The official protocol (TSLib's Dataset_ETT_hour / Dataset_ETT_minute / Dataset_Custom):

* ETT hourly: train rows [0, 8640), val [8640 - L, 11520), test [11520 - L, 14400), where L is the
  input length (each later split starts L rows early so its first window has a full history);
  ETT 15-minute files: the same borders x 4; other files: 70 % / 10 % / 20 % with the same shift.
* A StandardScaler fitted on the training rows only; all metrics are computed in scaled space.
* Columns: ``date`` first; features M and MS use every other column, S only ``target``.
* Rows are used in file order (the splits are row ranges). The loader never reads the dates, so we
  check them here: a date that does not parse or goes back in time stops the run (the borders would
  fall in the wrong place); a repeated date is logged and kept, as the official loader keeps it
  (the published weather.csv repeats 2020-05-12 06:00:00 on lines 19045-19046).

One deliberate difference: we always move ``target`` to the last column (the official custom
loader does, the ETT loaders do not). For ETT with the default target OT, already last, nothing
changes; for ETT with another target under ``features=MS`` the official code silently scores OT.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from ..errors import UserError
from . import resolve_data_file
from .windows import SlidingWindows

log = logging.getLogger(__name__)

ETT_HOUR_BORDERS = (12 * 30 * 24, 16 * 30 * 24, 20 * 30 * 24)  # ends of train / val / test


@dataclass
class SeriesSplits:
    """Scaled float32 arrays [time, channels] for each split, plus what describes them."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    columns: list[str]
    scaler: StandardScaler
    path: Path

    @property
    def n_channels(self) -> int:
        return self.train.shape[1]


def split_borders(split: str, n_rows: int, seq_len: int) -> tuple[tuple[int, int], ...]:
    """Row ranges [start, end) of train, val and test for the official split ``split``."""
    if split in ("ett_hour", "ett_minute"):
        scale = 1 if split == "ett_hour" else 4
        ends = tuple(b * scale for b in ETT_HOUR_BORDERS)
    elif split == "ratio":
        n_train = int(n_rows * 0.7)
        n_test = int(n_rows * 0.2)
        ends = (n_train, n_rows - n_test, n_rows)
    else:
        raise UserError(f"dataset.split must be ett_hour, ett_minute or ratio, got {split!r}")
    starts = (0, ends[0] - seq_len, ends[1] - seq_len)
    return tuple(zip(starts, ends))


def required_files(dataset_cfg) -> list[str]:
    return [dataset_cfg.path]


def read_table(path: Path, dataset: str) -> pd.DataFrame:
    """Read the CSV, turning every pandas failure into one line that names the file."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"dataset {dataset}: cannot parse {path} as CSV: {str(exc).splitlines()[0]}") from exc
    if frame.shape[1] < 2 or frame.columns[0] != "date":
        raise UserError(f"dataset {dataset}: {path} must start with a 'date' column followed by value columns; "
                        f"found columns {list(frame.columns)[:5]}")
    return frame


def check_row_count(frame: pd.DataFrame, path: Path, dataset: str, relative: str, root) -> None:
    """With ratio splits the row count sets the borders: a file cut short (an interrupted download or
    copy) would move them and silently score another test set. A longer file is another release."""
    from ..data import fetch_command
    from ..data.catalog import published_rows

    expected = published_rows(relative)
    if expected is None or len(frame) == expected:
        return
    if len(frame) < expected:
        fetch = fetch_command(dataset, root)
        raise UserError(f"dataset {dataset}: {path} has {len(frame)} rows but the published file has {expected}: it "
                        f"looks cut short, and the 70/10/20 split borders would fall elsewhere. Get it again"
                        f"{f' ({fetch})' if fetch else ''}, or check it with python -m symtime_repro.data verify")
    log.warning("dataset %s: %s has %d rows, the published file %d; the 70/10/20 split follows this file, so "
                "results will not compare with published ones", dataset, path, len(frame), expected)


def check_dates(frame: pd.DataFrame, path: Path, dataset: str) -> None:
    """Dates that parse and never go back in time; repeats are logged (see the module doc)."""
    raw = frame["date"].astype(str)
    # As TSLib parses them for its time features (pd.to_datetime), but naming the row that fails.
    dates = pd.to_datetime(raw, errors="coerce")
    unparsed = dates.isna().to_numpy()
    if unparsed.any():
        row = int(np.argmax(unparsed))
        raise UserError(f"dataset {dataset}: {path} line {row + 2}, column 'date' holds {raw.iloc[row][:40]!r}, "
                        f"not a date like {raw.iloc[0 if row else min(1, len(raw) - 1)][:40]!r}; fix or remove that row")
    if not pd.api.types.is_datetime64_any_dtype(dates):
        raise UserError(f"dataset {dataset}: {path} column 'date' mixes time zones; write every date in one zone")
    steps = np.diff(dates.array.asi8)
    backwards = steps < 0
    if backwards.any():
        row = int(np.argmax(backwards)) + 1
        raise UserError(f"dataset {dataset}: {path} line {row + 2}, column 'date': {raw.iloc[row]!r} comes before "
                        f"line {row + 1}'s {raw.iloc[row - 1]!r}. The splits are taken by row position, so rows must "
                        f"be in time order: sort the file by date (and drop duplicated rows)")
    repeats = np.flatnonzero(steps == 0) + 1
    if len(repeats):
        first = int(repeats[0])
        log.warning("dataset %s: %s line %d repeats the date %r of line %d (%d repeated date(s) in all); kept, as "
                    "the official loader keeps every row", dataset, path, first + 2, raw.iloc[first], first + 1,
                    len(repeats))


def numeric_values(frame: pd.DataFrame, columns: list[str], path: Path, dataset: str) -> np.ndarray:
    """The chosen columns as float64, or a UserError naming the first bad cell (file line, column)."""
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            line = int(np.argmax(bad)) + 2  # 1-based, after the header
            raw = _raw_cell(path, line, list(frame.columns).index(column))
            kind = "is empty" if raw == "" else f"holds {raw[:40]!r}, not a number"
            raise UserError(f"dataset {dataset}: {path} line {line}, column '{column}' {kind}. "
                            f"Fix or remove that row (the loader needs numbers in every value column).")
        out[:, j] = values.to_numpy(dtype=np.float64)
        infinite = ~np.isfinite(out[:, j])
        if infinite.any():  # 'inf' parses as a number, and would turn the loss into NaN mid-training
            line = int(np.argmax(infinite)) + 2
            raise UserError(f"dataset {dataset}: {path} line {line}, column '{column}' holds "
                            f"{_raw_cell(path, line, list(frame.columns).index(column))[:40]!r}, not a finite "
                            f"number. Fix or remove that row.")
    return out


def _raw_cell(path: Path, line: int, column: int) -> str:
    """The cell as written in the file (pandas has already turned 'n/a', 'NaN', '' into NaN)."""
    with open(path, newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if number == line:
                return row[column].strip() if column < len(row) else ""
    return ""


def load_splits(dataset_cfg, seq_len: int, root: str | Path) -> SeriesSplits:
    """Read, check, order, split and scale one CSV dataset for windows of input length ``seq_len``."""
    name = dataset_cfg.name
    path = resolve_data_file(root, dataset_cfg.path, name, dataset_cfg.source)
    frame = read_table(path, name)
    value_columns = [c for c in frame.columns[1:]]
    target = dataset_cfg.target
    if target not in value_columns:
        raise UserError(f"dataset {name}: target column '{target}' is not in {path} "
                        f"(columns: {', '.join(value_columns[:8])}{'...' if len(value_columns) > 8 else ''}); "
                        f"set dataset.target=<column>")
    if dataset_cfg.features == "S":
        columns = [target]
    else:
        columns = [c for c in value_columns if c != target] + [target]

    borders = split_borders(dataset_cfg.split, len(frame), seq_len)
    needed = borders[2][1]
    if len(frame) < needed:
        raise UserError(f"dataset {name}: {path} has {len(frame)} rows but the {dataset_cfg.split} split needs "
                        f"{needed}; the file looks truncated - download it again")
    if dataset_cfg.split == "ratio":
        check_row_count(frame, path, name, dataset_cfg.path, root)
    if any(end - start < seq_len + 1 for start, end in borders):
        raise UserError(f"dataset {name}: task.seq_len={seq_len} is too long for its splits "
                        f"(rows per split: {[end - start for start, end in borders]})")

    check_dates(frame, path, name)
    values = numeric_values(frame, columns, path, name)
    train_start, train_end = borders[0]
    scaler = StandardScaler().fit(values[train_start:train_end])
    scaled = scaler.transform(values).astype(np.float32)
    train, val, test = (np.ascontiguousarray(scaled[start:end]) for start, end in borders)
    return SeriesSplits(train, val, test, columns, scaler, path)


def window_splits(dataset_cfg, seq_len: int, target_len: int, root: str | Path):
    """Train/val/test :class:`SlidingWindows` of ``seq_len`` inputs and ``target_len`` targets, and
    the facts derived from the data (``enc_in``, column order, file)."""
    series = load_splits(dataset_cfg, seq_len, root)
    try:
        windows = tuple(SlidingWindows(part, seq_len, target_len) for part in (series.train, series.val, series.test))
    except ValueError as exc:
        raise UserError(f"dataset {dataset_cfg.name}: windows of {seq_len} + {target_len} steps do not fit in "
                        f"every split ({exc}); lower task.seq_len or task.pred_len") from exc
    info = {"enc_in": series.n_channels, "columns": series.columns, "file": str(series.path)}
    return windows, info
