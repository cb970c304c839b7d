"""Dataset families: one module each, chosen by ``dataset.family`` in the dataset YAML.

A family module turns files under ``data.root`` into arrays; tasks turn arrays into windows. Each
family module also says which files a dataset config needs (``required_files``), so a run can
check them all before any work and name the command that fetches what is missing.
Getting the data: :mod:`symtime_repro.data.catalog` (what exists where) and
``python -m symtime_repro.data`` (list, download, import, verify).
"""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

from ..errors import UserError

# dataset.family -> the module in this package that reads it.
FAMILIES = {"csv": "csv_series", "m4": "m4", "uea": "uea", "anomaly": "anomaly"}


def family_module(family: str):
    if family not in FAMILIES:
        raise UserError(f"dataset.family={family!r} is not known; choose one of: {', '.join(FAMILIES)}")
    return importlib.import_module(f"{__name__}.{FAMILIES[family]}")


def required_files(dataset_cfg) -> list[str]:
    """The files (relative to data.root) a run on ``dataset_cfg`` reads."""
    return list(family_module(dataset_cfg.family).required_files(dataset_cfg))


def fetch_command(dataset: str, root: str | Path) -> str:
    """The command that fetches ``dataset`` into ``root``, or an empty string if none can."""
    from .catalog import find_dataset

    entry = find_dataset(dataset)
    if entry is None:
        return ""
    return f"python -m symtime_repro.data download {entry.name} --root {shlex.quote(str(root))}"


def missing_file_message(root: str | Path, relative: str, dataset: str, source: str = "", needs: str = "") -> str:
    """One sentence: which file is missing, where it was looked for, and how to get it."""
    from .catalog import file_entry

    path = Path(root).expanduser() / relative
    layout = f" The loader expects {needs}." if needs else ""
    known = file_entry(relative)
    command = fetch_command(known[0].name, root) if known else ""
    if command:
        origin = f" It comes from {source}." if source else ""
        how = (f" Fetch it with: {command}; or, with a copy you already have: "
               f"python -m symtime_repro.data import <folder or zip> --root {shlex.quote(str(root))}; or point "
               f"data.root=<folder> at a folder that already holds {relative}.{origin}")
    else:
        where = f" Get it from {source} and place it there" if source else " Place the file there"
        how = f"{where}, or point data.root=<folder> at a folder that holds {relative}."
    return f"dataset {dataset}: file not found: {path}.{layout}{how}"


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
