"""Dataset families: one module each, chosen by ``dataset.family`` in the dataset YAML.

A family module turns files under ``data.root`` into arrays; tasks turn arrays into windows.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError


def resolve_data_file(root: str | Path, relative: str, dataset: str, source: str = "", needs: str = "") -> Path:
    """The absolute path of a dataset file, or a UserError that says where to get it.

    ``needs`` describes the family's whole layout (e.g. the companion files) for the message.
    """
    path = Path(root).expanduser() / relative
    if not path.is_file():
        layout = f" The loader expects {needs}." if needs else ""
        hint = f" Get it from {source} and place it there" if source else " Place the file there"
        raise UserError(f"dataset {dataset}: file not found: {path}.{layout}{hint}, or point data.root=<folder> "
                        f"at a folder that holds {relative}.")
    return path
