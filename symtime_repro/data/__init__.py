"""Getting the data: ``python -m symtime_repro.data`` (list, download, import, verify; see cli.py).

:mod:`.catalog` says what exists where (files, hashes, sources); :mod:`.fetch` downloads,
:mod:`.importer` places a copy you already have, :mod:`.inventory` says what a data root holds.
Reading the files is another package, :mod:`symtime_repro.datasets`, which uses this one to word
its advice about a missing file (below). This package loads no reader and never torch, so the
commands start at once; its one call into a reader builds the M4 cache after a download (numpy only).
"""

from __future__ import annotations

import shlex
from pathlib import Path


def fetch_command(dataset: str, root: str | Path) -> str:
    """The command that fetches ``dataset`` into ``root`` (generates it, for a generated one), or an
    empty string if none can."""
    from .catalog import find_dataset

    entry = find_dataset(dataset)
    if entry is None:
        return ""
    if entry.generated:
        return generate_command(entry.name, root)
    return f"python -m symtime_repro.data download {entry.name} --root {shlex.quote(str(root))}"


def generate_command(dataset: str, root: str | Path, folder: str = "") -> str:
    """The command that generates the generated dataset ``dataset`` into ``root/folder``."""
    from .s2 import DEFAULT_PATH, generate_command as s2_command

    return s2_command(root, "N", folder or DEFAULT_PATH)


def missing_file_message(root: str | Path, relative: str, dataset: str, source: str = "", needs: str = "") -> str:
    """One sentence: which file is missing, where it was looked for, and how to get it."""
    from .catalog import file_entry

    from .catalog import find_dataset

    path = Path(root).expanduser() / relative
    layout = f" The loader expects {needs}." if needs else ""
    generated = find_dataset(dataset)
    if generated is not None and generated.generated:
        folder = relative.rsplit("/", 1)[0] if "/" in relative else ""
        return (f"dataset {dataset}: file not found: {path}.{layout} It is generated, not downloaded: "
                f"{generate_command(generated.name, root, folder)} (N = the series-symbol pairs wanted; the "
                f"command resumes and extends an existing cache)")
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
