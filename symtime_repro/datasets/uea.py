"""The UEA multivariate classification archive (``.ts`` files), prepared as the official loader does.

Layout under ``data.root`` (the TSLib layout; the archive's ``Multivariate_ts.zip`` unpacks the same)::

    <dataset.path>/<dataset.name>_TRAIN.ts
    <dataset.path>/<dataset.name>_TEST.ts

We read ``.ts`` files with our own small reader (:func:`read_ts`) instead of sktime's or aeon's
``load_from_tsfile``: both pin numpy/pandas/scikit-learn ranges that conflict with ours, and the
format is simple. The reader follows the format's header (``@problemName``, ``@timeStamps``,
``@missing``, ``@univariate``, ``@dimensions``/``@dimension``, ``@equalLength``, ``@seriesLength``,
``@classLabel``, ``@targetLabel``, then ``@data``), one case per line, dimensions separated by ``:``,
values by ``,``, the label last, ``?`` for a missing value and ``#`` for comments. Timestamped
files (``@timeStamps true``) are refused; none of the archive's classification sets uses them.

Preprocessing is the official one (SymTime's ``UEAloader``, i.e. TSLib's, with its ``uea.py``
helpers), applied to each file on its own:

1. Subsampling: if any case of a file has dimensions of different lengths, every series of that
   file (each case, each dimension) longer than 256 steps keeps every second step (``[::2]``).
   A case whose dimensions still differ is padded with NaN to its longest dimension (step 2 then
   fills the tail with the last value). The official code only survives this when the first
   dimension is the longest (it crashes otherwise); we do the same padding in every case. None of
   the ten sets of the paper has such cases, so this never changes their numbers.
2. Missing values (``?``) are filled per case and dimension by linear interpolation over the step
   positions, extended flat before the first and after the last known value (pandas
   ``interpolate(method='linear', limit_direction='both')``). A dimension with no known value at
   all would stay NaN there and reach the model; we stop with an error instead.
3. Standardisation: ``(x - mean) / (std + eps)`` per dimension, mean and std (ddof=1, pandas'
   default) over every real step of every case of the split, ``eps = np.finfo(float).eps``.
4. EthanolConcentration only: the official ``__getitem__`` adds an instance norm "for numerical
   stability" when the data folder's path contains ``EthanolConcentration``. Per case, over real
   steps: subtract the per-dimension mean over time, then divide each time step by
   ``sqrt(var + 1e-5)``, the variance (ddof=0) taken across the *dimensions* of that step (the
   official code reduces over dim 1 of a [time, dims] case; we reproduce that as written). We
   apply it when ``dataset.name`` or ``dataset.path`` contains ``EthanolConcentration``.
5. Labels become class indices in pandas' category order (``pd.Series(labels, dtype="category")``:
   the distinct TRAIN labels sorted as strings, so "10" sorts before "2"). Officially TRAIN and
   TEST are coded separately, which silently mislabels TEST if its label set differs; we code both
   with TRAIN's classes and stop if TEST has a label TRAIN lacks.
6. Padding: TSLib's ``collate_fn(max_len=seq_len)`` zero-pads every case at the END to ``seq_len``
   = the longest case of TRAIN and TEST (after step 1), with a padding mask that is 1 on real steps
   and 0 on padding. We pad once when loading and store the padded tensors.

Dataset config fields used here:

* ``name``: the UEA name (files ``<name>_TRAIN.ts`` / ``<name>_TEST.ts``); ``path``: their folder,
  relative to ``data.root``; ``source``: where to get them, shown when a file is missing.
* ``validation``: ``test`` (official) = the validation split IS the TEST split, so early stopping
  and checkpoint selection see the test set (a protocol quirk kept so results compare with the
  published ones); ``holdout`` = a stratified 20 % of TRAIN (per class, rounded, at least one case
  of each class left in train), drawn with the run's seed, becomes the validation split and is
  removed from train.
* ``normalize``: ``per_split`` (official) = train, val and test are each standardised with their
  own statistics (so TEST statistics are used on TEST); ``train`` = every split is standardised
  with the statistics of the train split (after a holdout is removed), the usual clean protocol.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UserError
from . import resolve_data_file

log = logging.getLogger(__name__)

ARCHIVE = "https://www.timeseriesclassification.com (Multivariate_ts.zip) or Time-Series-Library's dataset folder"
SUBSAMPLE_LIMIT = 256   # TSLib uea.subsample(limit=256, factor=2)
SUBSAMPLE_FACTOR = 2
EPS = float(np.finfo(float).eps)  # TSLib Normalizer: (x - mean) / (std + eps)
INSTANCE_NORM_EPS = 1e-5          # official UEAloader.instance_norm, EthanolConcentration only
HOLDOUT_FRACTION = 0.2
VALIDATION_CHOICES = ("test", "holdout")
NORMALIZE_CHOICES = ("per_split", "train")

_BOOLEAN_TAGS = ("timestamps", "missing", "univariate", "equallength")
_TAG_SPELLING = {  # lower-case tag -> as the format spells it (for messages)
    "problemname": "@problemName", "timestamps": "@timeStamps", "missing": "@missing",
    "univariate": "@univariate", "dimensions": "@dimensions", "dimension": "@dimension",
    "equallength": "@equalLength", "serieslength": "@seriesLength", "classlabel": "@classLabel",
    "targetlabel": "@targetLabel", "data": "@data",
}


# --------------------------------------------------------------------------------------------------
# Reading .ts files


@dataclass
class TsFile:
    """One ``.ts`` file as written: raw values, no preprocessing."""

    path: Path
    cases: list[np.ndarray]          # each [length, n_dims] float64, NaN where the file had '?'
    labels: list[str]                # one per case ('' for every case when the file has no labels)
    class_labels: Optional[list[str]]  # from @classLabel, in header order; None without one
    dims: int
    equal_length: Optional[bool]     # @equalLength, None when the header does not say
    # Beyond the shared interface: where each case sits in the file, the length of each of its
    # dimensions (a case is NaN-padded to its longest dimension), and whether labels are targets.
    lines: list[int] = field(default_factory=list)
    dim_lengths: Optional[np.ndarray] = None  # [n_cases, n_dims] int64
    problem_name: Optional[str] = None
    regression: bool = False         # @targetLabel true: the last field is a numeric target

    def __len__(self) -> int:
        return len(self.cases)


def read_ts(path: str | Path) -> TsFile:
    """Parse a ``.ts`` file, or stop with a UserError naming the file, the line and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"UEA file not found: {path}. Get it from {ARCHIVE}.")
    header: dict[str, object] = {}
    cases: list[np.ndarray] = []
    labels: list[str] = []
    lines: list[int] = []
    dim_lengths: list[list[int]] = []
    data_line = 0
    dims: Optional[int] = None
    dims_from = ""
    has_label = False
    declared: Optional[set[str]] = None
    saw_anything = False
    # errors="replace": comments of real archive files carry stray non-UTF-8 bytes; data is ASCII.
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                continue
            saw_anything = True
            if line.startswith("#"):
                continue
            if not data_line:
                if not line.startswith("@"):
                    raise UserError(f"{path} line {number}: data before the @data line; a .ts file is a header of "
                                    f"@tags, then @data, then one case per line - add the missing @data line")
                tag, value = _parse_tag(line, path, number)
                if tag == "data":
                    data_line = number
                    if header.get("timestamps"):
                        raise UserError(f"{path}: @timeStamps true (timestamped values) is not supported; "
                                        f"use the archive's plain .ts version of the dataset")
                    dims = header.get("dimensions")
                    dims_from = "@dimensions"
                    if dims is None and header.get("univariate"):
                        dims, dims_from = 1, "@univariate true"
                    has_label = bool(header.get("classlabel") or header.get("targetlabel"))
                    if header.get("classlabel"):
                        declared = set(header["classlabel"])
                else:
                    header[tag] = value
                continue
            # One case: "v,v,v:v,v,v:label".
            case_no = len(cases) + 1
            fields = line.split(":")
            label = fields.pop().strip() if has_label else ""
            if dims is None:
                dims, dims_from = len(fields), f"case 1 (line {number})"
            if len(fields) != dims:
                raise UserError(f"{path} line {number}, case {case_no}: {len(fields)} dimension(s), but "
                                f"{dims_from} says {dims}; every case needs {dims} ':'-separated dimensions"
                                f"{' followed by its label' if has_label else ''} - fix or remove that line")
            if has_label and not label:
                raise UserError(f"{path} line {number}, case {case_no}: the label (last ':' field) is empty")
            if declared is not None and label not in declared:
                shown = ", ".join(header["classlabel"][:10]) + (", ..." if len(header["classlabel"]) > 10 else "")
                raise UserError(f"{path} line {number}, case {case_no}: class label {label!r} is not declared in "
                                f"@classLabel ({shown}); fix the label or add it to the @classLabel line")
            series = [_parse_dimension(text, path, number, case_no, d + 1) for d, text in enumerate(fields)]
            lengths = [len(s) for s in series]
            longest = max(lengths)
            case = np.full((longest, dims), np.nan)
            for d, s in enumerate(series):
                case[: len(s), d] = s
            cases.append(case)
            labels.append(label)
            lines.append(number)
            dim_lengths.append(lengths)
    if not saw_anything:
        raise UserError(f"{path} is empty; download it again from {ARCHIVE}")
    if not data_line:
        raise UserError(f"{path} has no @data line; it is not a complete .ts file (header tags, then @data, then "
                        f"the cases) - download it again from {ARCHIVE}")
    if not cases:
        raise UserError(f"{path} has no cases after @data (line {data_line}); the file looks truncated - "
                        f"download it again from {ARCHIVE}")
    class_labels = header.get("classlabel") or None
    return TsFile(path=path, cases=cases, labels=labels, class_labels=class_labels, dims=int(dims),
                  equal_length=header.get("equallength"), lines=lines,
                  dim_lengths=np.array(dim_lengths, dtype=np.int64), problem_name=header.get("problemname"),
                  regression=bool(header.get("targetlabel")))


def _parse_tag(line: str, path: Path, number: int) -> tuple[str, object]:
    """``(tag, value)`` of one header line; booleans as bool, counts as int, labels as a list."""
    tokens = line.split()
    tag = tokens[0][1:].lower()
    args = tokens[1:]
    if tag not in _TAG_SPELLING:
        raise UserError(f"{path} line {number}: unknown header tag {tokens[0]!r}; a .ts header has "
                        f"{', '.join(sorted(set(_TAG_SPELLING.values())))} - fix or remove that line")
    spelled = _TAG_SPELLING[tag]

    def malformed(expected: str) -> UserError:
        return UserError(f"{path} line {number}: malformed {spelled} line {line[:60]!r}; expected {expected}")

    if tag == "data":
        if args:
            raise malformed("'@data' alone on its line, the cases on the lines after it")
        return tag, None
    if tag == "problemname":
        if not args:
            raise malformed("'@problemName <name>'")
        return tag, line.split(None, 1)[1].strip()
    if tag in _BOOLEAN_TAGS:
        if len(args) != 1 or args[0].lower() not in ("true", "false"):
            raise malformed(f"'{spelled} true' or '{spelled} false'")
        return tag, args[0].lower() == "true"
    if tag in ("dimensions", "dimension", "serieslength"):
        if len(args) != 1 or not args[0].isdigit() or int(args[0]) < 1:
            raise malformed(f"'{spelled} <positive integer>'")
        return ("dimensions" if tag == "dimension" else tag), int(args[0])
    if tag == "targetlabel":
        if len(args) != 1 or args[0].lower() not in ("true", "false"):
            raise malformed("'@targetLabel true' or '@targetLabel false'")
        return tag, args[0].lower() == "true"
    # @classLabel true <label> <label> ... | @classLabel false
    if not args or args[0].lower() not in ("true", "false"):
        raise malformed("'@classLabel true <label> <label> ...' or '@classLabel false'")
    if args[0].lower() == "false":
        if len(args) > 1:
            raise malformed("no labels after '@classLabel false'")
        return tag, None
    if len(args) < 2:
        raise malformed("the class labels after '@classLabel true'")
    return tag, args[1:]


def _parse_dimension(text: str, path: Path, number: int, case_no: int, dim: int) -> np.ndarray:
    """The values of one dimension as float64, '?' (or 'NaN') as NaN; anything else stops."""
    cells = text.split(",")
    try:
        values = np.array(cells, dtype=np.float64)  # fast path: no '?' in this dimension
    except ValueError:
        values = np.empty(len(cells))
        for i, cell in enumerate(cells):
            cell = cell.strip()
            if cell == "?":
                values[i] = np.nan
                continue
            try:
                values[i] = float(cell)
            except ValueError:
                shown = "an empty value" if cell == "" else f"{cell[:30]!r}"
                raise UserError(f"{path} line {number}, case {case_no}, dimension {dim}: value {i + 1} is {shown}, "
                                f"not a number ('?' marks a missing value) - fix or remove that case") from None
    if np.isinf(values).any():
        i = int(np.flatnonzero(np.isinf(values))[0])
        raise UserError(f"{path} line {number}, case {case_no}, dimension {dim}: value {i + 1} is infinite "
                        f"({cells[i].strip()!r}); write '?' for a missing value")
    return values


# --------------------------------------------------------------------------------------------------
# Official preprocessing, as pure functions of one file's cases


def subsample_ragged(cases: list[np.ndarray], dim_lengths: np.ndarray) -> tuple[list[np.ndarray], bool]:
    """TSLib's rule: if any case's dimensions differ in length, halve every series of the file that is
    longer than 256 steps (keep steps 0, 2, 4, ...). Returns the cases and whether the rule fired."""
    if not (dim_lengths != dim_lengths[:, :1]).any():
        return cases, False
    out = []
    for case, lengths in zip(cases, dim_lengths):
        series = [case[:n, d] for d, n in enumerate(lengths)]
        series = [s[::SUBSAMPLE_FACTOR] if len(s) > SUBSAMPLE_LIMIT else s for s in series]
        new = np.full((max(len(s) for s in series), case.shape[1]), np.nan)
        for d, s in enumerate(series):
            new[: len(s), d] = s
        out.append(new)
    return out, True


def interpolate_missing(case: np.ndarray) -> np.ndarray:
    """Fill NaN per dimension linearly over step positions, flat beyond the known ends (pandas'
    ``interpolate(method='linear', limit_direction='both')``). An all-NaN dimension stays NaN."""
    missing = np.isnan(case)
    if not missing.any():
        return case
    case = case.copy()
    steps = np.arange(case.shape[0])
    for d in np.flatnonzero(missing.any(axis=0)):
        known = ~missing[:, d]
        if known.any():
            case[~known, d] = np.interp(steps[~known], steps[known], case[known, d])
    return case


def log_missing(cases: Sequence[np.ndarray], path: Path, dataset: str) -> None:
    """Say how many values the official interpolation is about to fill (step 2 of the module doc)."""
    per_case = [int(np.isnan(case).sum()) for case in cases]
    if any(per_case):
        first = next(k for k, n in enumerate(per_case) if n)
        log.info("dataset %s: %s has %d missing value(s) in %d case(s) (first: case %d); filled by linear "
                 "interpolation over time, as the official UEA loader does", dataset, path, sum(per_case),
                 sum(1 for n in per_case if n), first + 1)


def split_statistics(cases: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std (ddof=1, as pandas) over every real step of ``cases``."""
    rows = np.concatenate(list(cases), axis=0)
    return rows.mean(axis=0), rows.std(axis=0, ddof=1)


def standardize(cases: Sequence[np.ndarray], mean: np.ndarray, std: np.ndarray) -> list[np.ndarray]:
    """TSLib's Normalizer('standardization'): ``(x - mean) / (std + eps)``."""
    return [(case - mean) / (std + EPS) for case in cases]


def ethanol_instance_norm(case: np.ndarray) -> np.ndarray:
    """The official EthanolConcentration-only per-case norm (see the module docstring, step 4)."""
    centred = case - case.mean(axis=0, keepdims=True)
    return centred / np.sqrt(centred.var(axis=1, ddof=0, keepdims=True) + INSTANCE_NORM_EPS)


def holdout_indices(labels: np.ndarray, seed: int, fraction: float = HOLDOUT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) case indices: per class, ``round(fraction * n)`` random cases go to val,
    but at least one case of every class stays in train. Same labels and seed, same split."""
    rng = np.random.default_rng(seed)
    val = []
    for cls in np.unique(labels):  # sorted, so the draws happen in a fixed order
        members = np.flatnonzero(labels == cls)
        n_val = min(int(len(members) * fraction + 0.5), len(members) - 1)
        if n_val > 0:
            val.append(rng.permutation(members)[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.array([], dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


# --------------------------------------------------------------------------------------------------
# Datasets


@dataclass(eq=False, repr=False)
class CaseSet(Dataset):
    """Cases zero-padded at the end to one length, fetched a whole batch at a time.

    ``dataset[i]`` gives one case, ``dataset[[i, j, ...]]`` a batch in one indexing operation (what
    :func:`symtime_repro.datasets.windows.make_loader` asks for): ``x`` [B, seq_len, n_dims] float32,
    ``label`` [B] int64 and ``padding_mask`` [B, seq_len] float32, 1 on real steps and 0 on padding.
    """

    x: torch.Tensor        # [n_cases, seq_len, n_dims] float32
    lengths: torch.Tensor  # [n_cases] int64 real steps
    labels: torch.Tensor   # [n_cases] int64 class index
    source_index: Optional[torch.Tensor] = None  # [n_cases] position of each case in its .ts file

    def __post_init__(self) -> None:
        self._steps = torch.arange(self.x.shape[1])

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def seq_len(self) -> int:
        return self.x.shape[1]

    def __getitem__(self, index: int | Sequence[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(index, dtype=torch.long)
        mask = (self._steps < self.lengths[idx].unsqueeze(-1)).to(torch.float32)
        return {"x": self.x[idx], "label": self.labels[idx], "padding_mask": mask}

    def padded_to(self, seq_len: int) -> "CaseSet":
        """The same cases with more zero padding (e.g. for a ``task.seq_len`` above the data's)."""
        if seq_len < self.seq_len:
            raise ValueError(f"cannot pad {self.seq_len} steps down to {seq_len}")
        x = torch.nn.functional.pad(self.x, (0, 0, 0, seq_len - self.seq_len))
        return CaseSet(x, self.lengths, self.labels, self.source_index)

    def __repr__(self) -> str:
        return f"CaseSet(cases={len(self)}, seq_len={self.seq_len}, dims={self.x.shape[2]})"


@dataclass
class UEASplits:
    train: CaseSet
    val: CaseSet
    test: CaseSet
    class_names: list[str]   # index -> label as written, in pandas' category order
    seq_len: int             # longest case of TRAIN and TEST after preprocessing
    enc_in: int
    info: dict


def required_files(dataset_cfg) -> list[str]:
    return [f"{dataset_cfg.path}/{dataset_cfg.name}_{part}.ts" for part in ("TRAIN", "TEST")]


def load(dataset_cfg, root: str | Path, seed: int) -> UEASplits:
    """Read ``<root>/<path>/<name>_TRAIN.ts`` and ``_TEST.ts`` and prepare them as the official loader."""
    name = dataset_cfg.name
    validation = getattr(dataset_cfg, "validation", "test")
    normalize = getattr(dataset_cfg, "normalize", "per_split")
    if validation not in VALIDATION_CHOICES:
        raise UserError(f"dataset.validation must be one of {', '.join(VALIDATION_CHOICES)}, got {validation!r}")
    if normalize not in NORMALIZE_CHOICES:
        raise UserError(f"dataset.normalize must be one of {', '.join(NORMALIZE_CHOICES)}, got {normalize!r}")
    folder = Path(root).expanduser() / dataset_cfg.path
    source = getattr(dataset_cfg, "source", "") or ARCHIVE
    paths = [resolve_data_file(root, f"{dataset_cfg.path}/{name}_{part}.ts", name, source,
                               f"{name}_TRAIN.ts and {name}_TEST.ts in {folder}") for part in ("TRAIN", "TEST")]
    train_file, test_file = (read_ts(path) for path in paths)
    for ts in (train_file, test_file):
        if ts.regression or not ts.class_labels and not any(ts.labels):
            raise UserError(f"dataset {name}: {ts.path} has no class labels (@classLabel true <labels>); "
                            f"classification needs a labelled UEA classification file")
    if test_file.dims != train_file.dims:
        raise UserError(f"dataset {name}: {paths[0].name} has {train_file.dims} dimensions but {paths[1].name} has "
                        f"{test_file.dims}; the two files must come from the same dataset")

    class_names = sorted(set(train_file.labels))  # = pd.Series(labels, dtype="category").cat.categories
    code = {label: i for i, label in enumerate(class_names)}
    unknown = [i for i, label in enumerate(test_file.labels) if label not in code]
    if unknown:
        first = unknown[0]
        raise UserError(f"dataset {name}: {paths[1]} line {test_file.lines[first]}, case {first + 1}: class label "
                        f"{test_file.labels[first]!r} never occurs in {paths[0].name} ({len(unknown)} TEST case(s) "
                        f"have labels TRAIN lacks), so no model trained on TRAIN can predict it; check the files")

    prepared, subsampled = [], []
    for ts in (train_file, test_file):
        cases, fired = subsample_ragged(ts.cases, ts.dim_lengths)
        log_missing(cases, ts.path, name)
        cases = [interpolate_missing(case) for case in cases]
        for k, case in enumerate(cases):
            empty = np.flatnonzero(np.isnan(case).all(axis=0))
            if empty.size:
                raise UserError(f"{ts.path} line {ts.lines[k]}, case {k + 1}: dimension {empty[0] + 1} has no value "
                                f"at all (every value is '?'), so nothing can fill it; remove that case")
        prepared.append(cases)
        subsampled.append(fired)
    train_cases, test_cases = prepared
    seq_len = max(len(case) for case in train_cases + test_cases)
    train_labels = np.array([code[label] for label in train_file.labels], dtype=np.int64)
    test_labels = np.array([code[label] for label in test_file.labels], dtype=np.int64)

    # (cases, labels, positions in the source file) per split.
    all_train = np.arange(len(train_cases))
    if validation == "holdout":
        train_idx, val_idx = holdout_indices(train_labels, seed)
        if val_idx.size == 0:
            raise UserError(f"dataset {name}: TRAIN has too few cases per class ({len(train_cases)} cases, "
                            f"{len(class_names)} classes) to hold out {HOLDOUT_FRACTION:.0%}; use dataset.validation=test")
        parts = {"train": train_idx, "val": val_idx}
    else:
        parts = {"train": all_train}
    splits = {key: ([train_cases[i] for i in idx], train_labels[idx], idx) for key, idx in parts.items()}
    splits["test"] = (test_cases, test_labels, np.arange(len(test_cases)))
    if validation == "test":
        splits["val"] = splits["test"]

    if normalize == "train":
        stats = split_statistics(splits["train"][0])
        normalised = {key: standardize(cases, *stats) for key, (cases, _, _) in splits.items()}
    else:
        normalised = {key: standardize(cases, *split_statistics(cases)) for key, (cases, _, _) in splits.items()}
    instance_norm = "EthanolConcentration" in f"{name} {dataset_cfg.path}"
    if instance_norm:
        normalised = {key: [ethanol_instance_norm(case) for case in cases] for key, cases in normalised.items()}

    sets = {}
    for key in ("train", "test", "val"):
        if key == "val" and validation == "test":
            sets["val"] = sets["test"]  # the same object: the official loop validates on TEST
            continue
        _, labels, source = splits[key]
        sets[key] = _case_set(normalised[key], labels, source, seq_len, train_file.dims)

    info = {
        "file": str(folder / f"{name}_{{TRAIN,TEST}}.ts"),
        "files": [str(p) for p in paths],
        "cases": {key: len(sets[key]) for key in ("train", "val", "test")},
        "validation": validation,
        "normalize": normalize,
        "normalization": ("each split with its own mean/std (official)" if normalize == "per_split"
                          else "every split with the train split's mean/std"),
        "instance_norm": instance_norm,
        "subsampled": {"train": subsampled[0], "test": subsampled[1]},
        "seq_len": seq_len,
        "length_range": [min(len(c) for c in train_cases + test_cases), seq_len],
    }
    return UEASplits(train=sets["train"], val=sets["val"], test=sets["test"], class_names=class_names,
                     seq_len=seq_len, enc_in=train_file.dims, info=info)


def _case_set(cases: list[np.ndarray], labels: np.ndarray, source: np.ndarray, seq_len: int, dims: int) -> CaseSet:
    """Zero-pad ``cases`` at the end to ``seq_len`` into one float32 tensor (TSLib's collate_fn, done once)."""
    x = np.zeros((len(cases), seq_len, dims), dtype=np.float32)
    for k, case in enumerate(cases):
        x[k, : len(case)] = case
    lengths = torch.tensor([len(case) for case in cases], dtype=torch.int64)
    return CaseSet(torch.from_numpy(x), lengths, torch.from_numpy(labels.astype(np.int64)),
                   torch.from_numpy(source.astype(np.int64)))
