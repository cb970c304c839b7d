"""Anomaly-detection series (SMD, MSL, SMAP, PSM, SWaT) in the TSLib layout, and their windows.

The official protocol (TSLib's ``PSMSegLoader``, ``MSLSegLoader``, ``SMAPSegLoader``,
``SMDSegLoader``, ``SWATSegLoader`` as used by SymTime's ``anomaly_detection.py``):

* A StandardScaler fitted on the whole training file scales train and test; ``val`` is the last
  20 % of the *scaled train* (rows ``[int(0.8 * T), T)``), not held-out data.
* Windows of ``win`` steps start every ``step`` steps; there are ``(T - win) // step + 1`` of them.
  The data factory builds the loaders without a step, so each class keeps its default: 100 for
  SMD, 1 for the others (``dataset.window_step``). The same step is used for train, val and test.
* PSM: the first column of every CSV is a timestamp and is dropped; NaN cells become 0
  (``np.nan_to_num``) before scaling. SWaT: the label is the last column of ``swat2.csv``; the last
  column of ``swat_train2.csv`` (its label) is dropped too.

Files: SMD/MSL/SMAP ``<path>/<Name>_train.npy``, ``<Name>_test.npy``, ``<Name>_test_label.npy``;
PSM ``<path>/train.csv``, ``test.csv``, ``test_label.csv``; SWaT ``<path>/swat_train2.csv``,
``swat2.csv``. The .npy files are memory-mapped: SMAP's test file is 86 MB of float64 and is read
once, chunk by chunk, straight into the scaled float32 array that we keep (43 MB).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from ..errors import UserError
from . import resolve_data_file
from .csv_series import numeric_values
from .windows import SlidingWindows

log = logging.getLogger(__name__)

VAL_FRACTION = 0.2  # official: val = scaled train[int(0.8 * T):]
CHUNK_ROWS = 65536  # rows scaled or checked at a time, so a big memory-mapped file is never copied whole

# Canonical names, so dataset.name=swat or SWAT (the official --data value) still finds SWaT.
NPY_SETS = ("SMD", "MSL", "SMAP")
CANONICAL = {name.upper(): name for name in (*NPY_SETS, "PSM", "SWaT")}


@dataclass
class AnomalySeries:
    """Scaled float32 arrays [time, channels] and the test labels of one anomaly dataset."""

    train: np.ndarray  # [T, C] float32, scaled with a StandardScaler fitted on train
    val: np.ndarray  # last 20 % of the scaled train (official): a view, not a copy
    test: np.ndarray  # [T2, C] float32 scaled with the train scaler
    test_labels: np.ndarray  # [T2] int8 0/1
    info: dict = field(default_factory=dict)  # files, shapes, anomaly share of test, for logging

    @property
    def n_channels(self) -> int:
        return self.train.shape[1]


def expected_files(name: str) -> tuple[str, ...]:
    """File names the loader reads inside ``dataset.path``, in the TSLib layout."""
    if name in NPY_SETS:
        return f"{name}_train.npy", f"{name}_test.npy", f"{name}_test_label.npy"
    if name == "PSM":
        return "train.csv", "test.csv", "test_label.csv"
    return "swat_train2.csv", "swat2.csv"


def required_files(dataset_cfg) -> list[str]:
    name = CANONICAL.get(str(dataset_cfg.name).upper(), dataset_cfg.name)
    return [f"{dataset_cfg.path}/{f}" for f in expected_files(name)] if name in CANONICAL.values() else []


def load(dataset_cfg, root: str | Path) -> AnomalySeries:
    """Read, check and scale one anomaly dataset the official way."""
    name = CANONICAL.get(str(dataset_cfg.name).upper())
    if name is None:
        raise UserError(f"dataset {dataset_cfg.name}: not an anomaly dataset; "
                        f"choose dataset=SMD, MSL, SMAP, PSM or SWaT")
    layout = f"{', '.join(expected_files(name))} in {Path(root).expanduser() / dataset_cfg.path} " \
             f"(the TSLib data folder holds these sets)"
    files = [resolve_data_file(root, f"{dataset_cfg.path}/{f}", name, getattr(dataset_cfg, "source", ""), layout)
             for f in expected_files(name)]

    if name in NPY_SETS:
        train_raw, test_raw, labels = _read_npy_set(files, name)
    elif name == "PSM":
        train_raw, test_raw, labels = _read_psm(files)
    else:
        train_raw, test_raw, labels = _read_swat(files)

    if train_raw.shape[1] != test_raw.shape[1]:
        raise UserError(f"dataset {name}: {files[0]} has {train_raw.shape[1]} channels but {files[1]} has "
                        f"{test_raw.shape[1]}; train and test must come from the same release of the data")
    if len(labels) != len(test_raw):
        raise UserError(f"dataset {name}: {files[-1]} holds {len(labels)} labels but the test data "
                        f"({files[1]}) has {len(test_raw)} rows; use the label file that belongs to that test file")

    scaler = StandardScaler().fit(train_raw)
    train = _scaled(train_raw, scaler)
    test = _scaled(test_raw, scaler)
    val = train[int(len(train) * (1 - VAL_FRACTION)):]
    info = {
        "dataset": name,
        "files": [str(f) for f in files],
        "file": os.path.commonpath([str(f) for f in files]),  # the dataset's folder, for the run's log
        "train_shape": list(train.shape),
        "val_rows": len(val),
        "test_shape": list(test.shape),
        "enc_in": train.shape[1],
        "test_anomaly_share": float(labels.mean()) if len(labels) else 0.0,
    }
    return AnomalySeries(train, val, test, labels, info)


# --- .npy sets (SMD, MSL, SMAP) -------------------------------------------------------------


def _read_npy_set(files: list[Path], name: str):
    train = _load_npy(files[0], name, ndim=2)
    test = _load_npy(files[1], name, ndim=2)
    labels = _load_npy(files[2], name, ndim=1)
    for path, array in ((files[0], train), (files[1], test)):
        _check_finite(array, path, name)
    return train, test, _binary_labels(np.asarray(labels), files[2], name)


def _load_npy(path: Path, name: str, ndim: int) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"dataset {name}: cannot read {path} as a .npy array ({str(exc).splitlines()[0]}); "
                        f"download the file again") from exc
    if ndim == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]  # a [T, 1] label column is unambiguous
    if array.ndim != ndim:
        what = "[time, channels]" if ndim == 2 else "[time] (one label per test row)"
        raise UserError(f"dataset {name}: {path} has shape {tuple(array.shape)} but must be {what}")
    if ndim == 2 and not np.issubdtype(array.dtype, np.number):
        raise UserError(f"dataset {name}: {path} holds {array.dtype} values, not numbers")
    return array


def _check_finite(array: np.ndarray, path: Path, name: str) -> None:
    """A NaN or inf would silently poison the scaler (sklearn skips NaN when fitting)."""
    for start in range(0, len(array), CHUNK_ROWS):
        bad = ~np.isfinite(array[start:start + CHUNK_ROWS]).all(axis=1)
        if bad.any():
            row = start + int(np.argmax(bad))
            raise UserError(f"dataset {name}: {path} row {row} holds NaN or inf; "
                            f"fix or remove that row (the loader needs finite numbers)")


# --- CSV sets (PSM, SWaT) -------------------------------------------------------------------


def _read_csv(path: Path, name: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"dataset {name}: cannot parse {path} as CSV: {str(exc).splitlines()[0]}") from exc
    if frame.shape[1] < 2 or len(frame) == 0:
        raise UserError(f"dataset {name}: {path} needs a header and at least one row of two or more columns; "
                        f"found {frame.shape[0]} rows x {frame.shape[1]} columns")
    return frame


def _read_psm(files: list[Path]):
    train = _psm_values(_read_csv(files[0], "PSM"), files[0])
    test = _psm_values(_read_csv(files[1], "PSM"), files[1])
    label_frame = _read_csv(files[2], "PSM")
    labels = numeric_values(label_frame, list(label_frame.columns[1:2]), files[2], "PSM")[:, 0]
    return train, test, _binary_labels(labels, files[2], "PSM")


def _psm_values(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """Every column but the timestamp, empty cells as 0 (official ``np.nan_to_num``)."""
    columns = list(frame.columns[1:])
    values = frame[columns].apply(pd.to_numeric, errors="coerce")
    # Empty cells are expected in PSM (they become 0); text that is not a number is not.
    garbage = values.isna().to_numpy() & frame[columns].notna().to_numpy()
    if garbage.any():
        row, col = np.argwhere(garbage)[0]
        raise UserError(f"dataset PSM: {path} line {row + 2}, column '{columns[col]}' holds "
                        f"{str(frame[columns[col]].iloc[row])[:40]!r}, not a number; fix or remove that row")
    empty = int(values.isna().to_numpy().sum())
    if empty:
        log.info("dataset PSM: %s has %d empty cell(s); set to 0 before scaling, as the official loader does "
                 "(np.nan_to_num)", path, empty)
    return np.nan_to_num(values.to_numpy(dtype=np.float64))


def _read_swat(files: list[Path]):
    train_frame = _read_csv(files[0], "SWaT")
    test_frame = _read_csv(files[1], "SWaT")
    # Official: the last column of both files is the label; train's is dropped, test's kept.
    train = numeric_values(train_frame, list(train_frame.columns[:-1]), files[0], "SWaT")
    test_all = numeric_values(test_frame, list(test_frame.columns), files[1], "SWaT")
    return train, test_all[:, :-1], _binary_labels(test_all[:, -1], files[1], "SWaT")


# --- shared --------------------------------------------------------------------------------


def _binary_labels(labels: np.ndarray, path: Path, name: str) -> np.ndarray:
    values = np.asarray(labels)
    if values.dtype == bool:
        return values.astype(np.int8)
    if not np.issubdtype(values.dtype, np.number):
        raise UserError(f"dataset {name}: labels in {path} are {values.dtype}, not 0/1 numbers")
    bad = (values != 0) & (values != 1)
    if bad.any():
        row = int(np.argmax(bad))
        raise UserError(f"dataset {name}: labels in {path} must be 0 or 1; row {row} holds {values[row].item()!r}")
    return values.astype(np.int8)


def _scaled(raw: np.ndarray, scaler: StandardScaler) -> np.ndarray:
    """``scaler.transform`` in float64 then float32 (the official order), a chunk at a time."""
    out = np.empty(raw.shape, dtype=np.float32)
    for start in range(0, len(raw), CHUNK_ROWS):
        out[start:start + CHUNK_ROWS] = scaler.transform(np.asarray(raw[start:start + CHUNK_ROWS], dtype=np.float64))
    return out


# --- windows --------------------------------------------------------------------------------


def AnomalyWindows(series: np.ndarray, labels: Optional[np.ndarray], win: int, step: int) -> SlidingWindows:
    """Windows of ``win`` steps every ``step`` steps, ``(T - win) // step + 1`` of them, with the
    test labels of each window's steps when ``labels`` is given (see :class:`SlidingWindows`)."""
    if len(series) < win:
        raise UserError(f"a series of {len(series)} steps is shorter than one window of {win} steps; "
                        f"lower task.seq_len")
    try:
        return SlidingWindows(series, win, 0, step, labels)
    except ValueError as exc:
        raise UserError(f"anomaly windows: {exc}") from exc
