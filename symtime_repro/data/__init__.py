"""Dataset families: one module each, chosen by ``dataset.family`` in the dataset YAML.

A family module turns files under ``data.root`` into arrays; tasks turn arrays into windows.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError


def resolve_data_file(root: str | Path, relative: str, dataset: str, source: str = "") -> Path:
    """The absolute path of a dataset file, or a UserError that says where to get it."""
    path = Path(root).expanduser() / relative
    if not path.is_file():
        hint = f" Get it from {source} and place it there" if source else " Place the file there"
        raise UserError(f"dataset {dataset}: file not found: {path}.{hint}, or point data.root=<folder> "
                        f"at a folder that holds {relative}.")
    return path
