"""The M4 competition data (Yearly … Hourly), read straight from the competition's own CSVs.

Layout under ``data.root``::

    m4/<Pattern>-train.csv      Mcompetitions/M4-methods, Dataset/Train/<Pattern>-train.csv
    m4/<Pattern>-test.csv       Mcompetitions/M4-methods, Dataset/Test/<Pattern>-test.csv
    m4/submission-Naive2.csv    Mcompetitions/M4-methods, Point Forecasts/submission-Naive2.rar (extracted)

The raw files: a header ``"V1","V2",…``, then one row per series: its id (``"H1"``) and its values,
quoted, left-aligned, with empty cells padding short series to the width of the longest one.
TSLib does not read these; it reads ``M4-info.csv`` + ``training.npz`` + ``test.npz``, which no
published script builds. We read the CSVs and keep our own cache next to them
(``m4/.cache/<Pattern>.npz``), keyed by a fingerprint of the CSVs, so parsing happens once.

A series' seasonal pattern, horizon and MASE frequency follow from the file it is in and its id
prefix (``M4-info.csv`` would say the same: TSLib's ``M4Meta`` holds these constants).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError
from ..files import atomic_write_bytes

log = logging.getLogger("symtime_repro")


@dataclass(frozen=True)
class PatternInfo:
    name: str            # "Yearly" … "Hourly"
    horizon: int         # forecast length, fixed by the competition
    frequency: int       # seasonal lag of MASE's in-sample naive error (TSLib M4Meta.frequency_map)
    history_size: float  # TSLib M4Meta.history_size: training windows end in the last history_size * horizon points
    prefix: str          # first letter of every id of the pattern

    @property
    def window_sampling_limit(self) -> int:
        """TSLib's ``int(history_size * pred_len)``: how far back from the end a training cut may fall."""
        return int(self.history_size * self.horizon)


# TSLib's M4Meta, in the competition's order (the order of rows in submission-Naive2.csv).
PATTERNS: dict[str, PatternInfo] = {
    p.name: p
    for p in (
        PatternInfo("Yearly", 6, 1, 1.5, "Y"),
        PatternInfo("Quarterly", 8, 4, 1.5, "Q"),
        PatternInfo("Monthly", 18, 12, 1.5, "M"),
        PatternInfo("Weekly", 13, 1, 10, "W"),
        PatternInfo("Daily", 14, 1, 10, "D"),
        PatternInfo("Hourly", 48, 24, 10, "H"),
    )
}
BY_PREFIX: dict[str, PatternInfo] = {p.prefix: p for p in PATTERNS.values()}

NAIVE2_FILE = "submission-Naive2.csv"
SUBMISSION_WIDTH = 48  # F1..F48: the longest horizon; shorter ones are padded with NA
M4_REPO = "the M4 competition repository Mcompetitions/M4-methods"
CACHE_DIR = ".cache"
# Bump when the cache layout or the parsing rules change: old caches are then rebuilt, never misread.
CACHE_VERSION = 1
# The fingerprint hashes this much of each end of a file: cheap even for the 90 MB Monthly-train.csv,
# and with size + mtime it catches every realistic change (an edit, a re-download, a truncated copy).
_HASH_SPAN = 1 << 16


@dataclass
class M4Split:
    """One seasonal pattern: train histories and test horizons, series in file order."""

    pattern: PatternInfo
    ids: list[str]
    train: list[np.ndarray]  # float64 history per series (padding removed)
    test: np.ndarray         # [n_series, horizon] float64

    def __len__(self) -> int:
        return len(self.ids)


# A held-out series keeps at least this many training points: the sampler draws a cut in [1, n).
HOLDOUT_MIN_TRAIN = 2


@dataclass
class M4Holdout:
    """A validation split held out of TRAIN (``dataset.validation=holdout``); the test is untouched.

    For every series long enough, the last H (horizon) points of its training part are the validation
    truth and the points before them its history: ``validation`` is an :class:`M4Split` whose
    ``train`` are those shortened histories and whose ``test`` are the held-out points. ``training``
    is what training windows may be cut from, per series of the whole split (file order): the
    shortened history of a validated series (its validation targets are never trained on), the whole
    training part of a series too short to hold out H points and keep ``HOLDOUT_MIN_TRAIN`` (it is
    not validated, so nothing of it is held out; ``too_short`` names them).
    """

    validation: M4Split
    rows: list[int]              # each validated series' row in the whole split
    training: list[np.ndarray]   # one per series of the whole split
    too_short: list[str]         # ids kept out of validation

    def __len__(self) -> int:
        return len(self.validation)


def hold_out(split: M4Split) -> M4Holdout:
    """The held-out validation split of ``split`` (see :class:`M4Holdout`); a UserError when no series
    is long enough to hold one out."""
    horizon = split.pattern.horizon
    rows = [row for row, history in enumerate(split.train) if len(history) - horizon >= HOLDOUT_MIN_TRAIN]
    validated = set(rows)
    too_short = [split.ids[row] for row in range(len(split)) if row not in validated]
    if not rows:
        raise UserError(f"M4 {split.pattern.name}: no series has {horizon + HOLDOUT_MIN_TRAIN} training points or "
                        f"more, so none can hold out its last {horizon} (the horizon) for validation and still be "
                        f"trained on; use dataset.validation=test")
    validation = M4Split(pattern=split.pattern, ids=[split.ids[row] for row in rows],
                         train=[split.train[row][:-horizon] for row in rows],
                         test=np.stack([split.train[row][-horizon:] for row in rows]))
    training = [history[:-horizon] if row in validated else history for row, history in enumerate(split.train)]
    return M4Holdout(validation=validation, rows=rows, training=training, too_short=too_short)


def get_pattern(name: str) -> PatternInfo:
    """The pattern called ``name`` (exact spelling), or a UserError listing the six."""
    try:
        return PATTERNS[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown M4 seasonal pattern {name!r}; choose one of: {', '.join(PATTERNS)} "
                        f"(e.g. dataset.seasonal_pattern=Hourly)") from None


def m4_dir(root: str | Path) -> Path:
    return Path(root).expanduser() / "m4"


def required_files(dataset_cfg) -> list[str]:
    """The pattern's two CSVs and the Naive2 forecasts (OWA needs them)."""
    info = get_pattern(dataset_cfg.seasonal_pattern)
    return [f"m4/{info.name}-train.csv", f"m4/{info.name}-test.csv", f"m4/{NAIVE2_FILE}"]


# --------------------------------------------------------------------------------------------------
# Public loaders


def load(root: str | Path, pattern: str) -> M4Split:
    """Train and test series of one pattern from ``<root>/m4/``, through the cache when it is current."""
    info = get_pattern(pattern)
    folder = m4_dir(root)
    sources = [_require_csv(folder, info, part) for part in ("train", "test")]
    arrays = _cached(folder / CACHE_DIR / f"{info.name}.npz", sources, lambda: _build_split_arrays(info, *sources))
    return _split_from_arrays(info, arrays)


def naive2(root: str | Path, pattern: str, ids: list[str]) -> np.ndarray:
    """The Naive2 benchmark forecasts of ``ids`` (in that order), [len(ids), horizon] float64."""
    info = get_pattern(pattern)
    folder = m4_dir(root)
    path = folder / NAIVE2_FILE
    if not path.is_file():
        raise UserError(f"M4 {info.name}: {path} not found; it is needed for OWA (the Naive2 benchmark's forecasts). "
                        f"Get it from {M4_REPO}, 'Point Forecasts/submission-Naive2.rar' (extract {NAIVE2_FILE} "
                        f"into {folder}), or point the data root (data.root=<folder>; the scorer's --root) at a folder "
                        f"holding m4/{NAIVE2_FILE}.")
    arrays = _cached(folder / CACHE_DIR / f"Naive2-{info.name}.npz", [path], lambda: _build_naive2_arrays(info, path))
    row_of = {series_id: row for row, series_id in enumerate(arrays["ids"].tolist())}
    missing = [series_id for series_id in ids if series_id not in row_of]
    if missing:
        raise UserError(f"{path} has no row for id {missing[0]!r}"
                        f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; "
                        f"the file looks incomplete - extract submission-Naive2.rar again")
    return arrays["values"][[row_of[series_id] for series_id in ids]]


# --------------------------------------------------------------------------------------------------
# Parsing the competition CSVs


def _require_csv(folder: Path, info: PatternInfo, part: str) -> Path:
    path = folder / f"{info.name}-{part}.csv"
    if not path.is_file():
        upstream = f"Dataset/{part.capitalize()}/{path.name}"
        raise UserError(f"M4 {info.name}: {path} not found. It comes from {M4_REPO} ({upstream}); "
                        f"place it there, or point the data root (data.root=<folder>; the scorer's --root) at a folder "
                        f"holding m4/{path.name}.")
    return path


def read_series_csv(path: Path, info: PatternInfo) -> tuple[list[str], list[np.ndarray], list[int]]:
    """Ids, values and file line numbers of every series in one raw M4 CSV.

    Empty cells may only pad the end of a row: a gap inside a series, a non-number or a non-finite
    value stops with the file, line, id and column, because silently dropping it would shift the
    series in time.
    """
    ids: list[str] = []
    values: list[np.ndarray] = []
    lines: list[int] = []
    id_pattern = re.compile(rf"{info.prefix}\d+")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or len(header) < 2:
            raise UserError(f"{path} is empty or has no header; expected the M4 header \"V1\",\"V2\",… "
                            f"- download the file again from {M4_REPO}")
        if id_pattern.fullmatch(header[0].strip()):
            raise UserError(f"{path} line 1 holds series {header[0].strip()!r}, not the header \"V1\",\"V2\",…; "
                            f"restore the header line")
        for row in reader:
            line = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue  # blank line (e.g. a trailing newline)
            series_id = row[0].strip()
            if not id_pattern.fullmatch(series_id):
                raise UserError(f"{path} line {line}: id {series_id!r} is not a {info.name} series id "
                                f"({info.prefix}1, {info.prefix}2, …); is this the {info.name} file?")
            cells = [cell.strip() for cell in row[1:]]
            n = len(cells)
            while n and cells[n - 1] == "":
                n -= 1
            cells = cells[:n]
            values.append(_parse_values(cells, path, line, series_id))
            ids.append(series_id)
            lines.append(line)
    return ids, values, lines


def _parse_values(cells: list[str], path: Path, line: int, series_id: str) -> np.ndarray:
    try:
        array = np.array(cells, dtype=np.float64)
        if np.isfinite(array).all():
            return array
    except ValueError:
        pass
    for column, cell in enumerate(cells, start=2):  # the first value sits in column V2
        try:
            number = float(cell) if cell else None
        except ValueError:
            number = None
        if number is None or not np.isfinite(number):
            what = "is empty inside the series" if cell == "" else f"holds {cell[:40]!r}, not a finite number"
            raise UserError(f"{path} line {line}, id {series_id}, column V{column} {what}; "
                            f"fix that cell or download the file again from {M4_REPO}")
    raise AssertionError("unreachable: a failed conversion always has a bad cell")


def _build_split_arrays(info: PatternInfo, train_path: Path, test_path: Path) -> dict[str, np.ndarray]:
    train_ids, train, train_lines = read_series_csv(train_path, info)
    test_ids, test_rows, test_lines = read_series_csv(test_path, info)
    if not train_ids:
        raise UserError(f"{train_path} holds no series; download it again from {M4_REPO}")
    _check_unique(train_ids, train_lines, train_path)
    _check_unique(test_ids, test_lines, test_path)
    train_set, test_set = set(train_ids), set(test_ids)
    only_train = [series_id for series_id in train_ids if series_id not in test_set]
    only_test = [series_id for series_id in test_ids if series_id not in train_set]
    if only_train:
        raise UserError(f"series {only_train[0]} is in {train_path} but not in {test_path}"
                        f"{_and_more(only_train)}; the two files must hold the same series")
    if only_test:
        raise UserError(f"series {only_test[0]} is in {test_path} but not in {train_path}"
                        f"{_and_more(only_test)}; the two files must hold the same series")
    # Every M4 series is longer than its horizon (the shortest Yearly ones hold 13 points for a
    # horizon of 6), so a shorter row is a damaged file. TSLib would zero-pad it and train on it
    # silently. The floor also covers what the method needs: >= 2 points to draw a training window
    # (randint(max(1, n - limit), n)) and more than `frequency` for MASE's seasonal-naive scale.
    min_points = max(2, info.frequency + 1, info.horizon)
    for series_id, history, line in zip(train_ids, train, train_lines):
        if len(history) < min_points:
            raise UserError(f"{train_path} line {line}, id {series_id}: {len(history)} value(s), but a {info.name} "
                            f"series needs at least {min_points} (its horizon is {info.horizon}, and MASE looks back "
                            f"{info.frequency}); the row looks truncated - download the file again from {M4_REPO}")
    test_by_id = {}
    for series_id, row, line in zip(test_ids, test_rows, test_lines):
        if len(row) != info.horizon:
            raise UserError(f"{test_path} line {line}, id {series_id}: {len(row)} values, but the {info.name} "
                            f"horizon is {info.horizon}; the file looks damaged - download it again from {M4_REPO}")
        test_by_id[series_id] = row
    lengths = np.array([len(h) for h in train], dtype=np.int64)
    return {
        "ids": np.array(train_ids),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "train": np.concatenate(train),
        "test": np.stack([test_by_id[series_id] for series_id in train_ids]).astype(np.float64),
    }


def _split_from_arrays(info: PatternInfo, arrays: dict[str, np.ndarray]) -> M4Split:
    offsets = arrays["offsets"]
    flat = arrays["train"]
    train = [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
    return M4Split(pattern=info, ids=arrays["ids"].tolist(), train=train, test=arrays["test"])


def _build_naive2_arrays(info: PatternInfo, path: Path) -> dict[str, np.ndarray]:
    """The rows of one pattern in submission-Naive2.csv, cut to the pattern's horizon.

    The file has 100 000 rows; only those whose id starts with the pattern's prefix are parsed.
    """
    data = path.read_bytes().decode("utf-8", errors="replace")
    lines = data.splitlines()
    header = lines[0].split(",") if lines else []
    if len(header) < 1 + info.horizon or header[0].strip().strip('"') != "id":
        raise UserError(f"{path} line 1 must be the header id,F1,…,F48; download submission-Naive2.rar "
                        f"again from {M4_REPO}")
    id_pattern = re.compile(rf"{info.prefix}\d+")
    ids: list[str] = []
    rows: list[np.ndarray] = []
    for number, text in enumerate(lines[1:], start=2):
        if not text.startswith(info.prefix):  # cheap pre-filter; most rows belong to other patterns
            continue
        cells = [cell.strip().strip('"') for cell in text.split(",")]
        if not id_pattern.fullmatch(cells[0]):
            continue
        head = cells[1:1 + info.horizon]
        if len(head) < info.horizon or any(cell in ("", "NA") for cell in head):
            raise UserError(f"{path} line {number}, id {cells[0]}: fewer than {info.horizon} forecasts "
                            f"(the {info.name} horizon); extract submission-Naive2.rar again from {M4_REPO}")
        rows.append(_parse_values(head, path, number, cells[0]))
        ids.append(cells[0])
    width = info.horizon
    return {"ids": np.array(ids, dtype=str), "values": np.stack(rows) if rows else np.empty((0, width))}


def _check_unique(ids: list[str], lines: list[int], path: Path) -> None:
    seen: dict[str, int] = {}
    for series_id, line in zip(ids, lines):
        if series_id in seen:
            raise UserError(f"{path} line {line}: id {series_id} already appeared on line {seen[series_id]}; "
                            f"each series must appear once")
        seen[series_id] = line


def _and_more(items: list[str]) -> str:
    return f" (and {len(items) - 1} more)" if len(items) > 1 else ""


# --------------------------------------------------------------------------------------------------
# The cache: one .npz per pattern (and one per pattern of Naive2), next to the CSVs


def fingerprint(paths: list[Path]) -> str:
    """Name, size, mtime and a hash of both ends of each file: changes when any of them changes."""
    parts = [f"v{CACHE_VERSION}"]
    for path in paths:
        status = path.stat()
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as handle:
            digest.update(handle.read(_HASH_SPAN))
            if status.st_size > _HASH_SPAN:
                handle.seek(max(_HASH_SPAN, status.st_size - _HASH_SPAN))
                digest.update(handle.read())
        parts.append(f"{path.name}:{status.st_size}:{status.st_mtime_ns}:{digest.hexdigest()}")
    return json.dumps(parts)


def _cached(cache: Path, sources: list[Path], build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays stored in ``cache`` if it was built from ``sources`` as they are now; else build them.

    A cache that cannot be read is rebuilt; one that cannot be written (read-only data folder) is
    skipped: the data is then parsed on every load, which is slower but correct.
    """
    key = fingerprint(sources)
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as stored:
                if str(stored["fingerprint"]) == key:
                    return {name: stored[name] for name in stored.files if name != "fingerprint"}
        except (OSError, ValueError, KeyError, EOFError) as exc:  # truncated or foreign file: rebuild
            log.debug("ignoring unreadable M4 cache %s: %s", cache, exc)
    arrays = build()
    if not _may_write(cache.parent):
        log.debug("M4 data folder %s is read-only; parsing the CSVs on every load", cache.parent.parent)
        return arrays
    buffer = io.BytesIO()
    np.savez(buffer, fingerprint=np.array(key), **arrays)
    try:
        atomic_write_bytes(cache, buffer.getvalue())
        os.chmod(cache, 0o644)  # the temp file was private; a shared data folder's cache serves everyone
    except OSError as exc:
        log.debug("M4 cache not written (%s); parsing the CSVs on every load", exc)
    return arrays


def _may_write(cache_dir: Path) -> bool:
    """False when the data folder is marked read-only (no write bit at all).

    Root may write into such a folder anyway (and containers often run as root); the mode bits say
    the owner wants it left alone, so we honour them. Real failures (read-only mounts, no
    permission) are caught when writing.
    """
    folder = cache_dir if cache_dir.is_dir() else cache_dir.parent
    try:
        return bool(folder.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    except OSError:
        return False


def clear_cache(root: str | Path) -> None:
    """Remove every cache file under ``<root>/m4/.cache`` (they are rebuilt on the next load)."""
    folder = m4_dir(root) / CACHE_DIR
    for path in folder.glob("*.npz"):
        path.unlink(missing_ok=True)


__all__ = ["PATTERNS", "PatternInfo", "M4Split", "M4Holdout", "get_pattern", "load", "hold_out", "naive2",
           "read_series_csv", "fingerprint", "clear_cache", "m4_dir", "NAIVE2_FILE", "SUBMISSION_WIDTH", "BY_PREFIX"]
