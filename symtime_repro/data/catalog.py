"""Every dataset the runner knows: its files under ``data.root``, their hashes, and where to get them.

This is the one declarative table behind ``python -m symtime_repro.data`` (list, download, import,
verify) and behind the start-up check that names a missing file and the command that fetches it.
Adding a dataset: one :class:`Dataset` entry here and one ``conf/dataset/<Name>.yaml`` whose
``path`` agrees with the entry (a test checks that every YAML's files are in this table).

Paths are the TSLib layout (``ETT-small/ETTh1.csv``, ``m4/Hourly-train.csv``, ``MSL/MSL_train.npy``),
which is also the layout of the TSLib Google Drive folder and of its Hugging Face copy.
``sha256``/``size`` are those of the published file where we know them (hashed from the file at
the pinned source named beside each entry); a file without a known hash is reported "unverified",
never "ok".
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Optional

# --- where files are published ------------------------------------------------------------------

TSLIB_DRIVE_FOLDER = "13Cg1KYOlzM5C7K8gK8NfC-F3EYxkM3D2"
SYMTIME_DRIVE_FOLDER = "1of5P-Cy-dve9zs09p_Gr_wHh8Z_hfRN_"
SYMTIME_README_DRIVE_FOLDER = "1ACYD_RxQMPZ4DzHDdB3xkRHCkE8FcdH2"  # the folder linked in SymTime's README
HF_TSLIB = "https://huggingface.co/datasets/thuml/Time-Series-Library/resolve/main/{path}"
ETDATASET = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/1d16c8f4f943005d613b5bc962e9eeb06058cf07/ETT-small/{name}"
M4_METHODS = "https://raw.githubusercontent.com/Mcompetitions/M4-methods/6c1067e5a57161249b17289a565178dc7a3fb3ca/Dataset/{split}/{name}"


@dataclass(frozen=True)
class Source:
    """One place a dataset's files are published.

    ``kind`` is ``drive`` (a public Google Drive folder, ``location`` = folder id; each file is
    found in the folder's listing by its path, else by any of its names, else inside a zip) or
    ``url`` (``location`` is a template with ``{path}``, ``{name}`` and ``{split}`` =
    Train/Test for M4).
    """

    name: str
    kind: str
    location: str
    description: str
    serves: tuple[str, ...] = ("*",)  # glob patterns of the data.root paths it holds

    def holds(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.serves)

    def url_for(self, entry: "DataFile") -> str:
        """The URL of ``entry`` at a ``url`` source."""
        split = "Train" if entry.path.endswith("-train.csv") else "Test"
        return self.location.format(path=entry.path, name=entry.name, split=split)

    def page(self) -> str:
        """Where a person can look at the source in a browser."""
        if self.kind == "drive":
            return f"https://drive.google.com/drive/folders/{self.location}"
        return self.location.split("{")[0]


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("tslib-drive", "drive", TSLIB_DRIVE_FOLDER, "the TSLib authors' Google Drive folder"),
    Source("hf", "url", HF_TSLIB, "the TSLib authors' copy on the Hugging Face hub (thuml/Time-Series-Library)"),
    Source("symtime-drive", "drive", SYMTIME_DRIVE_FOLDER, "the SymTime authors' Google Drive folder"),
    Source("symtime-readme-drive", "drive", SYMTIME_README_DRIVE_FOLDER,
           "the Google Drive folder linked from SymTime's README (files under ./datasets/)"),
    Source("etdataset", "url", ETDATASET, "the ETT authors' repository zhouhaoyi/ETDataset (pinned commit)",
           serves=("ETT-small/*",)),
    Source("m4-methods", "url", M4_METHODS, "the M4 organisers' repository Mcompetitions/M4-methods (pinned commit)",
           serves=("m4/*-train.csv", "m4/*-test.csv")),
)}

# --- what a file must look like (cheap checks: a header, a shape; hashes are for `verify`) -------


@dataclass(frozen=True)
class Signature:
    """A content check that reads only the start of a file.

    ``csv``: the first header field is ``first`` (and there are ``width`` columns when set);
    ``m4``: an M4 series CSV whose first id starts with ``first``; ``ts``: a UEA file whose
    ``@problemName`` is ``first``; ``npy``: a NumPy array of ``ndim`` dimensions whose last one is
    ``width`` (when set); ``json``: a JSON object (a generated cache's manifest).
    """

    kind: str
    first: str = ""
    width: Optional[int] = None
    ndim: Optional[int] = None


@dataclass(frozen=True)
class DataFile:
    path: str  # where the runner reads it, relative to data.root
    signature: Signature
    sha256: Optional[str] = None  # of the published file, when known
    size: Optional[int] = None  # bytes of the published file, when known
    aliases: tuple[str, ...] = ()  # other names it is published under (SymTime, older releases)
    optional: bool = False  # placed when found, never required (e.g. M4-info.csv)
    part: str = ""  # a subset a run needs on its own (the M4 seasonal pattern)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Dataset:
    name: str  # as in conf/dataset/<name>.yaml
    tasks: tuple[str, ...]
    files: tuple[DataFile, ...]
    sources: tuple[str, ...]  # keys of SOURCES, tried in this order
    shape: str  # rows x channels, for the catalog table (docs/data.md)
    license: str
    origin: str
    note: str = ""  # why it can't be downloaded, etc.
    # "download": published files, fetched or imported; "generated": made here by
    # `python -m symtime_repro.data generate` (never downloaded or imported; its one catalog file is
    # the cache's manifest, which lists and hashes the rest).
    kind: str = "download"

    @property
    def generated(self) -> bool:
        return self.kind == "generated"

    @property
    def required(self) -> tuple[DataFile, ...]:
        return tuple(f for f in self.files if not f.optional)


# --- the table -------------------------------------------------------------------------------------

FORECAST = ("long_term", "imputation")
TSLIB_SOURCES = ("tslib-drive", "hf", "symtime-drive", "symtime-readme-drive")


def _csv(path: str, width: int, sha256: str | None = None, size: int | None = None,
         aliases: tuple[str, ...] = ()) -> DataFile:
    return DataFile(path, Signature("csv", "date", width), sha256, size, aliases)


def _ett(name: str, sha256: str, size: int, shape: str) -> Dataset:
    return Dataset(name, FORECAST, (_csv(f"ETT-small/{name}.csv", 8, sha256, size),),
                   ("etdataset", *TSLIB_SOURCES), shape, "CC BY-ND 4.0",
                   "Zhou et al., AAAI 2021 (Informer); github.com/zhouhaoyi/ETDataset")


# M4: (pattern, train sha256, train bytes, test sha256, test bytes); hashes known for the files as
# published in Mcompetitions/M4-methods @ 6c1067e5 (Dataset/).
_M4_KNOWN = {
    "Weekly": ("d478d3f6ed673e6ed3c2cb0fbed5425f72eedd51318ebebeb0b5ecfcefc37714", 4015067,
               "3b2bc4be8e636e802260dcd843ca3c5da40536a1fbe1ecb3229a97dae4f44688", 44247),
    "Hourly": ("ea59b7783573c49077a835ab6465c7d66f1474783360f310988a9a737fbca62f", 2347115,
               "71a57fccb15e534d973626ada4fb87febf789e9317715b7cc6dd3b5f90db6f42", 132820),
}
_M4_PREFIX = {"Yearly": "Y", "Quarterly": "Q", "Monthly": "M", "Weekly": "W", "Daily": "D", "Hourly": "H"}


def _m4_files() -> tuple[DataFile, ...]:
    files = []
    for pattern, prefix in _M4_PREFIX.items():
        train_sha, train_size, test_sha, test_size = _M4_KNOWN.get(pattern, (None, None, None, None))
        files.append(DataFile(f"m4/{pattern}-train.csv", Signature("m4", prefix), train_sha, train_size, part=pattern))
        files.append(DataFile(f"m4/{pattern}-test.csv", Signature("m4", prefix), test_sha, test_size, part=pattern))
    files.append(DataFile("m4/submission-Naive2.csv", Signature("csv", "id"),
                          "f9610c625d6dee654ec458dcd07fb39373d065efc33b4f17d94c50b2aef00ef9", 23409576))
    # TSLib's loader reads it; ours derives the same facts from the ids. Kept when found.
    files.append(DataFile("m4/M4-info.csv", Signature("csv", "M4id"), aliases=("m4_info.csv", "M4_info.csv"),
                          optional=True))
    return tuple(files)


# UEA: name -> (train sha256, bytes, test sha256, bytes) where known (the TSLib release's files).
_UEA = {
    "EthanolConcentration": None,
    "FaceDetection": None,
    "Handwriting": ("c187e2288bd7f0667ab7453de436feeadb5dd417c5778a6c62b71852b50736cc", 591601,
                    "156ee781ad41d58b4e5d48a907aef956f5a3756e1ab2d796c785db1a47863524", 3343809),
    "Heartbeat": None,
    "JapaneseVowels": ("68a430eabd919cc77f40b1f5f3bc0dcafacc1486bca9260785aeb7d262cc78cd", 487971,
                       "b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462", 649132),
    "PEMS-SF": None,
    "SelfRegulationSCP1": None,
    "SelfRegulationSCP2": None,
    "SpokenArabicDigits": None,
    "UWaveGestureLibrary": ("e1d656037ceb880fe3d4ef7f83f2ee38459897ebaaada93527a17a86823bc92d", 918673,
                            "734b30171297cc4c209485020466d83dabd2b7ecf76edc10957354f2557d0964", 2445380),
}
_UEA_SHAPE = {
    "EthanolConcentration": "261/263 cases, 3 dims, length 1751", "FaceDetection": "5890/3524 cases, 144 dims, length 62",
    "Handwriting": "150/850 cases, 3 dims, length 152", "Heartbeat": "204/205 cases, 61 dims, length 405",
    "JapaneseVowels": "270/370 cases, 12 dims, length 7-29", "PEMS-SF": "267/173 cases, 963 dims, length 144",
    "SelfRegulationSCP1": "268/293 cases, 6 dims, length 896", "SelfRegulationSCP2": "200/180 cases, 7 dims, length 1152",
    "SpokenArabicDigits": "6599/2199 cases, 13 dims, length 4-93", "UWaveGestureLibrary": "120/320 cases, 3 dims, length 315",
}


def _uea(name: str) -> Dataset:
    known = _UEA[name] or (None, None, None, None)
    files = (DataFile(f"{name}/{name}_TRAIN.ts", Signature("ts", name), known[0], known[1]),
             DataFile(f"{name}/{name}_TEST.ts", Signature("ts", name), known[2], known[3]))
    return Dataset(name, ("classification",), files, TSLIB_SOURCES, _UEA_SHAPE[name],
                   "UEA archive terms (free for research; cite Bagnall et al. 2018)",
                   "timeseriesclassification.com (Multivariate_ts.zip); TSLib's dataset folder")


def _npy_set(name: str, channels: int, known: dict[str, tuple[str, int]], shape: str, license: str,
             origin: str) -> Dataset:
    files = []
    for part, sig in (("train", Signature("npy", ndim=2, width=channels)),
                      ("test", Signature("npy", ndim=2, width=channels)),
                      ("test_label", Signature("npy", ndim=1))):
        sha256, size = known.get(part, (None, None))
        files.append(DataFile(f"{name}/{name}_{part}.npy", sig, sha256, size))
    return Dataset(name, ("anomaly",), tuple(files), TSLIB_SOURCES, shape, license, origin)


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    _ett("ETTh1", "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066", 2589657, "17420 x 7, hourly"),
    _ett("ETTh2", "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b", 2417960, "17420 x 7, hourly"),
    _ett("ETTm1", "6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e", 10360719, "69680 x 7, 15 min"),
    _ett("ETTm2", "db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd", 9677236, "69680 x 7, 15 min"),
    Dataset("ECL", FORECAST, (_csv("electricity/electricity.csv", 322, aliases=("ECL.csv",)),), TSLIB_SOURCES,
            "26304 x 321, hourly", "CC BY 4.0 (UCI ElectricityLoadDiagrams20112014)", "UCI, via TSLib"),
    Dataset("Traffic", ("long_term",), (_csv("traffic/traffic.csv", 863),), TSLIB_SOURCES,
            "17544 x 862, hourly", "Caltrans PeMS (public), via TSLib", "Caltrans PeMS, via TSLib"),
    Dataset("Weather", FORECAST, (_csv("weather/weather.csv", 22,
                                       "34ee981d07313e51da2a50bb600072c8ae4a69cb4b0651f4cb93a069d7a2ba63", 7235425),),
            TSLIB_SOURCES, "52696 x 21, 10 min", "MPI-BGC Jena weather station record (research use)",
            "bgc-jena.mpg.de/wetter, as distributed with Autoformer / TSLib"),
    Dataset("Exchange", ("long_term",), (_csv("exchange_rate/exchange_rate.csv", 9,
                                              "d55e7aa2641009814a18ba3279431b13f6d413b0eab195b9ff21988d8cf94e97", 630212),),
            TSLIB_SOURCES, "7588 x 8, daily", "no licence stated (LSTNet release)", "Lai et al. 2018 (LSTNet), via TSLib"),
    Dataset("ILI", ("long_term",), (_csv("illness/national_illness.csv", 8,
                                         "8594cecb98c6f2f9dc014eca11c4d5d1e38ad5ce6ed0592d4abe65b146fce395", 66653),),
            TSLIB_SOURCES, "966 x 7, weekly", "US CDC ILINet (public domain)", "CDC FluView, via TSLib"),
    Dataset("M4", ("short_term",), _m4_files(), ("m4-methods", *TSLIB_SOURCES),
            "100000 series in 6 patterns", "research use (no licence file); cite Makridakis et al. 2020",
            "Mcompetitions/M4-methods",
            note="submission-Naive2.csv is published by the organisers only inside a .rar; get it from TSLib's m4/ folder"),
    *(_uea(name) for name in _UEA),
    _npy_set("SMD", 38, {}, "708405 / 708420 x 38", "MIT (OmniAnomaly repository)",
             "Su et al., KDD 2019 (OmniAnomaly), via TSLib"),
    _npy_set("MSL", 55, {"train": ("d767ecfc8ea344f7a6e78f815a84dc7923f600df1beb14359f3e73202148b058", 25659608),
                         "test": ("8b479ebeeabb63ff636e8adeb095a7bcc46a0cdc7befa189b45b05b1e90c9425", 32440888),
                         "test_label": ("23e120c30a645000f093ff5311de177601b8220ba3ca4281c6376883444f7b97", 73857)},
             "58317 / 73729 x 55", "NASA telemanom data (research use)", "Hundman et al., KDD 2018, via TSLib"),
    _npy_set("SMAP", 25, {"train": ("1c823bed59f32d45a2e6323ac79bf7755c80c2ff68a2d3d7322e4dee40a11010", 27036728),
                          "test": ("458c3b354b6a602b711241c29fb50518dddb0c1c9248d7d2e1691a9c218d4ac0", 85523528),
                          "test_label": ("55f94fcccc3ae35216cfd6ac5e0e2016ad9d08d5ff0aca9f09916c6501380e0f", 427745)},
             "135183 / 427617 x 25", "NASA telemanom data (research use)", "Hundman et al., KDD 2018, via TSLib"),
    Dataset("PSM", ("anomaly",),
            (DataFile("PSM/train.csv", Signature("csv", "timestamp_(min)", 26)),
             DataFile("PSM/test.csv", Signature("csv", "timestamp_(min)", 26)),
             DataFile("PSM/test_label.csv", Signature("csv", "timestamp_(min)", 2))),
            TSLIB_SOURCES, "132481 / 87841 x 25", "CC BY 4.0 (eBay RANSynCoders)",
            "Abdulaal et al., KDD 2021, via TSLib"),
    Dataset("SWaT", ("anomaly",),
            (DataFile("SWaT/swat_train2.csv", Signature("csv")), DataFile("SWaT/swat2.csv", Signature("csv"))),
            TSLIB_SOURCES, "495000 / 449919 x 51", "iTrust SUTD: by request, not redistributable",
            "iTrust, SUTD (Goh et al., CRITIS 2016)",
            note="iTrust gives SWaT only on request; if no public folder holds it, request it and use `import`"),
    # Pre-training pairs (SymTime's S2 data): generated with the official package, never downloaded.
    Dataset("S2", ("pretrain",), (DataFile("S2/manifest.json", Signature("json")),), (),
            "series-symbol pairs, generated (N chosen)", "MIT (s2generator); the pairs are made locally",
            "wwhenxuan/S2Generator (PyPI s2generator), as SymTime's data_provider/s2generator_main.py",
            note="generated, not downloaded: python -m symtime_repro.data generate s2 --samples N", kind="generated"),
)}

# Names of files published beside the data that the runner does not need, and why (for `import`).
NOT_NEEDED = {
    "training.npz": "TSLib's M4 cache; symtime-repro builds its own from the M4 CSVs",
    "test.npz": "TSLib's M4 cache; symtime-repro builds its own from the M4 CSVs",
}


# Other names the data sets go by (TSLib's folder and file names, the papers' tables), lower case ->
# our name. The runner's "did you mean" and the data commands both read this table.
DATASET_ALIASES = {"electricity": "ECL", "exchange_rate": "Exchange", "exchangerate": "Exchange", "illness": "ILI",
                   "national_illness": "ILI"}


def find_dataset(name: str) -> Optional[Dataset]:
    """The dataset called ``name``, matched case-insensitively (``ecl`` finds ECL), or by another name
    it goes by (``electricity`` finds ECL)."""
    if name in DATASETS:
        return DATASETS[name]
    folded = {key.lower(): value for key, value in DATASETS.items()}
    return folded.get(name.lower()) or DATASETS.get(DATASET_ALIASES.get(name.lower(), ""))


def file_entry(path: str) -> Optional[tuple[Dataset, DataFile]]:
    """The catalog entry of the file at ``path`` (relative to data.root)."""
    for dataset in DATASETS.values():
        for entry in dataset.files:
            if entry.path == path:
                return dataset, entry
    return None


def published_rows(path: str) -> Optional[int]:
    """Data rows of the published CSV at ``path`` (relative to data.root), from its shape in the
    table ("52696 x 21, 10 min"), or None where the table does not say."""
    found = file_entry(path)
    match = re.match(r"(\d+) x \d+", found[0].shape) if found and len(found[0].files) == 1 else None
    return int(match.group(1)) if match else None


def tasks() -> list[str]:
    seen: dict[str, None] = {}
    for dataset in DATASETS.values():
        for task in dataset.tasks:
            seen.setdefault(task, None)
    return list(seen)


__all__ = ["Source", "Signature", "DataFile", "Dataset", "SOURCES", "DATASETS", "NOT_NEEDED", "find_dataset",
           "file_entry", "tasks"]
