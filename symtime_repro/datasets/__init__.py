"""Reading datasets: one module per family, chosen by ``dataset.family`` in the dataset YAML.

A family module turns files under ``data.root`` into arrays; tasks turn arrays into windows
(:mod:`.windows`). Each family module also says which files a dataset config needs
(``required_files``), so a run can check them all before any work and name the command that
fetches what is missing.

Getting the files is another package, :mod:`symtime_repro.data` (``python -m symtime_repro.data``
list, download, import, verify, and the catalog of what exists where). The readers use it to word
that advice and to know a file's published row count; it loads no reader (it calls the M4 one only
to build its cache after a download), so the data commands start without torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..data import missing_file_message
from ..errors import UserError

# dataset.family -> the module in this package that reads it.
FAMILIES = {"csv": "csv_series", "m4": "m4", "uea": "uea", "anomaly": "anomaly", "s2": "s2"}


def family_module(family: str):
    if family not in FAMILIES:
        raise UserError(f"dataset.family={family!r} is not known; choose one of: {', '.join(FAMILIES)}")
    return importlib.import_module(f"{__name__}.{FAMILIES[family]}")


def required_files(dataset_cfg) -> list[str]:
    """The files (relative to data.root) a run on ``dataset_cfg`` reads."""
    return list(family_module(dataset_cfg.family).required_files(dataset_cfg))


def resolve_data_file(root: str | Path, relative: str, dataset: str, source: str = "", needs: str = "") -> Path:
    """The absolute path of a dataset file, or a UserError that says how to get it."""
    path = Path(root).expanduser() / relative
    if not path.is_file():
        raise UserError(missing_file_message(root, relative, dataset, source, needs))
    return path


def check_files(dataset_cfg, root: str | Path) -> None:
    """Stop before any work if a file the run needs is missing (the first one is named)."""
    for relative in required_files(dataset_cfg):
        resolve_data_file(root, relative, dataset_cfg.name, getattr(dataset_cfg, "source", ""))
