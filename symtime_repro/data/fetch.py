"""Downloading catalog files: gdown for every transfer (Google Drive and plain HTTPS alike).

gdown gives us, for both kinds of source, what a researcher on a flaky connection needs: a
progress bar, retries that resume the current transfer with an HTTP Range request, and partial
files (``*.part``) that a later ``download`` picks up where it stopped. Around it we add what
gdown does not know: which source holds which file, the sha256 check, and placing a file only
once it is complete and verified.

Each file goes: ``<root>/.downloads/<source>/<path>`` (staging, same filesystem) -> sha256 and
content check -> atomic rename to ``<root>/<path>`` -> a record in ``<root>/MANIFEST.json``. A file
that fails its check is deleted from staging and never reaches ``<root>/<path>``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import UserError
from ..files import atomic_write_bytes, make_readable
from . import catalog
from .catalog import DataFile, Dataset, Source
from .inventory import read_head, record_placed, sha256_file, signature_problem

log = logging.getLogger("symtime_repro.data")

STAGING = ".downloads"
CONNECT_READ_TIMEOUT = (30, 120)  # seconds: to connect, and between bytes
ZIP_SUFFIXES = (".zip",)


class SourceFailed(Exception):
    """One source could not deliver one file; the message is a sentence for the user.

    ``whole_source``: the failure is not about this file (unreachable host, Drive refusing us, rate
    limit), so the rest of the command does not ask that source again.
    """

    def __init__(self, message: str, whole_source: bool = False):
        super().__init__(message)
        self.whole_source = whole_source


@dataclass
class FileOutcome:
    entry: DataFile
    state: str  # "placed", "present", "failed"
    source: str = ""
    detail: str = ""


@dataclass
class DownloadReport:
    dataset: Dataset
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.state != "failed" for f in self.files if not f.entry.optional)


def drive_advice(source: Source, root: Path) -> str:
    return (f"Google Drive refused the transfer. It limits how often a public file may be fetched "
            f"('Too many users have viewed or downloaded this file recently') and sometimes hides the link "
            f"('Cannot retrieve the public link'). Try again in a few hours; or pass --cookies FILE with cookies "
            f"exported (Netscape cookies.txt) from a browser signed in to Google; or open {source.page()} in a "
            f"browser, download the folder, and run: python -m symtime_repro.data import <the zip or folder> "
            f"--root {root}; or use another source (--source hf).")


def explain(exc: BaseException, source: Source, root: Path, what: str) -> str:
    """A failed transfer as one sentence that says what to do."""
    import requests
    from gdown.exceptions import FileURLRetrievalError

    if isinstance(exc, FileURLRetrievalError):
        return drive_advice(source, root)
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code == 404:
            return f"{source.name} does not hold {what} (HTTP 404)"
        if code in (401, 403):
            return f"{source.name} refused access to {what} (HTTP {code}); it may need a log-in or be private"
        if code == 429:
            return f"{source.name} is rate-limiting requests (HTTP 429); wait a while and run the command again"
        return f"{source.name} answered HTTP {code} for {what}; a server-side error - try again later"
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        url = getattr(getattr(exc, "request", None), "url", "") or source.page()
        host = urllib.parse.urlsplit(url).netloc or url
        return f"cannot reach {host} ({type(exc).__name__}): check the network, or HTTPS_PROXY behind a proxy"
    if isinstance(exc, RuntimeError) and "folder" in str(exc).lower():  # gdown: folder page not parsable
        return drive_advice(source, root)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{source.name}: {first}"


def _affects_whole_source(exc: BaseException) -> bool:
    import requests
    from gdown.exceptions import FileURLRetrievalError

    if isinstance(exc, (FileURLRetrievalError, requests.ConnectionError, requests.Timeout)):
        return True
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code in (401, 403, 429)
    return isinstance(exc, RuntimeError)  # gdown could not read the Drive folder page


def _is_retryable(exc: BaseException) -> bool:
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return False


# --- transfers -----------------------------------------------------------------------------------


@dataclass
class Transfer:
    """How to move bytes: gdown with these settings. ``fetch`` is replaceable in tests."""

    retries: int = 3
    quiet: bool = False
    cookies: Optional[str] = None
    backoff: float = 2.0  # seconds before the first retry of a server error, doubled each time
    refresh_listings: bool = False  # list Drive folders again instead of using the cached listing
    listed: set = field(default_factory=set)  # Drive folders listed by this command

    def fetch(self, url: str, output: Path, drive: bool) -> Path:
        import gdown

        output.parent.mkdir(parents=True, exist_ok=True)
        attempt = 0
        while True:
            try:
                gdown.download(url=url, output=str(output), quiet=self.quiet, resume=True, retries=self.retries,
                               use_cookies=drive, cookies_file=self.cookies, timeout=CONNECT_READ_TIMEOUT)
                return output
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised if not retryable
                # gdown retries broken connections itself (resuming); server errors it leaves to us.
                if attempt >= self.retries or not _is_retryable(exc):
                    raise
                delay = self.backoff * 2 ** attempt
                attempt += 1
                log.warning("%s: %s; retry %d/%d in %.0fs", url, exc, attempt, self.retries, delay)
                time.sleep(delay)

    def list_drive_folder(self, folder_id: str) -> list[dict[str, str]]:
        import gdown

        files = gdown.download_folder(id=folder_id, skip_download=True, quiet=self.quiet, use_cookies=True,
                                      cookies_file=self.cookies, timeout=CONNECT_READ_TIMEOUT)
        return [{"id": f.id, "path": f.path} for f in files or []]


def drive_listing(source: Source, root: Path, transfer: Transfer, refresh: bool = False) -> list[dict[str, str]]:
    """The files of a Drive folder (id and path inside it), cached in the staging folder.

    Listing a big public folder takes many requests, and Drive rate-limits them: one listing per
    data root serves every later download (``--refresh`` lists again).
    """
    cache = root / STAGING / f"drive-{source.location}.json"
    refresh = refresh and source.location not in transfer.listed  # once per command
    if cache.is_file() and not refresh:
        try:
            return json.loads(cache.read_text())
        except ValueError:
            pass
    listing = transfer.list_drive_folder(source.location)
    transfer.listed.add(source.location)
    if listing:  # an empty answer is not worth keeping: the next command asks again
        atomic_write_bytes(cache, json.dumps(listing).encode())
    return listing


def locate_in_drive(listing: list[dict[str, str]], entry: DataFile) -> Optional[dict[str, str]]:
    """The listing item that is ``entry``: same path (under any top folder), else the same file name
    with its folder's name in the path, else a unique file of that name; else a zip named after the
    file's folder (``MSL.zip``), whose members ``import`` then places."""
    paths = [(item, item["path"].replace("\\", "/")) for item in listing]
    for item, path in paths:
        if path == entry.path or path.endswith("/" + entry.path):
            return item
    folder = entry.path.rsplit("/", 1)[0] if "/" in entry.path else ""
    named = [(item, path) for item, path in paths if path.rsplit("/", 1)[-1] in entry.names]
    in_folder = [item for item, path in named if folder and f"/{folder.lower()}/" in f"/{path.lower()}"]
    if len(in_folder) == 1:
        return in_folder[0]
    if len(named) == 1:
        return named[0][0]
    zips = [item for item, path in paths if path.lower().rsplit("/", 1)[-1] == f"{folder.lower()}.zip"]
    return zips[0] if zips else None


# --- one file, one dataset ---------------------------------------------------------------------


def _check_and_place(staged: Path, dest: Path, entry: DataFile, origin: str) -> dict[str, Any]:
    """Verify a fully downloaded file and move it into place; on failure delete it and raise."""
    problem = signature_problem(read_head(staged), entry.signature)
    digest = sha256_file(staged)
    if problem is None and entry.sha256 and digest != entry.sha256:
        problem = f"its sha256 {digest} is not the published file's {entry.sha256}"
    if problem:
        staged.unlink(missing_ok=True)
        raise SourceFailed(f"the file served as {entry.path} was rejected: {problem}; nothing was written to {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    make_readable(staged)
    os.replace(staged, dest)
    return {"sha256": digest, "size": dest.stat().st_size, "origin": origin}


def fetch_file(entry: DataFile, root: Path, source: Source, transfer: Transfer,
               import_zip: Callable[[Path, Path], list[str]]) -> str:
    """Bring ``entry`` from ``source`` into ``root``; returns where it came from. Raises SourceFailed."""
    import requests  # gdown's transport; its exceptions are what we classify
    from gdown.exceptions import DownloadError, FileURLRetrievalError

    dest = root / entry.path
    staged = root / STAGING / source.name / entry.path
    try:
        if source.kind == "url":
            url = source.url_for(entry)
            transfer.fetch(url, staged, drive=False)
            record = _check_and_place(staged, dest, entry, url)
            record_placed(root, {entry.path: record})
            return url
        listing = drive_listing(source, root, transfer, refresh=transfer.refresh_listings)
        item = locate_in_drive(listing, entry)
        if item is None:
            raise SourceFailed(f"{source.name} holds no file named {' or '.join(entry.names)}")
        url = f"https://drive.google.com/uc?id={item['id']}"
        origin = f"{source.page()} : {item['path']}"
        if item["path"].lower().endswith(ZIP_SUFFIXES):
            archive = root / STAGING / source.name / item["path"]
            if not archive.is_file():
                transfer.fetch(url, archive, drive=True)
            import_zip(archive, root)
            if not dest.is_file():
                raise SourceFailed(f"{item['path']} from {source.name} does not hold {entry.name}")
            return origin
        transfer.fetch(url, staged, drive=True)
        record = _check_and_place(staged, dest, entry, origin)
        record_placed(root, {entry.path: record})
        return origin
    except SourceFailed:
        raise
    except (requests.RequestException, DownloadError, FileURLRetrievalError, RuntimeError) as exc:
        raise SourceFailed(explain(exc, source, root, entry.path), _affects_whole_source(exc)) from exc
    except OSError as exc:
        raise UserError(f"cannot write {exc.filename or dest}: {exc.strerror or exc}; check the free space and "
                        f"permissions of the data root {root}") from exc


def download_dataset(dataset: Dataset, root: Path, sources: list[Source], transfer: Transfer,
                     import_zip: Callable[[Path, Path], list[str]], force: bool = False,
                     is_present: Callable[[DataFile], bool] = lambda entry: False,
                     given_up: Optional[dict[str, str]] = None) -> DownloadReport:
    """Fetch every file of ``dataset`` that is not already present, trying ``sources`` in order."""
    report = DownloadReport(dataset)
    given_up = {} if given_up is None else given_up  # source -> why, for failures not about one file
    for entry in dataset.files:
        if not force and is_present(entry):
            report.files.append(FileOutcome(entry, "present"))
            continue
        reasons = []
        usable = [s for s in sources if s.holds(entry.path)]
        for source in usable:
            if source.name in given_up:
                reasons.append(f"{source.name}: not asked again ({given_up[source.name]})")
                continue
            log.info("%s: fetching %s from %s", dataset.name, entry.path, source.name)
            try:
                origin = fetch_file(entry, root, source, transfer, import_zip)
            except SourceFailed as exc:
                reasons.append(f"{source.name}: {exc}")
                if exc.whole_source:
                    given_up[source.name] = "failed above" if len(str(exc)) > 60 else str(exc)
                continue
            report.files.append(FileOutcome(entry, "placed", source.name, origin))
            break
        else:
            detail = "\n".join(reasons) if reasons else "no chosen source publishes it"
            report.files.append(FileOutcome(entry, "failed", detail=detail))
    _remove_empty_folders(root / STAGING)
    return report


def _remove_empty_folders(folder: Path) -> None:
    """Staging folders left empty; partial files (and their folders) stay for the next resume."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def sources_for(dataset: Dataset, chosen: Optional[list[str]], mirror: Optional[str]) -> list[Source]:
    """The dataset's sources in order; ``--mirror`` first; ``--source`` keeps only the named ones."""
    names = list(dataset.sources)
    table = dict(catalog.SOURCES)
    if mirror:
        table["mirror"] = Source("mirror", "url", mirror.rstrip("/") + "/{path}", f"the mirror {mirror}")
        names.insert(0, "mirror")
    if chosen:
        unknown = [name for name in chosen if name not in table]
        if unknown:
            raise UserError(f"--source {unknown[0]} is not a known source; choose from: {', '.join(table)}"
                            + ("" if mirror else " (mirror needs --mirror URL)"))
        names = [name for name in chosen if name in names or name == "mirror"]
    return [table[name] for name in names]


__all__ = ["Transfer", "SourceFailed", "DownloadReport", "FileOutcome", "download_dataset", "fetch_file",
           "drive_listing", "locate_in_drive", "explain", "sources_for", "STAGING"]
