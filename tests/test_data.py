"""The CSV family on the real ETTh1: official borders, train-only scaling, windows, bad files."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import DATA_ROOT
from symtime_repro.datasets import csv_series
from symtime_repro.datasets.windows import SlidingWindows, make_loader
from symtime_repro.errors import UserError

ETTH1 = DATA_ROOT / "ETT-small" / "ETTh1.csv"


def _dataset(**overrides):
    cfg = dict(name="ETTh1", family="csv", path="ETT-small/ETTh1.csv", split="ett_hour", features="M",
               target="OT", freq="h", source="")
    cfg.update(overrides)
    return SimpleNamespace(**cfg)


def test_ett_hour_borders_and_train_only_scaling():
    splits = csv_series.load_splits(_dataset(), seq_len=96, root=DATA_ROOT)
    assert splits.train.shape == (8640, 7)
    assert splits.val.shape == (2880 + 96, 7) and splits.test.shape == (2880 + 96, 7)
    assert splits.columns == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    raw = pd.read_csv(ETTH1).iloc[:, 1:].to_numpy()
    # Scaler statistics come from rows [0, 8640) only.
    np.testing.assert_allclose(splits.scaler.mean_, raw[:8640].mean(0))
    np.testing.assert_allclose(splits.train.mean(0), 0, atol=1e-5)
    assert np.abs(splits.test.mean(0)).max() > 0.1  # later data is not centred by its own statistics
    # The test split starts seq_len rows before row 11520, and values are just scaled.
    expected_first = (raw[11520 - 96] - raw[:8640].mean(0)) / raw[:8640].std(0)
    np.testing.assert_allclose(splits.test[0], expected_first, rtol=1e-5, atol=1e-6)
    assert splits.train.dtype == np.float32


def test_ratio_split_borders_follow_tslib():
    borders = csv_series.split_borders("ratio", 1000, 96)
    assert borders == ((0, 700), (700 - 96, 800), (800 - 96, 1000))
    assert csv_series.split_borders("ett_minute", 69680, 96)[2] == (4 * 11520 - 96, 4 * 14400)


def test_features_s_and_ms_choose_and_order_columns():
    single = csv_series.load_splits(_dataset(features="S", target="HULL"), 96, DATA_ROOT)
    assert single.columns == ["HULL"] and single.n_channels == 1
    multi = csv_series.load_splits(_dataset(features="MS", target="HULL"), 96, DATA_ROOT)
    assert multi.columns[-1] == "HULL" and len(multi.columns) == 7
    np.testing.assert_allclose(multi.train[:, -1], single.train[:, 0])


def test_sliding_windows_are_the_official_slices():
    splits = csv_series.load_splits(_dataset(), 96, DATA_ROOT)
    windows = SlidingWindows(splits.test, 96, 24)
    assert len(windows) == len(splits.test) - 96 - 24 + 1
    batch = windows[[0, 5, len(windows) - 1]]
    assert batch["x"].shape == (3, 96, 7) and batch["y"].shape == (3, 24, 7)
    np.testing.assert_array_equal(batch["x"][1].numpy(), splits.test[5:101])
    np.testing.assert_array_equal(batch["y"][2].numpy(), splits.test[-24:])
    single = windows[5]
    assert torch.equal(single["x"], batch["x"][1])


def test_loader_yields_whole_batches_and_shuffles_reproducibly():
    windows = SlidingWindows(np.arange(200, dtype=np.float32).reshape(100, 2), 10, 5)
    sequential = [b["x"][:, 0, 0].tolist() for b in make_loader(windows, 32, shuffle=False, seed=0)]
    assert [len(b) for b in sequential] == [32, 32, 22]
    assert sequential[0][:3] == [0.0, 2.0, 4.0]
    first = [b["x"][:, 0, 0].tolist() for b in make_loader(windows, 32, shuffle=True, seed=7)]
    second = [b["x"][:, 0, 0].tolist() for b in make_loader(windows, 32, shuffle=True, seed=7)]
    assert first == second and first != sequential


def _write(tmp_path, text):
    (tmp_path / "ETT-small").mkdir(exist_ok=True)
    (tmp_path / "ETT-small" / "ETTh1.csv").write_text(text)
    return tmp_path


def test_truncated_file_is_reported(tmp_path):
    lines = ETTH1.read_text().splitlines()[:5000]
    root = _write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(UserError, match="has 4999 rows but the ett_hour split needs 14400"):
        csv_series.load_splits(_dataset(), 96, root)


def test_a_file_cut_short_is_refused_where_the_row_count_sets_the_borders(tmp_path, caplog):
    """Ratio splits take 70/10/20 % of the rows: a truncated copy would move every border and score
    another test set. ETTh1 read with the ratio split stands in for ECL, Weather, Exchange, ILI."""
    lines = ETTH1.read_text().splitlines()
    root = _write(tmp_path, "\n".join(lines[:15001]) + "\n")  # the header and 15000 of 17420 rows
    with pytest.raises(UserError, match=r"ETTh1.csv has 15000 rows but the published file has 17420: it looks cut "
                                        r"short.*python -m symtime_repro.data download ETTh1"):
        csv_series.load_splits(_dataset(split="ratio"), 96, root)
    # The whole file passes; a longer one (another release) runs with a warning.
    assert len(csv_series.load_splits(_dataset(split="ratio"), 96, DATA_ROOT).train) == int(17420 * 0.7)
    root = _write(tmp_path, "\n".join(lines + [lines[-1]]) + "\n")
    with caplog.at_level("WARNING"):
        csv_series.load_splits(_dataset(split="ratio"), 96, root)
    assert "has 17421 rows, the published file 17420" in caplog.text


def test_missing_date_column_is_reported(tmp_path):
    root = _write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(UserError, match="must start with a 'date' column"):
        csv_series.load_splits(_dataset(), 96, root)


def test_empty_cell_is_reported_with_its_line(tmp_path):
    lines = ETTH1.read_text().splitlines()
    cells = lines[7].split(",")
    cells[-1] = ""
    lines[7] = ",".join(cells)
    root = _write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"line 8, column 'OT' is empty"):
        csv_series.load_splits(_dataset(), 96, root)


def test_missing_file_names_path_and_source(tmp_path):
    with pytest.raises(UserError) as err:
        csv_series.load_splits(_dataset(source="https://example.org/ETT"), 96, tmp_path)
    assert str(tmp_path / "ETT-small" / "ETTh1.csv") in str(err.value)
    assert "https://example.org/ETT" in str(err.value)


def _edited(line_edits: dict) -> str:
    """ETTh1 as shipped, with some lines (0-based, header = 0) replaced."""
    lines = ETTH1.read_text().splitlines()
    for index, edit in line_edits.items():
        lines[index] = edit(lines[index], lines)
    return "\n".join(lines) + "\n"


def _with_date(date: str):
    return lambda line, lines: ",".join([date, *line.split(",")[1:]])


def test_a_row_out_of_time_order_is_named(tmp_path):
    # Rows 300 and 301 swapped, as a careless sort or merge leaves them.
    lines = ETTH1.read_text().splitlines()
    lines[300], lines[301] = lines[301], lines[300]
    root = _write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"ETTh1.csv line 302, column 'date': '2016-07-13 11:00:00' comes before "
                                        r"line 301's '2016-07-13 12:00:00'.*sort the file by date"):
        csv_series.load_splits(_dataset(), 96, root)


def test_a_date_that_does_not_parse_is_named(tmp_path):
    root = _write(tmp_path, _edited({1000: _with_date("2016-13-45 99:00:00")}))
    with pytest.raises(UserError, match=r"line 1001, column 'date' holds '2016-13-45 99:00:00', not a date like "
                                        r"'2016-07-01 00:00:00'"):
        csv_series.load_splits(_dataset(), 96, root)


def test_a_repeated_date_is_kept_and_logged_as_the_official_loader_keeps_it(tmp_path, caplog):
    # weather.csv as published repeats one timestamp; the official split counts that row.
    original = ETTH1.read_text().splitlines()
    root = _write(tmp_path, _edited({2000: lambda line, lines: ",".join([lines[1999].split(",")[0],
                                                                         *line.split(",")[1:]])}))
    with caplog.at_level("WARNING"):
        series = csv_series.load_splits(_dataset(), 96, root)
    assert "line 2001 repeats the date '2016-09-22 06:00:00' of line 2000 (1 repeated date(s) in all)" in caplog.text
    assert len(series.train) == 8640  # no row dropped: the borders stay the official ones
    kept = series.scaler.inverse_transform(series.train[1999:2000])[0]  # the row with the repeated date
    assert np.allclose(kept, [float(v) for v in original[2000].split(",")[1:]], rtol=1e-5)
