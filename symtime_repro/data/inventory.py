"""What is under a data root: each catalog file present, missing or damaged, and its record.

Two levels of checking:

* :func:`quick_status` (for ``list`` and the start-up check): exists, size, and a look at the
  file's first bytes (a header, an array shape) — milliseconds even for the 130 MB Traffic file.
* :func:`verified_status` (for ``verify``): the sha256 against the catalog.

``<root>/MANIFEST.json`` records what ``download`` and ``import`` placed (hash, origin, time), and
which files are deliberate slices of a published file (the small real data shipped in ``data/``),
so that a slice is reported as a slice and not as a corrupt copy.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Optional

import numpy as np

from ..files import atomic_write_bytes
from .catalog import DataFile, Dataset, Signature

MANIFEST = "MANIFEST.json"
HEAD_BYTES = 1 << 16  # what a signature check reads

# File states, from good to bad. "ok" needs a hash; the quick check says at most "present".
OK, SLICE, PRESENT, UNVERIFIED, MISSING, CORRUPT, MISMATCH = (
    "ok", "slice", "present", "unverified", "missing", "corrupt", "mismatch")
BAD = (CORRUPT, MISMATCH)


@dataclass
class FileStatus:
    entry: DataFile
    path: Path
    state: str
    detail: str = ""
    size: Optional[int] = None


# --- the manifest ------------------------------------------------------------------------------


def read_manifest(root: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: record}``; an unreadable manifest counts as empty (it is only a record)."""
    path = Path(root) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    files = data.get("files", {}) if isinstance(data, dict) else {}
    return files if isinstance(files, dict) else {}


def record_placed(root: Path, records: dict[str, dict[str, Any]]) -> None:
    """Add or replace the records of files just placed under ``root`` (written atomically)."""
    if not records:
        return
    files = read_manifest(root)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for relative, record in records.items():
        files[relative] = {**record, "placed": stamp}
    body = {"about": "Files placed by `python -m symtime_repro.data` (download/import), with the sha256 they had "
                     "when placed; 'slice' marks a deliberate subset of a published file.",
            "files": dict(sorted(files.items()))}
    atomic_write_bytes(Path(root) / MANIFEST, (json.dumps(body, indent=2) + "\n").encode())


# --- hashing and content checks -------------------------------------------------------------


def sha256_stream(handle: BinaryIO, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(chunk), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return sha256_stream(handle)


def signature_problem(head: bytes, signature: Signature) -> Optional[str]:
    """Why the first bytes of a file don't look like ``signature`` describes, or None if they do."""
    if head.startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer, not the data"
    if head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        return "it is an HTML page (an error or login page), not the data"
    if signature.kind == "npy":
        return _npy_problem(head, signature)
    if signature.kind == "json":
        return None if head.lstrip().startswith(b"{") else "not a JSON object"
    text = head.decode("utf-8", errors="replace")
    if signature.kind == "ts":
        for line in text.splitlines():
            if line.lower().startswith("@problemname"):
                name = line.split(None, 1)[1].strip() if len(line.split(None, 1)) > 1 else ""
                if signature.first and not _same_problem(name, signature.first):
                    return f"its @problemName is {name!r}, not {signature.first!r}"
                return None
        return "no @problemName line: not a UEA .ts file"
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")))) if text else []
    if not rows or not rows[0]:
        return "it is empty"
    header = [cell.strip() for cell in rows[0]]
    if signature.kind == "m4":
        if header[0] != "V1":
            return f"its header starts {header[0][:20]!r}, not the M4 header \"V1\",\"V2\",…"
        if len(rows) > 1 and rows[1] and not rows[1][0].strip().startswith(signature.first):
            return f"its first series is {rows[1][0].strip()[:12]!r}, not a {signature.first}… series"
        return None
    if signature.first and header[0] != signature.first:
        return f"its header starts {header[0][:30]!r}, expected {signature.first!r}"
    if signature.width and len(header) != signature.width:
        return f"its header has {len(header)} columns, expected {signature.width}"
    return None


def _same_problem(found: str, expected: str) -> bool:
    """Archive copies spell names a little differently (PEMS-SF / PEMSSF, case): compare loosely."""
    a, b = ("".join(ch for ch in text.lower() if ch.isalnum()) for text in (found, expected))
    return bool(a) and (a in b or b in a)


def _npy_problem(head: bytes, signature: Signature) -> Optional[str]:
    try:
        stream = io.BytesIO(head)
        version = np.lib.format.read_magic(stream)
        reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        shape, _, _ = reader[version](stream) if version in reader else (None, None, None)
    except (ValueError, KeyError, EOFError, SyntaxError):
        return "not a NumPy .npy file"
    if shape is None:
        return "an .npy version this reader does not know"
    if signature.ndim is not None and len(shape) != signature.ndim:
        return f"its array has shape {shape}, expected {signature.ndim} dimension(s)"
    if signature.width is not None and shape[-1] != signature.width:
        return f"its array has shape {shape}, expected {signature.width} columns"
    return None


def read_head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(HEAD_BYTES)


# --- status of one file, one dataset ------------------------------------------------------------


def quick_status(root: Path, entry: DataFile, manifest: dict[str, dict[str, Any]]) -> FileStatus:
    path = Path(root) / entry.path
    if not path.is_file():
        return FileStatus(entry, path, MISSING)
    size = path.stat().st_size
    problem = signature_problem(read_head(path), entry.signature)
    if problem:
        return FileStatus(entry, path, CORRUPT, problem, size)
    record = manifest.get(entry.path, {})
    if record.get("slice_of") and record.get("size") == size:
        return FileStatus(entry, path, SLICE, record.get("note", "a slice of the published file"), size)
    if entry.size is not None and size != entry.size:
        what = "shorter" if size < entry.size else "longer"
        return FileStatus(entry, path, CORRUPT, f"{size:,} bytes, {what} than the published file ({entry.size:,}); "
                                                f"download it again", size)
    return FileStatus(entry, path, PRESENT, "", size)


def verified_status(root: Path, entry: DataFile, manifest: dict[str, dict[str, Any]]) -> FileStatus:
    path = Path(root) / entry.path
    if not path.is_file():
        return FileStatus(entry, path, MISSING)
    status = FileStatus(entry, path, PRESENT, size=path.stat().st_size)
    problem = signature_problem(read_head(path), entry.signature)
    if problem:
        return FileStatus(entry, path, CORRUPT, problem, status.size)
    digest = sha256_file(status.path)
    record = manifest.get(entry.path, {})
    if entry.sha256 and digest == entry.sha256:
        return FileStatus(entry, status.path, OK, "sha256 matches the published file", status.size)
    if record.get("slice_of") and digest == record.get("sha256"):
        return FileStatus(entry, status.path, SLICE, f"{record.get('note', 'slice')} (sha256 as recorded)", status.size)
    if entry.sha256:
        return FileStatus(entry, status.path, MISMATCH,
                          f"sha256 {digest[:16]}… differs from the published file's {entry.sha256[:16]}…; "
                          f"a damaged or different copy - download it again", status.size)
    if record.get("sha256"):
        if digest == record["sha256"]:
            return FileStatus(entry, status.path, UNVERIFIED,
                              f"no published hash; unchanged since placed from {record.get('origin', '?')}", status.size)
        return FileStatus(entry, status.path, MISMATCH,
                          f"changed since it was placed (sha256 {digest[:16]}…, recorded {record['sha256'][:16]}…)",
                          status.size)
    return FileStatus(entry, status.path, UNVERIFIED, f"no published hash (sha256 {digest[:16]}…)", status.size)


def dataset_state(statuses: list[FileStatus]) -> str:
    """One word for a dataset from its required files' states."""
    states = [s.state for s in statuses if not s.entry.optional]
    if any(state in BAD for state in states):
        return "corrupt"
    if all(state == MISSING for state in states):
        return "missing"
    if any(state == MISSING for state in states):
        return "partial"
    return "present"


def dataset_statuses(root: Path, dataset: Dataset, verify: bool = False) -> list[FileStatus]:
    manifest = read_manifest(root)
    check = verified_status if verify else quick_status
    return [check(root, entry, manifest) for entry in dataset.files]


def archives_for(root: Path, dataset: Dataset) -> list[Path]:
    """Zips in ``root`` (or in the dataset's folder) named after ``dataset``, e.g. ``MSL.zip``: the
    files a download in a browser leaves, which ``import`` unpacks into place."""
    wanted = _folded(dataset.name)
    folders = {Path(root)} | {Path(root) / entry.path.split("/", 1)[0] for entry in dataset.files if "/" in entry.path}
    found = []
    for folder in sorted(folders):
        try:
            found += [p for p in folder.iterdir() if p.suffix.lower() == ".zip" and wanted in _folded(p.stem)]
        except OSError:
            continue
    return sorted(set(found))


def _folded(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


__all__ = ["FileStatus", "archives_for", "MANIFEST", "read_manifest", "record_placed", "sha256_file", "sha256_stream",
           "signature_problem", "read_head", "quick_status", "verified_status", "dataset_state", "dataset_statuses",
           "OK", "SLICE", "PRESENT", "UNVERIFIED", "MISSING", "CORRUPT", "MISMATCH", "BAD"]
