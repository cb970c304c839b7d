"""`python -m symtime_repro.data`: the catalog, downloads through a loopback server, import of messy
layouts, list/verify, and the run's start-up check. All on the real files shipped in data/."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from gdown.download import GoogleDriveFileToDownload as DriveFile  # what download_folder(skip_download) lists

from conftest import DATA_ROOT, FULL_DATA, full_data_missing, REPO, TINY, assert_user_error, read_metrics, run_cli
from symtime_repro.config import DatasetConfig
from symtime_repro.data import catalog, fetch
from symtime_repro.datasets import required_files
from symtime_repro.data.cli import main as data_main
from symtime_repro.data.inventory import read_manifest

ETTH1 = DATA_ROOT / "ETT-small" / "ETTh1.csv"
JV = DATA_ROOT / "JapaneseVowels"
JV_FILES = ("JapaneseVowels_TRAIN.ts", "JapaneseVowels_TEST.ts")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def data_cli(capsys, *args) -> tuple[int, str, str]:
    code = data_main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


# --- the catalog agrees with the configs --------------------------------------------------------


def test_every_dataset_yaml_is_in_the_catalog_with_the_same_files():
    schema = OmegaConf.structured(DatasetConfig)
    names = set()
    for yaml in sorted((REPO / "conf" / "dataset").glob("*.yaml")):
        cfg = OmegaConf.merge(schema, OmegaConf.load(yaml))
        names.add(cfg.name)
        entry = catalog.find_dataset(cfg.name)
        assert entry is not None, f"{yaml.name}: dataset {cfg.name} has no catalog entry"
        patterns = list(catalog._M4_PREFIX) if cfg.family == "m4" else [cfg.seasonal_pattern]
        for pattern in patterns:
            cfg.seasonal_pattern = pattern
            needed = set(required_files(cfg))
            assert needed <= {f.path for f in entry.files}, f"{yaml.name}: {needed - {f.path for f in entry.files}}"
    assert names == set(catalog.DATASETS)


def test_known_hashes_are_those_of_the_shipped_originals():
    for path in (ETTH1, JV / JV_FILES[0], JV / JV_FILES[1]):
        relative = path.relative_to(DATA_ROOT).as_posix()
        _, entry = catalog.file_entry(relative)
        assert entry.sha256 == sha256(path) and entry.size == path.stat().st_size


def test_drive_listing_finds_files_by_path_name_or_zip():
    entry = catalog.file_entry("ETT-small/ETTh1.csv")[1]
    ecl = catalog.file_entry("electricity/electricity.csv")[1]
    msl = catalog.file_entry("MSL/MSL_train.npy")[1]
    listing = [{"id": "a", "path": "dataset/ETT-small/ETTh1.csv"}, {"id": "b", "path": "other/ETTh1.csv"},
               {"id": "c", "path": "datasets/ECL/ECL.csv"}, {"id": "d", "path": "anomaly/MSL.zip"}]
    assert fetch.locate_in_drive(listing, entry)["id"] == "a"
    assert fetch.locate_in_drive(listing, ecl)["id"] == "c"  # SymTime's name for electricity.csv
    assert fetch.locate_in_drive(listing, msl)["id"] == "d"  # only a zip of the folder: import it
    assert fetch.locate_in_drive([{"id": "x", "path": "README.md"}], entry) is None


# --- a loopback HTTP server that serves real files ------------------------------------------------


class Mirror:
    """Serves ``files`` (path -> bytes) on 127.0.0.1 with Range support, and can misbehave."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[tuple[str, str]] = []  # (path, Range header)
        self.cut_first = set()  # paths whose first response stops half-way
        self.fail = {}  # path -> HTTP status to answer always
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.lstrip("/")
                mirror.requests.append((path, self.headers.get("Range", "")))
                if path in mirror.fail:
                    self.send_error(mirror.fail[path])
                    return
                if path not in mirror.files:
                    self.send_error(404)
                    return
                body = mirror.files[path]
                start = 0
                if self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"][6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if path in mirror.cut_first:
                    mirror.cut_first.discard(path)
                    self.wfile.write(body[start:start + len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def real_files() -> dict[str, bytes]:
    files = {"ETT-small/ETTh1.csv": ETTH1.read_bytes()}
    for name in JV_FILES:
        files[f"JapaneseVowels/{name}"] = (JV / name).read_bytes()
    return files


def download(capsys, root, mirror, *names, retries=0):
    return data_cli(capsys, "download", *names, "--root", root, "--mirror", mirror.url, "--source", "mirror",
                    "--retries", retries, "--quiet")


def test_download_places_verified_files_and_records_them(tmp_path, capsys):
    with Mirror(real_files()) as mirror:
        code, out, err = download(capsys, tmp_path, mirror, "ETTh1", "JapaneseVowels")
    assert code == 0, out + err
    assert sha256(tmp_path / "ETT-small" / "ETTh1.csv") == sha256(ETTH1)
    for name in JV_FILES:
        assert sha256(tmp_path / "JapaneseVowels" / name) == sha256(JV / name)
    record = read_manifest(tmp_path)["ETT-small/ETTh1.csv"]
    assert record["sha256"] == sha256(ETTH1) and record["origin"] == f"{mirror.url}/ETT-small/ETTh1.csv"
    assert not list((tmp_path / ".downloads").rglob("*.part"))
    code, out, _ = data_cli(capsys, "verify", "--root", tmp_path, "--json")
    states = {row["file"]: row["state"] for row in json.loads(out)["files"]}
    assert code == 0 and set(states.values()) == {"ok"} and len(states) == 3


def test_checksum_mismatch_leaves_nothing_behind(tmp_path, capsys):
    damaged = bytearray(ETTH1.read_bytes())
    damaged[1000] ^= 1  # one flipped bit: same size, same header
    with Mirror({"ETT-small/ETTh1.csv": bytes(damaged)}) as mirror:
        code, out, err = download(capsys, tmp_path, mirror, "ETTh1")
    assert code == 1
    assert "ETT-small/ETTh1.csv" in out and "sha256" in out and "nothing was written" in out
    assert not (tmp_path / "ETT-small" / "ETTh1.csv").exists()
    assert not [p for p in (tmp_path / ".downloads").rglob("*") if p.is_file()]
    assert "ETT-small/ETTh1.csv" not in read_manifest(tmp_path)


def test_server_error_is_retried_then_reported(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fetch.Transfer, "backoff", 0.05)
    with Mirror(real_files()) as mirror:
        mirror.fail["ETT-small/ETTh1.csv"] = 503
        code, out, err = download(capsys, tmp_path, mirror, "ETTh1", retries=2)
    assert code == 1
    assert "HTTP 503" in out and "try again later" in out
    assert len([r for r in mirror.requests if r[0] == "ETT-small/ETTh1.csv"]) == 3  # first try + 2 retries
    assert not (tmp_path / "ETT-small").exists()


def test_a_broken_transfer_resumes_with_a_range_request(tmp_path, capsys):
    size = ETTH1.stat().st_size
    with Mirror(real_files()) as mirror:
        mirror.cut_first.add("ETT-small/ETTh1.csv")
        code, out, err = download(capsys, tmp_path, mirror, "ETTh1", retries=2)
    assert code == 0, out + err
    assert mirror.requests[0] == ("ETT-small/ETTh1.csv", "")
    path, asked = mirror.requests[1]
    offset = int(asked.removeprefix("bytes=").rstrip("-"))
    assert path == "ETT-small/ETTh1.csv" and 0 < offset <= size // 2  # only the rest was asked for, not all again
    assert sha256(tmp_path / "ETT-small" / "ETTh1.csv") == sha256(ETTH1)


def test_an_interrupted_download_resumes_on_the_next_command(tmp_path, capsys):
    with Mirror(real_files()) as mirror:
        mirror.cut_first.add("ETT-small/ETTh1.csv")
        code, out, _ = download(capsys, tmp_path, mirror, "ETTh1", retries=0)
        assert code == 1 and "incomplete" in out.lower()
        assert not (tmp_path / "ETT-small" / "ETTh1.csv").exists()
        assert len(list((tmp_path / ".downloads").rglob("*.part"))) == 1  # the received half is kept
        code, out, _ = download(capsys, tmp_path, mirror, "ETTh1", retries=0)
    assert code == 0, out
    assert mirror.requests[-1][1].startswith("bytes=") and mirror.requests[-1][1] != "bytes=0-"
    assert sha256(tmp_path / "ETT-small" / "ETTh1.csv") == sha256(ETTH1)


def test_a_source_without_the_file_falls_through_to_the_next(tmp_path, capsys, monkeypatch):
    """The mirror lacks one file (404): it is named, and the other files are still placed."""
    files = real_files()
    del files["JapaneseVowels/JapaneseVowels_TEST.ts"]
    with Mirror(files) as mirror:
        code, out, _ = download(capsys, tmp_path, mirror, "JapaneseVowels")
    assert code == 1
    assert "JapaneseVowels/JapaneseVowels_TEST.ts" in out and "HTTP 404" in out
    assert (tmp_path / "JapaneseVowels" / "JapaneseVowels_TRAIN.ts").is_file()
    assert "import" in out  # what to do instead


# --- Google Drive: its failures, raised as gdown's own exceptions at the network edge -----------


def test_drive_rate_limit_becomes_advice(tmp_path, capsys, monkeypatch):
    import gdown
    from gdown.exceptions import FileURLRetrievalError

    def listing(**kwargs):
        return [DriveFile(id="abc", path="ETT-small/ETTh2.csv", local_path="x")]

    def refuse(**kwargs):
        raise FileURLRetrievalError("Too many users have viewed or downloaded this file recently. Please try "
                                    "accessing the file again later.")

    monkeypatch.setattr(gdown, "download_folder", listing)
    monkeypatch.setattr(gdown, "download", refuse)
    code, out, err = data_cli(capsys, "download", "ETTh2", "--root", tmp_path, "--source", "tslib-drive")
    assert code == 1
    assert "Too many users" in out and "--cookies" in out and "symtime_repro.data import" in out
    assert "drive.google.com/drive/folders/13Cg1KYOlzM5C7K8gK8NfC-F3EYxkM3D2" in out
    assert "Traceback" not in out + err
    assert not (tmp_path / "ETT-small").exists()


def test_drive_listing_failure_and_offline_are_explained(tmp_path, capsys, monkeypatch):
    import gdown
    import requests
    from gdown.exceptions import FileURLRetrievalError

    def no_link(**kwargs):
        raise FileURLRetrievalError("Cannot retrieve the public link of the file. You may need to change the "
                                    "permission to 'Anyone with the link', or have had many accesses.")

    def offline(**kwargs):
        raise requests.ConnectionError("Failed to establish a new connection")

    monkeypatch.setattr(gdown, "download_folder", no_link)
    monkeypatch.setattr(gdown, "download", offline)
    code, out, _ = data_cli(capsys, "download", "ETTh2", "--root", tmp_path, "--source", "tslib-drive",
                            "--source", "hf")
    assert code == 1
    assert "Google Drive refused" in out and "cannot reach" in out and "HTTPS_PROXY" in out


def test_drive_zip_is_downloaded_and_imported(tmp_path, capsys, monkeypatch):
    """A Drive folder that holds only JapaneseVowels.zip: the zip is fetched and its files placed."""
    import gdown

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for name in JV_FILES:
            z.write(JV / name, f"JapaneseVowels/{name}")
    monkeypatch.setattr(gdown, "download_folder",
                        lambda **kw: [DriveFile(id="z", path="JapaneseVowels.zip", local_path="")])

    def serve(url, output, **kwargs):
        assert url.endswith("id=z")
        Path(output).write_bytes(archive.getvalue())
        return output

    monkeypatch.setattr(gdown, "download", serve)
    code, out, _ = data_cli(capsys, "download", "JapaneseVowels", "--root", tmp_path, "--source", "tslib-drive")
    assert code == 0, out
    for name in JV_FILES:
        assert sha256(tmp_path / "JapaneseVowels" / name) == sha256(JV / name)


# --- import --------------------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (sha256(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def messy_source(tmp_path: Path) -> Path:
    """SymTime names, a flat folder, a zip inside a zip with macOS junk, a renamed copy, decoys."""
    src = tmp_path / "downloads"
    (src / "datasets" / "ETT").mkdir(parents=True)
    shutil.copy(ETTH1, src / "datasets" / "ETT" / "ETTh1.csv")  # SymTime's folder name
    shutil.copy(ETTH1, src / "ETTh1 (copy).csv")  # renamed: found by content
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.write(JV / JV_FILES[0], f"dataset/JapaneseVowels/{JV_FILES[0]}")
        z.writestr(f"__MACOSX/dataset/JapaneseVowels/._{JV_FILES[0]}", b"\x00\x05\x16\x07")
        z.writestr("dataset/.DS_Store", b"junk")
    with zipfile.ZipFile(src / "all_datasets.zip", "w") as z:
        z.writestr("inner.zip", inner.getvalue())
    (src / "flat").mkdir()
    shutil.copy(JV / JV_FILES[1], src / "flat" / JV_FILES[1])
    (src / "flat" / "training.npz").write_bytes(b"PK")  # TSLib's M4 cache: not needed
    shutil.copy(ETTH1, src / "flat" / "ECL.csv")  # SymTime's ECL name, but the content is ETTh1
    (src / "flat" / "ETTh2.csv").write_bytes(ETTH1.read_bytes()[:5000])  # truncated, and not ETTh2 anyway
    return src


def test_import_of_messy_layouts_then_a_real_run(tmp_path, capsys):
    src = messy_source(tmp_path)
    before = snapshot(src)
    root = tmp_path / "root"
    code, out, err = data_cli(capsys, "import", src, "--root", root)
    assert code == 0, out + err
    assert snapshot(src) == before  # originals untouched
    assert sha256(root / "ETT-small" / "ETTh1.csv") == sha256(ETTH1)
    for name in JV_FILES:
        assert sha256(root / "JapaneseVowels" / name) == sha256(JV / name)
    assert "all_datasets.zip:inner.zip:dataset/JapaneseVowels/JapaneseVowels_TRAIN.ts" in out
    assert "ignored  2 macOS/Windows metadata entries" in out
    assert "training.npz: TSLib's M4 cache" in out
    assert "ECL.csv: named like electricity/electricity.csv but its header has 8 columns, expected 322" in out
    assert "ETTh2.csv: named like ETT-small/ETTh2.csv but" in out or "ETTh2.csv: sha256 differs" in out
    assert "duplicate of" in out  # the second ETTh1 copy
    assert not (root / "electricity").exists() and not (root / "ETT-small" / "ETTh2.csv").exists()
    assert not (root / ".downloads").exists()
    assert read_manifest(root)["ETT-small/ETTh1.csv"]["sha256"] == sha256(ETTH1)

    # A second import finds everything in place.
    code, out, _ = data_cli(capsys, "import", src, "--root", root)
    assert "0 placed, 3 already present" in out

    run_dir = tmp_path / "run"
    result = run_cli([*TINY, f"data.root={root}", "trainer.epochs=1", "trainer.limit_train_batches=3"], run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_metrics(run_dir)["mse"] > 0


def test_import_never_replaces_a_different_file_unless_asked(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "ETT-small").mkdir(parents=True)
    mine = root / "ETT-small" / "ETTh1.csv"
    mine.write_text("date,OT\n2020-01-01,1\n")
    code, out, _ = data_cli(capsys, "import", ETTH1, "--root", root)
    assert "exists and differs; pass --overwrite" in out and mine.read_text().startswith("date,OT")
    code, out, _ = data_cli(capsys, "import", ETTH1, "--root", root, "--overwrite")
    assert sha256(mine) == sha256(ETTH1)


def test_import_builds_the_m4_cache_and_mismatches_need_consent(tmp_path, capsys):
    root = tmp_path / "root"
    code, out, _ = data_cli(capsys, "import", DATA_ROOT / "m4", "--root", root)
    assert "sha256 differs from the published m4/Hourly-train.csv" in out  # the shipped files are slices
    assert not (root / "m4").exists()
    code, out, _ = data_cli(capsys, "import", DATA_ROOT / "m4", "--root", root, "--allow-mismatch")
    assert code == 0 and "M4 Hourly: cache ready (24 series)" in out and "M4 Weekly: cache ready (24 series)" in out
    assert (root / "m4" / ".cache" / "Hourly.npz").is_file()
    code, out, _ = data_cli(capsys, "verify", "M4", "--root", root)
    assert code == 1 and "mismatch" in out  # accepted, but never reported as the published file


# --- list and verify -------------------------------------------------------------------------------


def test_list_and_verify_tell_present_missing_and_corrupt(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "ETT-small").mkdir(parents=True)
    shutil.copy(ETTH1, root / "ETT-small" / "ETTh1.csv")
    (root / "ETT-small" / "ETTh2.csv").write_bytes(ETTH1.read_bytes()[:100000])  # truncated download
    (root / "JapaneseVowels").mkdir()
    shutil.copy(JV / JV_FILES[0], root / "JapaneseVowels" / JV_FILES[0])  # TEST missing
    (root / "MSL").mkdir()
    (root / "MSL" / "MSL_train.npy").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    flipped = bytearray((JV / JV_FILES[0]).read_bytes())
    flipped[-10] ^= 1
    (root / "Handwriting").mkdir()

    code, out, _ = data_cli(capsys, "list", "--root", root, "--json")
    rows = {row["dataset"]: row for row in json.loads(out)["datasets"]}
    assert rows["ETTh1"]["status"] == "present" and rows["ETTh1"]["bytes"] == ETTH1.stat().st_size
    assert rows["ETTh2"]["status"] == "corrupt" and "shorter than the published file" in rows["ETTh2"]["notes"][0]
    assert rows["JapaneseVowels"]["status"] == "partial"
    assert rows["MSL"]["status"] == "corrupt" and "Git LFS pointer" in rows["MSL"]["notes"][0]
    assert rows["ECL"]["status"] == "missing" and rows["ECL"]["location"] == "electricity/electricity.csv"
    code, text, _ = data_cli(capsys, "list", "--root", root)
    assert code == 0 and "anomaly" in text and "ETTh2" in text and "corrupt" in text

    (root / "JapaneseVowels" / JV_FILES[0]).write_bytes(bytes(flipped))  # same size: only a hash can tell
    code, out, _ = data_cli(capsys, "list", "JapaneseVowels", "--root", root, "--json")
    assert json.loads(out)["datasets"][0]["files"][f"JapaneseVowels/{JV_FILES[0]}"]["state"] == "present"
    code, out, _ = data_cli(capsys, "verify", "--root", root, "--json")
    states = {row["file"]: row["state"] for row in json.loads(out)["files"]}
    assert code == 1
    assert states == {"ETT-small/ETTh1.csv": "ok", "ETT-small/ETTh2.csv": "mismatch",
                      f"JapaneseVowels/{JV_FILES[0]}": "mismatch", "MSL/MSL_train.npy": "corrupt"}


def test_the_shipped_data_verifies_with_its_slices_declared(capsys):
    code, out, _ = data_cli(capsys, "verify", "--root", DATA_ROOT, "--json")
    states = {row["file"]: row["state"] for row in json.loads(out)["files"]}
    assert code == 0
    assert states["ETT-small/ETTh1.csv"] == "ok" and states["m4/Hourly-train.csv"] == "slice"
    assert states["MSL/MSL_test.npy"] == "slice"


@pytest.mark.parametrize("args, expected", [
    (["download", "NoSuchSet"], "unknown dataset 'NoSuchSet'"),
    (["download"], "download needs dataset names, --task T or --all"),
    (["download", "--task", "forecasting"], "--task forecasting is not a task"),
    (["download", "ETTh1", "--source", "nowhere"], "--source nowhere is not a known source"),
    (["import", "/no/such/folder"], "import: /no/such/folder does not exist"),
])
def test_data_cli_usage_errors_are_one_line(args, expected, tmp_path, capsys):
    code, out, err = data_cli(capsys, *args, "--root", tmp_path)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in out + err


def test_a_run_on_a_missing_dataset_names_the_file_and_the_command(tmp_path):
    (tmp_path / "UWaveGestureLibrary").mkdir()
    shutil.copy(JV / JV_FILES[0], tmp_path / "UWaveGestureLibrary" / "UWaveGestureLibrary_TRAIN.ts")
    result = run_cli(["task=classification", "dataset=UWaveGestureLibrary", f"data.root={tmp_path}"], tmp_path / "run")
    assert_user_error(result, f"file not found: {tmp_path}/UWaveGestureLibrary/UWaveGestureLibrary_TEST.ts. "
                              f"Fetch it with: python -m symtime_repro.data download UWaveGestureLibrary "
                              f"--root {tmp_path}", tmp_path / "run")
    assert "device:" not in result.stderr  # stopped before any work


def test_the_data_docs_show_the_catalog_as_it_is():
    from symtime_repro.data.cli import catalog_table

    assert catalog_table() in (REPO / "docs" / "data.md").read_text(), "regenerate: python -m symtime_repro.data table"


def test_an_unreachable_source_is_asked_once_per_command(tmp_path, capsys, monkeypatch):
    import gdown
    import requests

    calls = []

    def offline(**kwargs):
        calls.append(kwargs["url"])
        raise requests.ConnectionError("Failed to establish a new connection")

    monkeypatch.setattr(gdown, "download", offline)
    code, out, _ = data_cli(capsys, "download", "JapaneseVowels", "ETTh1", "--root", tmp_path, "--source", "hf")
    assert code == 1 and len(calls) == 1  # 3 files, one attempt: the host was down
    assert "cannot reach huggingface.co" in out and out.count("its sources failed above") == 2


# The official SymTime README: "place the downloaded datasets under the folder ./datasets", with its
# scripts' folder names (ETT/ for the ETT files).
SYMTIME_FOLDERS = {"ETT-small": "ETT"}


@pytest.mark.skipif(bool(full_data_missing("m4")), reason=str(full_data_missing("m4")))
def test_the_full_data_in_symtime_layout_imports_and_verifies(tmp_path, capsys):
    """Every file of SYMTIME_FULL_DATA, laid out as SymTime's ./datasets/ (zips as published), is placed
    where the runner reads it and matches its published sha256."""
    datasets = tmp_path / "datasets"
    for path in FULL_DATA.rglob("*"):
        if path.is_file() and path.name != "SOURCES.md":
            relative = path.relative_to(FULL_DATA)
            target = datasets / SYMTIME_FOLDERS.get(relative.parts[0], relative.parts[0]) / Path(*relative.parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    root = tmp_path / "root"
    code, out, err = data_cli(capsys, "import", datasets, "--root", root)
    assert code == 0, out + err
    assert "  skipped  " not in out and "24 placed" in out
    code, out, _ = data_cli(capsys, "verify", "--root", root, "--json")
    states = {row["file"]: row["state"] for row in json.loads(out)["files"]}
    assert code == 0 and set(states.values()) == {"ok"}
    assert {"ETT-small/ETTm2.csv", "MSL/MSL_test.npy", "SMAP/SMAP_test_label.npy", "m4/submission-Naive2.csv",
            "Handwriting/Handwriting_TEST.ts", "illness/national_illness.csv"} <= set(states)
    assert len(states) == 24  # 18 files + the 6 arrays inside MSL.zip and SMAP.zip


def test_a_drive_listing_is_cached_per_root_and_refreshed_on_request(tmp_path, capsys, monkeypatch):
    import gdown

    listed = []

    def listing(**kwargs):
        listed.append(kwargs["id"])
        return [DriveFile(id="f1", path=f"JapaneseVowels/{JV_FILES[0]}", local_path="")]

    def serve(url, output, **kwargs):
        Path(output).write_bytes((JV / JV_FILES[0]).read_bytes())
        return output

    monkeypatch.setattr(gdown, "download_folder", listing)
    monkeypatch.setattr(gdown, "download", serve)
    args = ("download", "JapaneseVowels", "--root", tmp_path, "--source", "tslib-drive", "--force")
    data_cli(capsys, *args)
    data_cli(capsys, *args)
    assert len(listed) == 1  # the second command used <root>/.downloads/drive-<id>.json
    data_cli(capsys, *args, "--refresh")
    assert len(listed) == 2


# --- a command that did nothing says so --------------------------------------------------------------


@pytest.mark.parametrize("command", ["verify", "list"])
def test_a_data_root_that_does_not_exist_is_an_error(command, tmp_path, capsys):
    code, out, err = data_cli(capsys, command, "--root", tmp_path / "typo")
    assert code == 2 and out == ""
    assert err.count("error:") == 1 and f"data root {tmp_path / 'typo'} does not exist" in err


def test_verify_with_nothing_to_verify_is_an_error(tmp_path, capsys):
    code, out, err = data_cli(capsys, "verify", "--root", tmp_path)
    assert code == 2 and "nothing to verify: no file of any dataset is in" in err
    code, out, err = data_cli(capsys, "verify", "ECL", "--root", DATA_ROOT)  # a root that holds other sets
    assert code == 2 and "no file of ECL is in" in err


def test_an_import_that_found_no_dataset_file_fails_and_creates_no_root(tmp_path, capsys):
    root = tmp_path / "new-root"
    code, out, err = data_cli(capsys, "import", REPO / "README.md", "--root", root)
    assert code == 1
    assert "skipped" in out and "README.md: not a file of any dataset" in out
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "import: nothing placed from" in errors[0]
    assert not root.exists()


def test_list_points_at_a_zip_that_is_not_unpacked_and_import_unpacks_it(tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    with zipfile.ZipFile(root / "MSL.zip", "w") as archive:  # as a browser download of the folder leaves it
        for file in sorted((DATA_ROOT / "MSL").iterdir()):
            archive.write(file, f"MSL/{file.name}")
    code, out, _ = data_cli(capsys, "list", "MSL", "SMAP", "--root", root, "--json")
    rows = {row["dataset"]: row for row in json.loads(out)["datasets"]}
    assert rows["MSL"]["status"] == "missing"
    hint = f"{root / 'MSL.zip'} is there, not unpacked: python -m symtime_repro.data import {root / 'MSL.zip'}"
    assert any(hint in note for note in rows["MSL"]["notes"])
    assert not any("zip" in note for note in rows["SMAP"]["notes"])  # MSL.zip is not SMAP's
    code, out, _ = data_cli(capsys, "import", root / "MSL.zip", "--root", root, "--allow-mismatch")  # slices
    assert code == 0
    assert all((root / "MSL" / file.name).is_file() for file in (DATA_ROOT / "MSL").iterdir())
    code, out, _ = data_cli(capsys, "list", "MSL", "--root", root, "--json")
    row = json.loads(out)["datasets"][0]
    assert row["status"] != "missing" and not any("not unpacked" in note for note in row["notes"])


def test_the_data_commands_know_the_other_names_of_the_data_sets(capsys):
    # The names TSLib's folders and files use find the same entries as in the runner's "did you mean".
    code, out, _ = data_cli(capsys, "list", "Electricity", "national_illness", "exchange_rate", "--root", DATA_ROOT,
                            "--json")
    assert code == 0 and [row["dataset"] for row in json.loads(out)["datasets"]] == ["ECL", "ILI", "Exchange"]
