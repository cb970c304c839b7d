"""The UEA family on the real JapaneseVowels (shipped) and Handwriting (shared data, if present):
the .ts reader, the official preprocessing, padding and masks, validation and normalisation options,
and one-line errors for broken files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import DATA_ROOT, FULL_DATA, full_data_missing, REPO
from symtime_repro.datasets import uea
from symtime_repro.datasets.windows import make_loader
from symtime_repro.errors import UserError

JV_TRAIN = DATA_ROOT / "JapaneseVowels" / "JapaneseVowels_TRAIN.ts"
JV_TEST = DATA_ROOT / "JapaneseVowels" / "JapaneseVowels_TEST.ts"


def _dataset(name="JapaneseVowels", **overrides):
    cfg = dict(name=name, family="uea", path=name, split="official", features="M", target="label", freq="none",
               source="", validation="test", normalize="per_split")
    cfg.update(overrides)
    return SimpleNamespace(**cfg)


@pytest.fixture(scope="module")
def jv():
    return uea.load(_dataset(), DATA_ROOT, seed=0)


def _real_rows(case_set) -> np.ndarray:
    """Every real (unpadded) step of every case, [steps, dims]."""
    return np.concatenate([case_set.x[k, : int(n)].numpy() for k, n in enumerate(case_set.lengths)])


# ------------------------------------------------------------------------------------------------
# Real files


def test_read_ts_japanese_vowels_as_published():
    train, test = uea.read_ts(JV_TRAIN), uea.read_ts(JV_TEST)
    assert (len(train), len(test)) == (270, 370)
    assert train.dims == test.dims == 12 and train.equal_length is False
    assert train.class_labels == [str(i) for i in range(1, 10)]
    assert Counter(train.labels) == {str(i): 30 for i in range(1, 10)}  # 30 utterances per speaker
    assert set(test.labels) == set(train.class_labels)
    lengths = [len(c) for c in train.cases + test.cases]
    assert (min(lengths), max(lengths)) == (7, 29)
    assert max(len(c) for c in train.cases) == 26  # the longest case is in TEST
    assert all(c.shape[1] == 12 and c.dtype == np.float64 for c in train.cases)
    assert not np.isnan(np.concatenate(train.cases)).any()
    # First value of the first case, as written on the line after @data.
    assert train.cases[0][0, 0] == pytest.approx(1.860936) and train.lines[0] == 16


def test_load_japanese_vowels_shapes_classes_and_official_validation(jv):
    assert (len(jv.train), len(jv.val), len(jv.test)) == (270, 370, 370)
    assert jv.val is jv.test  # official: the TEST split is the validation split
    assert jv.seq_len == 29 and jv.enc_in == 12
    assert jv.class_names == [str(i) for i in range(1, 10)]
    assert jv.train.x.shape == (270, 29, 12) and jv.train.x.dtype == torch.float32
    assert jv.train.labels.dtype == torch.int64 and jv.train.lengths.dtype == torch.int64
    assert sorted(Counter(jv.train.labels.tolist()).values()) == [30] * 9
    raw = uea.read_ts(JV_TEST)
    assert jv.test.labels.tolist() == [int(label) - 1 for label in raw.labels]
    assert jv.test.lengths.tolist() == [len(c) for c in raw.cases]
    assert jv.info["cases"] == {"train": 270, "val": 370, "test": 370}


def test_padding_and_masks_follow_tslib_collate(jv):
    short = int(torch.argmin(jv.train.lengths))
    n = int(jv.train.lengths[short])
    assert n == 7
    item = jv.train[short]
    assert item["x"].shape == (29, 12) and item["padding_mask"].shape == (29,)
    assert torch.all(item["x"][n:] == 0) and torch.any(item["x"][:n] != 0)
    assert item["padding_mask"].dtype == torch.float32
    assert item["padding_mask"].tolist() == [1.0] * n + [0.0] * (29 - n)
    batch = jv.train[[short, 0, 5]]
    assert batch["x"].shape == (3, 29, 12) and batch["padding_mask"].shape == (3, 29)
    assert batch["label"].tolist() == [int(jv.train.labels[i]) for i in (short, 0, 5)]
    assert torch.equal(batch["padding_mask"].sum(1).long(), jv.train.lengths[[short, 0, 5]])
    assert torch.equal(batch["x"][0], item["x"])
    # Through the project's loader: whole batches of the right sizes.
    sizes = [len(b["label"]) for b in make_loader(jv.test, 128, shuffle=False, seed=0)]
    assert sizes == [128, 128, 114]
    # More padding when a longer input is wanted.
    longer = jv.train.padded_to(32)
    assert longer.x.shape == (270, 32, 12) and torch.equal(longer.x[:, :29], jv.train.x)
    assert longer[short]["padding_mask"].sum() == n


def test_per_split_standardisation_matches_official_normalizer(jv):
    # Official: pandas (df - df.mean()) / (df.std() + eps) over every real row of the split.
    for case_set, path in ((jv.train, JV_TRAIN), (jv.test, JV_TEST)):
        frame = pd.DataFrame(np.concatenate(uea.read_ts(path).cases))
        expected = ((frame - frame.mean()) / (frame.std() + np.finfo(float).eps)).to_numpy()
        np.testing.assert_allclose(_real_rows(case_set), expected, rtol=1e-5, atol=1e-5)
    rows = _real_rows(jv.train)
    np.testing.assert_allclose(rows.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(rows.std(0, ddof=1), 1, atol=1e-4)
    np.testing.assert_allclose(_real_rows(jv.test).mean(0), 0, atol=1e-5)  # TEST uses its own statistics


def test_train_normalisation_uses_train_statistics_everywhere(jv):
    clean = uea.load(_dataset(normalize="train"), DATA_ROOT, seed=0)
    assert torch.equal(clean.train.x, jv.train.x)  # the train split is the same either way
    train_raw = np.concatenate(uea.read_ts(JV_TRAIN).cases)
    test_raw = np.concatenate(uea.read_ts(JV_TEST).cases)
    expected = (test_raw - train_raw.mean(0)) / (train_raw.std(0, ddof=1) + np.finfo(float).eps)
    np.testing.assert_allclose(_real_rows(clean.test), expected, rtol=1e-5, atol=1e-5)
    assert np.abs(_real_rows(clean.test).mean(0)).max() > 0.02  # TEST is no longer centred on its own
    assert clean.info["normalize"] == "train"


def test_holdout_validation_is_stratified_disjoint_and_seeded(jv):
    first = uea.load(_dataset(validation="holdout"), DATA_ROOT, seed=3)
    again = uea.load(_dataset(validation="holdout"), DATA_ROOT, seed=3)
    other = uea.load(_dataset(validation="holdout"), DATA_ROOT, seed=4)
    train_ids, val_ids = set(first.train.source_index.tolist()), set(first.val.source_index.tolist())
    assert not train_ids & val_ids and train_ids | val_ids == set(range(270))
    assert (len(first.train), len(first.val), len(first.test)) == (216, 54, 370)
    assert Counter(first.val.labels.tolist()) == {c: 6 for c in range(9)}  # 20 % of 30 per class
    assert first.val is not first.test and first.seq_len == 29
    assert torch.equal(first.val.source_index, again.val.source_index)
    assert torch.equal(first.val.x, again.val.x)
    assert not torch.equal(first.val.source_index, other.val.source_index)
    # The held-out cases carry their own labels.
    raw_labels = uea.read_ts(JV_TRAIN).labels
    assert [int(raw_labels[i]) - 1 for i in first.val.source_index.tolist()] == first.val.labels.tolist()
    # per_split: the remaining train split is centred on its own statistics.
    np.testing.assert_allclose(_real_rows(first.train).mean(0), 0, atol=1e-5)


def test_holdout_keeps_one_case_of_every_class_in_train():
    labels = np.array([0] * 10 + [1] * 3 + [2])
    train_idx, val_idx = uea.holdout_indices(labels, seed=0)
    assert Counter(labels[val_idx].tolist()) == {0: 2, 1: 1}
    assert set(labels[train_idx].tolist()) == {0, 1, 2}


@pytest.mark.skipif(bool(full_data_missing("Handwriting")), reason=str(full_data_missing("Handwriting")))
def test_handwriting_from_the_full_data():
    splits = uea.load(_dataset("Handwriting"), FULL_DATA, seed=0)
    assert (len(splits.train), len(splits.test)) == (150, 850)
    assert splits.seq_len == 152 and splits.enc_in == 3
    assert len(splits.class_names) == 26
    # pandas' category order sorts the labels as strings: '1.0', '10.0', ..., '19.0', '2.0', ...
    assert splits.class_names[:3] == ["1.0", "10.0", "11.0"] and splits.class_names[-1] == "9.0"
    assert torch.all(splits.train.lengths == 152) and torch.all(splits.test[[0, 849]]["padding_mask"] == 1)


# ------------------------------------------------------------------------------------------------
# Hand-made files: missing values, subsampling, EthanolConcentration, errors

HEADER = "@problemName Tiny\n@timeStamps false\n@missing true\n@univariate false\n@dimensions 2\n" \
         "@equalLength false\n@classLabel true a b\n@data\n"


def _write(folder: Path, name: str, train: str, test: str | None = None) -> Path:
    (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / name / f"{name}_TRAIN.ts").write_text(train)
    (folder / name / f"{name}_TEST.ts").write_text(test if test is not None else train)
    return folder / name / f"{name}_TRAIN.ts"


def test_question_marks_are_interpolated_like_pandas(tmp_path, caplog):
    body = "1,?,3,?:?,?,4,6:a\n# a comment line between cases\n\n2,4,?,8,?:5,?,?,?,1:b\n"
    path = _write(tmp_path, "Tiny", HEADER + body)
    raw = uea.read_ts(path)
    assert np.isnan(raw.cases[0][1, 0]) and raw.lines == [9, 12]
    filled = [uea.interpolate_missing(case) for case in raw.cases]
    np.testing.assert_array_equal(filled[0], [[1, 4], [2, 4], [3, 4], [3, 6]])
    np.testing.assert_array_equal(filled[1], [[2, 5], [4, 4], [6, 3], [8, 2], [8, 1]])
    for case, done in zip(raw.cases, filled):  # official: interpolate(method='linear', limit_direction='both')
        expected = pd.DataFrame(case).interpolate(method="linear", limit_direction="both").to_numpy()
        np.testing.assert_array_equal(done, expected)
    with caplog.at_level("INFO", logger="symtime_repro.datasets.uea"):
        splits = uea.load(_dataset("Tiny"), tmp_path, seed=0)
    assert not torch.isnan(splits.train.x).any()
    assert splits.seq_len == 5 and splits.train.lengths.tolist() == [4, 5]
    # The official policy is applied and said: 4 + 5 values filled in the two cases of each file.
    assert "Tiny_TRAIN.ts has 9 missing value(s) in 2 case(s) (first: case 1); filled by linear interpolation" \
        in caplog.text


def test_all_missing_dimension_is_refused(tmp_path):
    _write(tmp_path, "Tiny", HEADER + "1,2,3:?,?,?:a\n")
    with pytest.raises(UserError, match=r"line 9, case 1: dimension 2 has no value at all"):
        uea.load(_dataset("Tiny"), tmp_path, seed=0)


def test_unequal_dimensions_trigger_the_official_subsample_rule(tmp_path):
    long_series = ",".join(str(v) for v in range(300))
    train = HEADER + f"{long_series}:{','.join(['1'] * 260)}:a\n1,2,3:4,5,6:b\n"
    test = HEADER + f"{long_series}:{long_series}:a\n1,2,3:4,5,6:b\n"
    path = _write(tmp_path, "Tiny", train, test)
    raw = uea.read_ts(path)
    assert raw.dim_lengths.tolist() == [[300, 260], [3, 3]]
    cases, fired = uea.subsample_ragged(raw.cases, raw.dim_lengths)
    assert fired and [len(c) for c in cases] == [150, 3]
    np.testing.assert_array_equal(cases[0][:3, 0], [0, 2, 4])
    assert np.isnan(cases[0][130:, 1]).all() and not np.isnan(cases[0][:130, 1]).any()  # 260 -> 130, then NaN
    splits = uea.load(_dataset("Tiny", normalize="train"), tmp_path, seed=0)
    # TRAIN is subsampled (its dims differ), TEST is not (each of its cases has equal dims).
    assert splits.info["subsampled"] == {"train": True, "test": False}
    assert splits.seq_len == 300 and splits.train.lengths.tolist() == [150, 3]
    assert not torch.isnan(splits.train.x).any()


def test_ethanol_concentration_gets_the_official_instance_norm(tmp_path):
    header = HEADER.replace("@dimensions 2", "@dimensions 3").replace("@missing true", "@missing false")
    rng = np.random.default_rng(0)
    lines = []
    for k in range(4):
        values = rng.normal(size=(3, 6 + k)) * 100 + 1000
        lines.append(":".join(",".join(f"{v:.4f}" for v in row) for row in values) + (":a" if k % 2 else ":b"))
    text = header + "\n".join(lines) + "\n"
    _write(tmp_path, "EthanolConcentration", text)
    _write(tmp_path, "NotEthanol", text)
    ethanol = uea.load(_dataset("EthanolConcentration"), tmp_path, seed=0)
    plain = uea.load(_dataset("NotEthanol"), tmp_path, seed=0)
    assert ethanol.info["instance_norm"] and not plain.info["instance_norm"]
    for k in range(4):
        n = int(plain.train.lengths[k])
        case = torch.from_numpy(plain.train.x[k, :n].numpy().astype(np.float64))
        # The official formula, on a torch [time, dims] case.
        centred = case - case.mean(0, keepdim=True)
        expected = centred / torch.sqrt(torch.var(centred, dim=1, keepdim=True, unbiased=False) + 1e-5)
        torch.testing.assert_close(ethanol.train.x[k, :n], expected.float(), rtol=1e-4, atol=1e-4)
        assert torch.all(ethanol.train.x[k, n:] == 0)


def _error(tmp_path, text: str, **kwargs) -> str:
    path = _write(tmp_path, "Tiny", text)
    with pytest.raises(UserError) as err:
        uea.load(_dataset("Tiny", **kwargs), tmp_path, seed=0)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    return message


def test_broken_headers_are_reported_with_file_and_line(tmp_path):
    assert "line 3: unknown header tag '@bogus'" in _error(tmp_path, "@problemName Tiny\n# c\n@bogus 1\n@data\n1:a\n")
    assert "line 2: malformed @dimensions line" in _error(tmp_path, "@problemName Tiny\n@dimensions two\n@data\n1:a\n")
    assert "line 1: malformed @missing line" in _error(tmp_path, "@missing maybe\n@data\n1:a\n")
    assert "has no @data line" in _error(tmp_path, "@problemName Tiny\n@classLabel true a b\n")
    assert "line 2: data before the @data line" in _error(tmp_path, "@classLabel true a b\n1,2:a\n")
    assert "has no cases after @data (line 2)" in _error(tmp_path, "@classLabel true a\n@data\n\n")
    assert "is empty" in _error(tmp_path, "")


def test_ragged_row_is_reported_with_line_and_case(tmp_path):
    message = _error(tmp_path, HEADER + "1,2:3,4:a\n1,2:3,4:b\n1,2:3,4:5,6:a\n")
    assert "line 11, case 3: 3 dimension(s), but @dimensions says 2" in message
    no_dims = HEADER.replace("@dimensions 2\n", "")
    message = _error(tmp_path, no_dims + "1,2:3,4:a\n1,2:b\n")
    assert "line 9, case 2: 1 dimension(s), but case 1 (line 8) says 2" in message


def test_non_numeric_value_is_reported_with_line_and_dimension(tmp_path):
    message = _error(tmp_path, HEADER + "1,2:3,4:a\n1,2:3,x7:b\n")
    assert "line 10, case 2, dimension 2: value 2 is 'x7', not a number" in message
    assert "value 2 is an empty value" in _error(tmp_path, HEADER + "1,,3:3,4,5:a\n")
    assert "infinite" in _error(tmp_path, HEADER + "1,inf:3,4:a\n")


def test_labels_are_checked(tmp_path):
    assert "class label 'c' is not declared in @classLabel (a, b)" in _error(tmp_path, HEADER + "1:2:c\n")
    path = _write(tmp_path, "Tiny", HEADER + "1:2:a\n3:4:a\n", HEADER + "1:2:a\n3:4:b\n")
    with pytest.raises(UserError, match=r"_TEST.ts line 10, case 2: class label 'b' never occurs in Tiny_TRAIN.ts"):
        uea.load(_dataset("Tiny"), path.parents[1], seed=0)


def test_missing_file_names_it_and_says_where_to_get_it(tmp_path):
    with pytest.raises(UserError) as err:
        uea.load(_dataset("Heartbeat"), tmp_path, seed=0)
    message = str(err.value)
    assert str(tmp_path / "Heartbeat" / "Heartbeat_TRAIN.ts") in message
    assert "timeseriesclassification.com" in message and "data.root" in message
    with pytest.raises(UserError, match="https://example.org/uea"):
        uea.load(_dataset("Heartbeat", source="https://example.org/uea"), tmp_path, seed=0)


def test_bad_options_are_refused():
    with pytest.raises(UserError, match="dataset.validation must be one of test, holdout"):
        uea.load(_dataset(validation="val"), DATA_ROOT, seed=0)
    with pytest.raises(UserError, match="dataset.normalize must be one of per_split, train"):
        uea.load(_dataset(normalize="global"), DATA_ROOT, seed=0)


def test_dataset_yamls_cover_the_ten_paper_sets():
    import yaml

    names = ["EthanolConcentration", "FaceDetection", "Handwriting", "Heartbeat", "JapaneseVowels", "PEMS-SF",
             "SelfRegulationSCP1", "SelfRegulationSCP2", "SpokenArabicDigits", "UWaveGestureLibrary"]
    for name in names:
        cfg = yaml.safe_load((REPO / "conf" / "dataset" / f"{name}.yaml").read_text())
        assert cfg["name"] == name and cfg["path"] == name and cfg["family"] == "uea"
        assert cfg["validation"] == "test" and cfg["normalize"] == "per_split"
