"""The published numbers the report compares with: reference CSVs (task, dataset, setting, metric,
value, source), and which of them matches a run's dataset and setting."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import UserError

DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
REFERENCE_COLUMNS = {"task", "dataset", "setting", "metric", "value", "source"}


@dataclass(frozen=True)
class Reference:
    task: str
    dataset: str
    setting: str
    metric: str
    value: float
    source: str

    @property
    def is_average(self) -> bool:
        """The paper's figure gives averages over datasets (setting ``avg``), not per-dataset values."""
        return self.setting.strip().lower() == "avg"


def load_references(folder: Path = DEFAULT_REFERENCE_DIR) -> list[Reference]:
    """Reference values from every CSV in ``folder`` with the columns task, dataset, setting,
    metric, value, source (others, like the hyperparameter table, are not results and are skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--reference {folder}: no such folder")
    references: list[Reference] = []
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if not REFERENCE_COLUMNS <= set(reader.fieldnames or ()):
                continue
            for line, row in enumerate(reader, start=2):
                try:
                    value = float(row["value"])
                except ValueError as exc:
                    raise UserError(f"{path} line {line}: value {row['value']!r} is not a number") from exc
                references.append(Reference(row["task"].strip(), row["dataset"].strip(), row["setting"].strip(),
                                            row["metric"].strip(), value, row["source"].strip()))
    if not references:
        raise UserError(f"--reference {folder}: no CSV with columns {', '.join(sorted(REFERENCE_COLUMNS))}")
    return references


_SETTING_FIELD = re.compile(r"(\w+)=([^\s()]+)")


def setting_fields(setting: str) -> dict[str, str]:
    """``"pred_len=96 (seq_len=96)"`` → ``{"pred_len": "96", "seq_len": "96"}``."""
    return dict(_SETTING_FIELD.findall(setting))


def _same_value(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)  # "0.5" and "0.50" are one mask ratio
    except ValueError:
        return a.strip().lower() == b.strip().lower()


def setting_matches(ours: str, seq_len: int | None, reference: str) -> bool:
    """A reference setting matches when each of its ``key=value`` fields equals ours (seq_len
    included, where the reference names one); a setting without fields (an M4 pattern) must be
    the same word."""
    wanted = setting_fields(reference)
    if not wanted:
        return ours.strip().lower() == reference.strip().lower()
    have = setting_fields(ours)
    if seq_len is not None:
        have.setdefault("seq_len", str(seq_len))
    return all(key in have and _same_value(have[key], value) for key, value in wanted.items())


def find_reference(references: Iterable[Reference], task: str, dataset: str, setting: str,
                   seq_len: int | None, metric: str) -> Reference | None:
    for ref in references:
        if (not ref.is_average and ref.task == task and ref.metric == metric
                and ref.dataset.lower() == dataset.lower() and setting_matches(setting, seq_len, ref.setting)):
            return ref
    return None

