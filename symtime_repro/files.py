"""Atomic writes for every file a run leaves behind (temp file in the same folder + rename)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Temporary files are created private (0600); what we publish gets the mode a plain open() would give.
FILE_MODE = 0o666 & ~_current_umask()


def make_readable(path: Path) -> None:
    """Give a file renamed from a private temporary file the user's usual permissions."""
    os.chmod(path, FILE_MODE)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # name the file the user knows, not the temporary one
        raise


def write_json(path: Path, obj: Mapping[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n").encode())


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], fieldnames: list[str]) -> None:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


# The configuration a run really ran (after derived values and a checkpoint's settings were filled
# in), written by the run and read first by the report; Hydra's .hydra/config.yaml is what the
# command line composed, which mode=test then replaces with the checkpoint's network settings.
RUN_CONFIG = "config.yaml"


def write_yaml(path: Path, obj: Mapping[str, Any]) -> None:
    import yaml

    atomic_write_bytes(path, yaml.safe_dump(dict(obj), sort_keys=False).encode())


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


# --- one run per run dir ---------------------------------------------------------------------

LOCK_NAME = ".lock"


def lock_owner(run_dir: Path) -> "tuple[str, int] | None":
    """(host, pid) of the live run holding ``run_dir``, or None (free, or its owner is dead)."""
    import socket

    try:
        host, pid_text = (Path(run_dir) / LOCK_NAME).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if host != socket.gethostname():
        return host, pid  # another machine's process: we can't tell, so it counts as alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return host, pid


class RunDirLock:
    """``<run dir>/.lock`` while a run writes there: a second run pointed at the same dir is refused
    (two runs would overwrite each other's checkpoints); a lock left by a dead process is taken over."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME

    def __enter__(self) -> "RunDirLock":
        import socket

        from .errors import UserError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = lock_owner(self.path.parent)
                if owner is not None:
                    raise UserError(busy_message(self.path.parent, owner)) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{socket.gethostname()} {os.getpid()}\n")
            return self
        raise UserError(f"cannot take the lock {self.path}; delete it if no run uses {self.path.parent}")

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)


def busy_message(run_dir: Path, owner: "tuple[str, int]") -> str:
    host, pid = owner
    return (f"run dir {run_dir} is in use by another run (pid {pid} on {host}); wait for it to finish or "
            f"choose another hydra.run.dir (if that process is gone, delete {Path(run_dir) / LOCK_NAME})")
