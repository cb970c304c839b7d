"""M4: metrics by hand, CSV -> cache -> load on the shipped slice, Naive2, the scorer CLI, and the
published Naive2 figures on the full Hourly and Weekly files."""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA_ROOT, FIXTURES, REPO
from symtime_repro.datasets import m4
from symtime_repro.errors import UserError
from symtime_repro.metrics import m4 as scorer

SLICE = DATA_ROOT / "m4"
SLICE_FILES = ["Hourly-train.csv", "Hourly-test.csv", "Weekly-train.csv", "Weekly-test.csv", "submission-Naive2.csv"]


@pytest.fixture
def root(tmp_path) -> Path:
    """A private copy of the shipped slice (so the tests can edit files and watch the cache)."""
    (tmp_path / "m4").mkdir()
    for name in SLICE_FILES:
        shutil.copy2(SLICE / name, tmp_path / "m4" / name)
    return tmp_path


def raw_rows(path: Path) -> list[list[str]]:
    """The data rows of a raw M4 CSV, read independently of the loader: [id, values...] without padding."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    return [[cell for cell in row if cell != ""] for row in rows]


# --------------------------------------------------------------------------------------------------
# Metrics, by hand


def test_smape_by_hand():
    # |10 - 12| * 200 / (12 + 10) = 18.1818...; the 0/0 term counts 0 (TSLib); mean of the two = 9.0909...
    assert scorer.smape(np.array([[10.0, 0.0]]), np.array([[12.0, 0.0]])) == pytest.approx(200 / 22)
    # 200 * 1 / 3 = 66.666..., then an exact forecast (0): mean 33.333...
    assert scorer.smape(np.array([1.0, 2.0]), np.array([2.0, 2.0])) == pytest.approx(100 / 3)
    # symmetric in forecast and actual
    assert scorer.smape(np.array([2.0, 2.0]), np.array([1.0, 2.0])) == pytest.approx(100 / 3)


def test_mase_by_hand():
    insample = [np.array([0.0, 1.0, 4.0, 9.0]),        # lag-2 differences 4, 8 -> scale 6
                np.array([1.0, 5.0, 2.0, 6.0, 3.0])]   # lag-2 differences 1, 1, 1 -> scale 1
    forecast = np.array([[10.0, 12.0], [4.0, 4.0]])
    actual = np.array([[13.0, 9.0], [6.0, 4.0]])       # mean abs errors 3 and 1
    # series MASE 3/6 = 0.5 and 1/1 = 1.0; the pattern's MASE is their mean, 0.75
    assert scorer.mase(forecast, actual, insample, frequency=2) == pytest.approx(0.75)
    # lag 1: scales mean(1, 3, 5) = 3 and mean(4, 3, 4, 3) = 3.5 -> (3/3 + 1/3.5) / 2
    assert scorer.mase(forecast, actual, insample, frequency=1) == pytest.approx((1 + 1 / 3.5) / 2)


def test_aggregate_follows_tslib_weighting():
    def row(smape, mase, n, naive_smape, naive_mase):
        return {"smape": smape, "mase": mase, "series": n, "naive2_smape": naive_smape, "naive2_mase": naive_mase,
                "owa": scorer.owa(smape, mase, naive_smape, naive_mase)}

    per = {"Weekly": row(8.0, 2.0, 1, 10.0, 4.0), "Daily": row(3.0, 3.0, 3, 3.0, 3.0),
           "Hourly": row(10.0, 1.0, 4, 20.0, 2.0)}
    out = scorer.aggregate(per)
    # weights 1, 3, 4 over 8 series: sMAPE (8 + 9 + 40) / 8, Naive2 (10 + 9 + 80) / 8, and so on;
    # OWA from the weighted means, not the mean of the three OWAs
    others = out["Others"]
    assert others["series"] == 8
    assert others["smape"] == pytest.approx(57 / 8) and others["naive2_smape"] == pytest.approx(99 / 8)
    assert others["mase"] == pytest.approx(15 / 8) and others["naive2_mase"] == pytest.approx(21 / 8)
    assert others["owa"] == pytest.approx((57 / 99 + 15 / 21) / 2)
    assert "Average" not in out  # needs all six patterns
    assert "Others" not in scorer.aggregate({"Hourly": per["Hourly"]})  # a subset gets no group rows

    full = dict(per, Yearly=row(12.0, 3.0, 2, 16.0, 3.0), Quarterly=row(9.0, 1.0, 0, 9.0, 1.0),
                Monthly=row(11.0, 1.0, 2, 11.0, 1.0))
    average = scorer.aggregate(full)["Average"]
    assert average["series"] == 12
    assert average["smape"] == pytest.approx((24 + 0 + 22 + 57) / 12)
    assert average["owa"] == pytest.approx((103 / (32 + 22 + 99) + (6 + 2 + 15) / (6 + 2 + 21)) / 2)


# --------------------------------------------------------------------------------------------------
# CSV -> cache -> load


def test_load_round_trip_matches_the_csv(root):
    for pattern, prefix, horizon in (("Hourly", "H", 48), ("Weekly", "W", 13)):
        split = m4.load(root, pattern)
        assert split.pattern is m4.PATTERNS[pattern] and split.pattern.horizon == horizon
        assert split.ids == [f"{prefix}{i}" for i in range(1, 25)]
        train_rows = raw_rows(root / "m4" / f"{pattern}-train.csv")
        test_rows = raw_rows(root / "m4" / f"{pattern}-test.csv")
        assert [len(h) for h in split.train] == [len(r) - 1 for r in train_rows]
        for history, raw in zip(split.train, train_rows):
            assert history.dtype == np.float64
            np.testing.assert_array_equal(history, np.array(raw[1:], dtype=np.float64))
        assert split.test.shape == (24, horizon) and split.test.dtype == np.float64
        np.testing.assert_array_equal(split.test, np.array([r[1:] for r in test_rows], dtype=np.float64))
    assert [len(h) for h in m4.load(root, "Hourly").train] == [700] * 24
    assert (root / "m4" / ".cache" / "Hourly.npz").is_file()


def test_cache_is_reused_and_rebuilt_when_a_csv_changes(root, monkeypatch):
    builds = []
    real_build = m4._build_split_arrays
    monkeypatch.setattr(m4, "_build_split_arrays", lambda *a: builds.append(a[0].name) or real_build(*a))
    cache = root / "m4" / ".cache" / "Hourly.npz"

    first = m4.load(root, "Hourly")
    assert builds == ["Hourly"] and cache.is_file()
    stamp = cache.stat().st_mtime_ns

    second = m4.load(root, "Hourly")  # same CSVs: served from the cache, nothing parsed or written
    assert builds == ["Hourly"] and cache.stat().st_mtime_ns == stamp
    assert second.ids == first.ids
    np.testing.assert_array_equal(second.test, first.test)

    train_csv = root / "m4" / "Hourly-train.csv"
    stat = train_csv.stat()
    os.utime(train_csv, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # `touch`: rebuilt
    m4.load(root, "Hourly")
    assert builds == ["Hourly", "Hourly"]

    lines = train_csv.read_text().split("\n")
    cells = lines[1].split(",")
    assert cells[:2] == ['"H1"', '"605"']
    cells[1] = '"606"'  # same size, mtime put back: only the content hash can notice
    lines[1] = ",".join(cells)
    stat = train_csv.stat()
    train_csv.write_text("\n".join(lines))
    os.utime(train_csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert train_csv.stat().st_size == stat.st_size
    changed = m4.load(root, "Hourly")
    assert builds == ["Hourly"] * 3
    assert changed.train[0][0] == 606 and changed.train[1][0] == first.train[1][0]
    assert m4.load(root, "Hourly").train[0][0] == 606 and builds == ["Hourly"] * 3


def test_read_only_data_folder_is_parsed_without_a_cache(root, monkeypatch):
    folder = root / "m4"
    folder.chmod(0o555)  # marked read-only: left alone even by root
    try:
        split = m4.load(root, "Weekly")
        assert len(split.ids) == 24 and m4.naive2(root, "Weekly", split.ids).shape == (24, 13)
        assert not (folder / ".cache").exists()
    finally:
        folder.chmod(0o755)

    def refuse(path, data):  # a failing write (read-only mount, full disk) is no error either
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(m4, "atomic_write_bytes", refuse)
    assert len(m4.load(root, "Hourly").ids) == 24
    assert not (folder / ".cache" / "Hourly.npz").exists()


def test_naive2_rows_follow_the_requested_ids(root):
    raw = {row[0]: row[1:] for row in csv.reader(open(root / "m4" / "submission-Naive2.csv", newline=""))}
    ids = ["H3", "H1", "H24", "H3"]
    hourly = m4.naive2(root, "Hourly", ids)
    assert hourly.shape == (4, 48)
    np.testing.assert_array_equal(hourly, np.array([raw[i] for i in ids], dtype=np.float64))
    weekly = m4.naive2(root, "Weekly", ["W2", "W1"])
    assert weekly.shape == (2, 13)  # cut to the Weekly horizon; the NA padding beyond it is dropped
    np.testing.assert_array_equal(weekly, np.array([raw["W2"][:13], raw["W1"][:13]], dtype=np.float64))
    assert raw["W1"][13:] == ["NA"] * 35
    with pytest.raises(UserError, match=r"submission-Naive2\.csv has no row for id 'H25'"):
        m4.naive2(root, "Hourly", ["H1", "H25"])


# --------------------------------------------------------------------------------------------------
# Submission files and the scorer


def test_submission_round_trip(tmp_path):
    path = tmp_path / "forecast.csv"
    forecasts = np.full((2, 48), np.nan)
    forecasts[0, :13] = np.arange(13) + 0.1
    forecasts[1] = np.linspace(1, 2, 48)
    scorer.write_submission(path, ["W1", "H1"], forecasts)
    lines = path.read_text().splitlines()
    assert lines[0] == "id," + ",".join(f"F{i}" for i in range(1, 49))
    assert lines[1].startswith("W1,0.1,1.1,") and lines[1].endswith(",NA") and lines[1].count("NA") == 35
    back = scorer.read_submission(path)
    assert list(back) == ["W1", "H1"]
    np.testing.assert_array_equal(back["W1"], forecasts[0, :13])
    np.testing.assert_array_equal(back["H1"], forecasts[1])
    # the Naive2 file itself (CRLF, NA padding) reads the same way
    naive = scorer.read_submission(SLICE / "submission-Naive2.csv")
    assert len(naive) == 48 and len(naive["W5"]) == 13 and len(naive["H5"]) == 48


def test_score_cli_on_the_shipped_slice(tmp_path):
    out = tmp_path / "out.json"
    result = subprocess.run([sys.executable, "-m", "symtime_repro.metrics.m4", "score", "data/m4/submission-Naive2.csv",
                             "--root", "data", "--json", str(out)], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    scores = json.loads(out.read_text())
    assert list(scores) == ["Weekly", "Hourly"]  # no Others/Average: Daily and the rest are absent
    for name in scores:
        assert {"smape", "mase", "owa", "series"} <= scores[name].keys()
        assert scores[name]["owa"] == 1.0 and scores[name]["series"] == 24
        assert scores[name]["smape"] > 0 and scores[name]["mase"] > 0
    assert "24 of 24" in result.stdout and "Hourly" in result.stdout


def test_score_reports_a_subset_and_bad_files_in_one_line(root, tmp_path, capsys):
    subset = tmp_path / "subset.csv"
    text = (root / "m4" / "submission-Naive2.csv").read_text().splitlines()
    subset.write_text("\n".join([text[0]] + [line for line in text if line.startswith(("H1,", "H2,", "H3,"))]))
    assert scorer.main(["score", str(subset), "--root", str(root)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[2].split()[:4] == ["Hourly", "3", "of", "24"]  # series scored, of the pattern's total
    assert "Weekly" not in "".join(table[:3])

    bad = tmp_path / "bad.csv"
    bad.write_text(text[0] + "\nX1," + ",".join(["1"] * 48) + "\n")
    assert scorer.main(["score", str(bad), "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'X1' is not an M4 series id" in err


@pytest.fixture(scope="module")
def full_m4_root(tmp_path_factory) -> Path:
    """The whole Hourly and Weekly files (shipped gzipped in tests/fixtures/m4_full), unpacked."""
    root = tmp_path_factory.mktemp("m4_full")
    (root / "m4").mkdir()
    for packed in sorted((FIXTURES / "m4_full").glob("*.csv.gz")):
        (root / "m4" / packed.stem).write_bytes(gzip.decompress(packed.read_bytes()))
    return root


@pytest.mark.parametrize("pattern, published_smape, published_mase", [("Hourly", 18.383, 2.395),
                                                                       ("Weekly", 9.161, 2.777)])
def test_published_naive2_figures_on_the_full_files(full_m4_root, pattern, published_smape, published_mase):
    split = m4.load(full_m4_root, pattern)
    assert len(split.ids) == {"Hourly": 414, "Weekly": 359}[pattern]
    naive = m4.naive2(full_m4_root, pattern, split.ids)
    scores = scorer.score_pattern(naive, split, naive)
    assert round(scores["smape"], 3) == published_smape
    assert round(scores["mase"], 3) == published_mase
    assert scores["owa"] == 1.0


# --------------------------------------------------------------------------------------------------
# Bad input: one line naming the file, the row and what to do


def test_non_numeric_train_cell_names_file_line_and_id(root):
    train_csv = root / "m4" / "Hourly-train.csv"
    lines = train_csv.read_text().split("\n")
    cells = lines[2].split(",")
    assert cells[0] == '"H2"'
    cells[4] = '"125x"'  # V5 of H2, on line 3
    lines[2] = ",".join(cells)
    train_csv.write_text("\n".join(lines))
    with pytest.raises(UserError) as info:
        m4.load(root, "Hourly")
    message = str(info.value)
    assert "Hourly-train.csv line 3, id H2, column V5 holds '125x'" in message and "\n" not in message


def test_missing_files_say_where_they_come_from(root):
    (root / "m4" / "submission-Naive2.csv").unlink()
    with pytest.raises(UserError, match=r"submission-Naive2\.csv not found.*OWA.*Mcompetitions/M4-methods.*"
                                        r"submission-Naive2\.rar"):
        m4.naive2(root, "Hourly", ["H1"])
    (root / "m4" / "Weekly-test.csv").unlink()
    with pytest.raises(UserError, match=r"Weekly-test\.csv not found.*Mcompetitions/M4-methods.*Dataset/Test/"):
        m4.load(root, "Weekly")


def test_unknown_pattern_lists_the_six(root):
    with pytest.raises(UserError, match="Yearly, Quarterly, Monthly, Weekly, Daily, Hourly"):
        m4.get_pattern("hourly")
    with pytest.raises(UserError, match="unknown M4 seasonal pattern 'Minutely'"):
        m4.load(root, "Minutely")


def test_test_rows_must_match_the_horizon_and_the_train_ids(root):
    test_csv = root / "m4" / "Weekly-test.csv"
    original = test_csv.read_text()
    lines = original.split("\n")
    lines[5] = lines[5].rsplit(",", 1)[0]  # W5 loses its 13th value
    test_csv.write_text("\n".join(lines))
    with pytest.raises(UserError, match=r"Weekly-test\.csv line 6, id W5: 12 values, but the Weekly horizon is 13"):
        m4.load(root, "Weekly")
    lines = original.split("\n")
    del lines[7]  # W7 only in train
    test_csv.write_text("\n".join(lines))
    with pytest.raises(UserError, match=r"series W7 is in .*Weekly-train\.csv but not in .*Weekly-test\.csv"):
        m4.load(root, "Weekly")


def test_a_train_row_shorter_than_its_horizon_is_named(root):
    """A truncated row (every real M4 series is longer than its horizon) would be zero-padded and
    trained on silently; it is named instead. The shortest real Weekly row of the slice still loads."""
    train_csv = root / "m4" / "Weekly-train.csv"
    lines = train_csv.read_text().split("\n")
    shortest = min(len(row) - 1 for row in raw_rows(train_csv))
    assert shortest >= 13 and m4.load(root, "Weekly")  # the real data passes the check
    cells = lines[3].split(",")
    assert cells[0] == '"W3"'
    lines[3] = ",".join(cells[:13] + [""] * (len(cells) - 13))  # W3 keeps 12 values, padded as the file pads
    train_csv.write_text("\n".join(lines))
    with pytest.raises(UserError, match=r"Weekly-train\.csv line 4, id W3: 12 value\(s\), but a Weekly series needs "
                                        r"at least 13 \(its horizon is 13.*looks truncated"):
        m4.load(root, "Weekly")
