"""``import``: place the data a user already has (a folder or a zip, in any published layout).

Layouts met in the wild: TSLib's ``dataset/ETT-small/ETTh1.csv``, SymTime's
``datasets/ETT/ETTh1.csv``, flat folders, zips inside folders, zips inside zips, macOS junk
(``__MACOSX/``, ``.DS_Store``), and other names for the same file (``ECL.csv`` for
``electricity.csv``, ``m4_info.csv`` for ``M4-info.csv``). So we ignore folders and recognise each
file by its **name** (the catalog's names and aliases) and its **content**: a known sha256 (which
also finds a renamed file of a known size), else a look at its header or array shape.

Every candidate is read once, hashed while it is copied into a staging folder on the data root's
filesystem, and only a file that passed its checks is renamed into place. The user's originals are
only read: never moved, changed or deleted.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional

from ..errors import UserError
from ..files import make_readable
from .catalog import DATASETS, NOT_NEEDED, DataFile
from .fetch import STAGING
from .inventory import HEAD_BYTES, record_placed, sha256_file, signature_problem

JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass
class Found:
    """One file inside the import source."""

    label: str  # where it is, for the report: "datasets/MSL/MSL.zip:MSL/MSL_train.npy"
    name: str
    size: int
    open: Callable[[], BinaryIO]  # valid while the walk is at this item


@dataclass
class Candidate:
    found_label: str
    staged: Path
    sha256: str
    size: int
    problem: Optional[str]


@dataclass
class ImportReport:
    placed: list[tuple[str, str]] = field(default_factory=list)  # (found, destination)
    present: list[tuple[str, str]] = field(default_factory=list)  # identical file already in place
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (found, why)
    junk: int = 0  # macOS / Windows metadata entries ignored


def _is_junk(parts: list[str]) -> bool:
    return any(p == "__MACOSX" or p in JUNK_NAMES or p.startswith("._") for p in parts)


def walk(source: Path, exclude: Optional[Path] = None) -> Iterator[Found | None]:
    """Every file in a folder or zip, descending into zips inside; ``None`` for a junk entry."""
    source = Path(source)
    if source.is_dir():
        for folder, dirs, files in os.walk(source):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if exclude is None or (here / d).resolve() != exclude.resolve())
            for name in sorted(files):
                yield from _walk_file(here / name, str(here / name))
    elif source.is_file():
        yield from _walk_file(source, str(source))
    else:
        raise UserError(f"import: {source} does not exist; give a folder or a .zip that holds the data")


def _walk_file(path: Path, label: str) -> Iterator[Found | None]:
    if _is_junk([path.name]):
        yield None
        return
    if path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                yield from _walk_zip(archive, label)
        except zipfile.BadZipFile as exc:
            raise UserError(f"import: {path} is a damaged zip ({exc}); download it again") from exc
        return
    yield Found(label, path.name, path.stat().st_size, lambda: open(path, "rb"))


def _walk_zip(archive: zipfile.ZipFile, label: str) -> Iterator[Found | None]:
    for info in archive.infolist():
        if info.is_dir():
            continue
        parts = info.filename.replace("\\", "/").split("/")
        if _is_junk(parts):
            yield None
            continue
        inner = f"{label}:{info.filename}"
        if parts[-1].lower().endswith(".zip"):
            with archive.open(info) as member, zipfile.ZipFile(member) as nested:  # ZipExtFile is seekable
                yield from _walk_zip(nested, inner)
            continue
        yield Found(inner, parts[-1], info.file_size, lambda info=info: archive.open(info))


def _targets_by_name() -> dict[str, list[DataFile]]:
    table: dict[str, list[DataFile]] = {}
    for dataset in DATASETS.values():
        if dataset.generated:  # made by `generate`; a manifest.json found in a folder is not its cache
            continue
        for entry in dataset.files:
            for name in entry.names:
                table.setdefault(name, []).append(entry)
    return table


def _targets_by_size() -> dict[int, list[DataFile]]:
    table: dict[int, list[DataFile]] = {}
    for dataset in DATASETS.values():
        if dataset.generated:
            continue
        for entry in dataset.files:
            if entry.size is not None:
                table.setdefault(entry.size, []).append(entry)
    return table


def _stage(found: Found, folder: Path) -> tuple[Path, str, bytes]:
    """Copy ``found`` into ``folder`` while hashing it; returns (copy, sha256, first bytes)."""
    digest = hashlib.sha256()
    fd, name = tempfile.mkstemp(dir=folder, suffix=".part")
    head = b""
    with os.fdopen(fd, "wb") as out, found.open() as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            if len(head) < HEAD_BYTES:
                head += block[:HEAD_BYTES - len(head)]
            digest.update(block)
            out.write(block)
    return Path(name), digest.hexdigest(), head


@contextmanager
def _staging(root: Path) -> Iterator[Path]:
    base = root / STAGING
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="import-", dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        try:
            base.rmdir()  # only if nothing else (partial downloads, Drive listings) is kept there
        except OSError:
            pass


def import_path(source: Path, root: Path, overwrite: bool = False, allow_mismatch: bool = False) -> ImportReport:
    """Find every known file in ``source`` and place it under ``root``; report what happened."""
    source, root = Path(source).expanduser(), Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    by_name, by_size = _targets_by_name(), _targets_by_size()
    report = ImportReport()
    candidates: dict[str, tuple[DataFile, list[Candidate]]] = {}
    serial = itertools.count()
    try:
        with _staging(root) as staging:
            for found in walk(source, exclude=root / STAGING):
                if found is None:
                    report.junk += 1
                    continue
                targets = by_name.get(found.name) or [e for e in by_size.get(found.size, [])]
                if not targets:
                    why = NOT_NEEDED.get(found.name, "not a file of any dataset symtime-repro knows")
                    report.skipped.append((found.label, why))
                    continue
                staged, digest, head = _stage(found, staging)
                named = found.name in by_name
                matched = False
                for entry in targets:
                    if not named and digest != entry.sha256:
                        continue  # same size as a known file, different content: not that file
                    matched = True
                    copy = staging / f"candidate-{next(serial)}"
                    shutil.copyfile(staged, copy) if len(targets) > 1 else os.replace(staged, copy)
                    problem = signature_problem(head, entry.signature)
                    candidates.setdefault(entry.path, (entry, []))[1].append(
                        Candidate(found.label, copy, digest, found.size, problem))
                staged.unlink(missing_ok=True)
                if not matched:
                    report.skipped.append((found.label, "not a file of any dataset symtime-repro knows"))
            records = {}
            for relative, (entry, found_copies) in candidates.items():
                chosen = _choose(entry, found_copies, report, allow_mismatch)
                if chosen is not None:
                    record = _place(chosen, root, entry, report, overwrite)
                    if record:
                        records[relative] = record
            record_placed(root, records)
    except OSError as exc:
        raise UserError(f"import: cannot write {exc.filename or root}: {exc.strerror or exc}; check the free space "
                        f"and permissions of the data root {root} (nothing half-written was left there)") from exc
    return report


def _choose(entry: DataFile, found: list[Candidate], report: ImportReport, allow_mismatch: bool) -> Optional[Candidate]:
    """The one candidate to place for ``entry``; every other one goes to the report with its reason."""
    usable = []
    for candidate in found:
        if candidate.problem:
            report.skipped.append((candidate.found_label, f"named like {entry.path} but {candidate.problem}"))
        else:
            usable.append(candidate)
    if not usable:
        return None
    if entry.sha256:
        exact = [c for c in usable if c.sha256 == entry.sha256]
        others = [c for c in usable if c.sha256 != entry.sha256]
        if exact or not allow_mismatch:
            for candidate in others:
                report.skipped.append((candidate.found_label,
                                       f"sha256 differs from the published {entry.path} (a damaged copy, another "
                                       f"release, or a slice); not placed - pass --allow-mismatch to take it anyway"))
            usable = exact
    distinct = {c.sha256 for c in usable}
    if len(distinct) > 1:
        for candidate in usable:
            report.skipped.append((candidate.found_label, f"{len(distinct)} different files could be {entry.path}; "
                                                          f"import the one you want on its own"))
        return None
    if not usable:
        return None
    for candidate in usable[1:]:
        report.skipped.append((candidate.found_label, f"a duplicate of {usable[0].found_label}"))
    return usable[0]


def _place(chosen: Candidate, root: Path, entry: DataFile, report: ImportReport, overwrite: bool) -> Optional[dict]:
    dest = root / entry.path
    if dest.is_file():
        if sha256_file(dest) == chosen.sha256:
            report.present.append((chosen.found_label, entry.path))
            return None
        if not overwrite:
            report.skipped.append((chosen.found_label, f"{dest} exists and differs; pass --overwrite to replace it"))
            return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    make_readable(chosen.staged)
    os.replace(chosen.staged, dest)
    report.placed.append((chosen.found_label, entry.path))
    return {"sha256": chosen.sha256, "size": chosen.size, "origin": chosen.found_label}


__all__ = ["import_path", "ImportReport", "walk"]
