"""Turn run directories into a report: ``python -m symtime_repro.report DIR [--out DIR] [--reference DIR]``.

Reads every run dir below ``DIR`` (docs/contract.md: ``metrics.json``, ``history.csv``, ``run.log``,
``.hydra/``; ``test_samples.npz`` where a task wrote it) and writes into ``--out`` (default ``DIR``):

- ``report.md``: one table per task (mean ± std over runs that differ only in seed, with the
  published reference values and our difference), the paper's averages beside the mean of our
  rows, a device/throughput table, the failed or unfinished runs with their reasons, and plots;
- ``results.csv``: one row per run, for programs;
- ``plots/*.png`` when matplotlib is installed (loss curves, test windows, ours vs reference).

Every file is written atomically. Bad input (no folder, no runs, an unreadable metrics.json) ends
with one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import yaml

from .config import NOT_RESULT_KEYS
from .console import subset_phrase
from .errors import EXIT_USER_ERROR, UserError
from .files import RUN_CONFIG, atomic_write_bytes, write_csv

DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parent / "reference"

# The contract's test metrics per task (docs/contract.md), in the order tables show them.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "long_term": ("mse", "mae"),
    "short_term": ("smape", "mase", "owa"),
    "imputation": ("mse", "mae"),
    "classification": ("accuracy",),
    "anomaly": ("precision", "recall", "f1", "accuracy"),
}
# A task this table does not list (a new one) is reported with the names its runs recorded in
# metrics.json ("test_metrics"), learnt while reading them.
_RECORDED_METRICS: dict[str, tuple[str, ...]] = {}


def metric_names(task: str) -> tuple[str, ...]:
    return TASK_METRICS.get(task) or _RECORDED_METRICS.get(task, ())


TASK_ORDER = tuple(TASK_METRICS)
ALL_METRICS = tuple(dict.fromkeys(m for names in TASK_METRICS.values() for m in names))
# Published numbers for these tasks are percentages while our metrics.json holds fractions: we
# convert ours, so tables, differences and results.csv are all in the published unit.
PERCENT_TASKS = {"classification", "anomaly"}
M4_PATTERN_ORDER = ("yearly", "quarterly", "monthly", "weekly", "daily", "hourly", "others")
# Config keys a row does not tell apart: those that never change results, and the seed (a row is
# the mean over seeds).
IGNORED_CONFIG_KEYS = NOT_RESULT_KEYS | {"seed"}
BENCH_FILE = "bench.json"  # python -m symtime_repro.bench: a timing, not a run
COMPLETED = "completed"
FAILED = "failed"
INCOMPLETE = "running or killed"
REFERENCE_COLUMNS = {"task", "dataset", "setting", "metric", "value", "source"}
PLOTS_DIR = "plots"
NO_MATPLOTLIB_NOTE = "Plots skipped: matplotlib is not installed (`pip install matplotlib`)."


# ----------------------------------------------------------------------------------------------
# Reading run directories


@dataclass(frozen=True)
class Run:
    """One run directory as the report sees it."""

    path: Path
    name: str  # relative to the folder given on the command line
    status: str  # "completed", "failed", "running or killed", or whatever metrics.json says
    reason: str = ""
    task: str = ""
    dataset: str = ""
    setting: str = ""
    seq_len: int | None = None
    seed: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # flattened config.yaml (or .hydra/'s), {} if absent

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def subset(self) -> bool:
        """The test scored a sample of the split (trainer.limit_eval_batches): never set beside references.
        Runs from before metrics.json counted it are taken as subsets when they set a limit."""
        if "test_subset" in self.metrics:
            return self.metrics["test_subset"] is True
        return self.config.get("trainer.limit_eval_batches") is not None

    @property
    def reevaluation(self) -> bool:
        """mode=test: a checkpoint evaluated again, not a training run of its own."""
        return _first(self.metrics.get("mode"), self.config.get("mode")) == "test"

    @property
    def transfer(self) -> bool:
        """mode=test of a checkpoint on a dataset other than its own: never set beside that dataset's references."""
        return self.metrics.get("transfer_evaluation") is True

    @property
    def comparable(self) -> bool:
        """Whether the run's metrics may stand beside published numbers for its dataset."""
        return not self.subset and not self.transfer

    @property
    def subset_phrase(self) -> str:
        m = self.metrics
        if "test_samples_total" not in m:
            return f"at most {self.config.get('trainer.limit_eval_batches')} test batches (not counted by this run)"
        return subset_phrase(m)


def is_run_dir(path: Path) -> bool:
    return (path / "metrics.json").is_file() or (path / ".hydra").is_dir() or (path / "run.log").is_file()


def is_bench_dir(path: Path) -> bool:
    """A folder ``python -m symtime_repro.bench`` wrote: bench.json, or (a bench still running or
    killed) Hydra's record of a job named ``bench``."""
    if (path / BENCH_FILE).is_file():
        return True
    try:
        hydra = yaml.safe_load((path / ".hydra" / "hydra.yaml").read_text())
        return hydra["hydra"]["job"]["name"] == "bench"
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        return False


def find_run_dirs(root: Path) -> list[Path]:
    """Every run dir (bench dirs included) at or below ``root``, in path order. A run dir is not
    searched further, and hidden folders (``.hydra``) and our own ``plots`` are skipped."""
    if is_run_dir(root) or is_bench_dir(root):
        return [root]
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if child.name.startswith(".") or child.name == PLOTS_DIR:
            continue
        found.extend(find_run_dirs(child))
    return found


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``: configs compare and print key by key."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def read_metrics(path: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}; delete that run dir or rerun it") from exc
    if not isinstance(metrics, dict):
        raise UserError(f"cannot read {path}: expected one JSON object, found {type(metrics).__name__}")
    return metrics


def read_config(run_dir: Path) -> dict[str, Any]:
    """The config the run ran (its config.yaml); for run dirs older than that file, what Hydra
    composed (in mode=test that holds command-line defaults where the checkpoint decided)."""
    path = next((p for p in (run_dir / RUN_CONFIG, run_dir / ".hydra" / "config.yaml") if p.is_file()), None)
    if path is None:
        return {}
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
    return flatten(config) if isinstance(config, dict) else {}


_LOG_PREFIX = re.compile(r"^(\[[^\]]*\])+\s*")  # "[time][logger][LEVEL] " of run.log lines
_ERROR_LINE = re.compile(r"\berror:|^\w+(Error|Exception|Interrupt)\b", re.IGNORECASE)


def failure_reason(log_text: str) -> str | None:
    """The last error line of a run.log (an ``error:`` line or a traceback's final line), or None
    when the log shows no failure."""
    lines = [_LOG_PREFIX.sub("", line).strip() for line in log_text.splitlines()]
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    if errors:
        return errors[-1]
    if any(line.startswith("Traceback") for line in lines):
        return "Traceback in run.log (no error line after it)"
    return None


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unfinished_status(run_dir: Path) -> tuple[str, str]:
    """(status, reason) of a run dir without metrics.json."""
    log_path = run_dir / "run.log"
    if not log_path.is_file():
        return INCOMPLETE, "no metrics.json and no run.log"
    text = log_path.read_text(errors="replace")
    reason = failure_reason(text)
    if reason is not None:
        return FAILED, reason
    lines = [line for line in text.splitlines() if line.strip()]
    last = f" (last log line: {_shorten(_LOG_PREFIX.sub('', lines[-1]).strip(), 120)})" if lines else ""
    return INCOMPLETE, f"no metrics.json and no error in run.log{last}"


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None and v != ""), None)


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def run_setting(task: str, metrics: dict[str, Any], config: dict[str, Any]) -> str:
    """What varies within a task's table besides the dataset: horizon, mask ratio or M4 pattern."""
    if task == "long_term":
        pred_len = _first(metrics.get("pred_len"), config.get("task.pred_len"))
        return f"pred_len={pred_len}" if pred_len is not None else "pred_len=?"
    if task == "imputation":
        ratio = _first(metrics.get("mask_ratio"), config.get("task.mask_ratio"))
        return f"mask_ratio={float(ratio):g}" if ratio is not None else "mask_ratio=?"
    if task == "short_term":
        return str(_first(metrics.get("seasonal_pattern"), config.get("dataset.seasonal_pattern")) or "")
    return ""


def read_run(run_dir: Path, root: Path) -> Run:
    metrics_path = run_dir / "metrics.json"
    config = read_config(run_dir)
    if metrics_path.is_file():
        metrics = read_metrics(metrics_path)
        status, reason = str(metrics.get("status") or COMPLETED), ""
        if status != COMPLETED:
            reason = str(metrics.get("reason") or metrics.get("error") or f"metrics.json says status {status!r}")
    else:
        metrics = {}
        status, reason = unfinished_status(run_dir)
    task = str(_first(metrics.get("task"), config.get("task.name")) or "")
    if task not in TASK_METRICS and isinstance(metrics.get("test_metrics"), list):
        _RECORDED_METRICS[task] = tuple(str(m) for m in metrics["test_metrics"])
    name = run_dir.relative_to(root).as_posix() if run_dir != root else run_dir.name
    return Run(path=run_dir, name=name, status=status, reason=reason, task=task,
               dataset=str(_first(metrics.get("dataset"), config.get("dataset.name")) or ""),
               setting=run_setting(task, metrics, config),
               seq_len=_as_int(_first(metrics.get("seq_len"), config.get("task.seq_len"))),
               seed=_as_int(_first(metrics.get("seed"), config.get("seed"))),
               metrics=metrics, config=config)


@dataclass(frozen=True)
class Bench:
    """A folder of ``python -m symtime_repro.bench``: listed on its own, never as a run."""

    path: Path
    name: str
    result: dict[str, Any]  # bench.json, {} while running or after a failure


def read_bench(path: Path, root: Path) -> Bench:
    name = path.relative_to(root).as_posix() if path != root else path.name
    result = read_metrics(path / BENCH_FILE) if (path / BENCH_FILE).is_file() else {}
    return Bench(path, name, result)


def collect(root: Path) -> tuple[list[Run], list[Bench]]:
    """Every run and every bench below ``root``; a UserError when the folder is missing or holds neither."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"no such folder: {root}")
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; give a run dir or a sweep dir")
    found = find_run_dirs(root)
    if not found:
        raise UserError(f"no run dirs under {root} (a run dir holds metrics.json, run.log or .hydra/); "
                        "give the folder a run or a sweep wrote (hydra.run.dir / hydra.sweep.dir)")
    benches = [read_bench(path, root) for path in found if is_bench_dir(path)]
    runs = [read_run(path, root) for path in found if not is_bench_dir(path)]
    return runs, benches


def collect_runs(root: Path) -> list[Run]:
    """Every run below ``root`` (bench folders left out)."""
    return collect(root)[0]


# ----------------------------------------------------------------------------------------------
# Published reference values


@dataclass(frozen=True)
class Reference:
    task: str
    dataset: str
    setting: str
    metric: str
    value: float
    source: str

    @property
    def is_average(self) -> bool:
        """The paper's figure gives averages over datasets (setting ``avg``), not per-dataset values."""
        return self.setting.strip().lower() == "avg"


def load_references(folder: Path = DEFAULT_REFERENCE_DIR) -> list[Reference]:
    """Reference values from every CSV in ``folder`` with the columns task, dataset, setting,
    metric, value, source (others, like the hyperparameter table, are not results and are skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--reference {folder}: no such folder")
    references: list[Reference] = []
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if not REFERENCE_COLUMNS <= set(reader.fieldnames or ()):
                continue
            for line, row in enumerate(reader, start=2):
                try:
                    value = float(row["value"])
                except ValueError as exc:
                    raise UserError(f"{path} line {line}: value {row['value']!r} is not a number") from exc
                references.append(Reference(row["task"].strip(), row["dataset"].strip(), row["setting"].strip(),
                                            row["metric"].strip(), value, row["source"].strip()))
    if not references:
        raise UserError(f"--reference {folder}: no CSV with columns {', '.join(sorted(REFERENCE_COLUMNS))}")
    return references


_SETTING_FIELD = re.compile(r"(\w+)=([^\s()]+)")


def setting_fields(setting: str) -> dict[str, str]:
    """``"pred_len=96 (seq_len=96)"`` → ``{"pred_len": "96", "seq_len": "96"}``."""
    return dict(_SETTING_FIELD.findall(setting))


def _same_value(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)  # "0.5" and "0.50" are one mask ratio
    except ValueError:
        return a.strip().lower() == b.strip().lower()


def setting_matches(ours: str, seq_len: int | None, reference: str) -> bool:
    """A reference setting matches when each of its ``key=value`` fields equals ours (seq_len
    included, where the reference names one); a setting without fields (an M4 pattern) must be
    the same word."""
    wanted = setting_fields(reference)
    if not wanted:
        return ours.strip().lower() == reference.strip().lower()
    have = setting_fields(ours)
    if seq_len is not None:
        have.setdefault("seq_len", str(seq_len))
    return all(key in have and _same_value(have[key], value) for key, value in wanted.items())


def find_reference(references: Iterable[Reference], task: str, dataset: str, setting: str,
                   seq_len: int | None, metric: str) -> Reference | None:
    for ref in references:
        if (not ref.is_average and ref.task == task and ref.metric == metric
                and ref.dataset.lower() == dataset.lower() and setting_matches(setting, seq_len, ref.setting)):
            return ref
    return None


# ----------------------------------------------------------------------------------------------
# Aggregation


def metric_value(run: Run, metric: str) -> float | None:
    """A test metric of a run in the report's unit (percent for classification and anomaly)."""
    value = run.metrics.get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value) * 100.0 if run.task in PERCENT_TASKS else float(value)


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n − 1); no std for a single run."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def run_fingerprint(run: Run) -> dict[str, Any]:
    """What must agree for runs to be seeds of one experiment: the composed config minus the seed
    and keys that don't change results; runs without .hydra/ fall back to metrics.json fields."""
    if run.config:
        return {k: v for k, v in run.config.items() if k not in IGNORED_CONFIG_KEYS}
    keys = ("model", "mode", "pretrained", "ckpt", "device", "seq_len", "pred_len")
    return {k: run.metrics.get(k) for k in keys}


@dataclass
class Group:
    """Runs that differ only in seed: one table row."""

    task: str
    dataset: str
    setting: str
    seq_len: int | None
    runs: list[Run]
    variant: str = ""  # the config keys telling apart groups with the same dataset and setting
    stats: dict[str, tuple[float, float | None, int]] = field(default_factory=dict)
    references: dict[str, Reference] = field(default_factory=dict)

    def difference(self, metric: str) -> float | None:
        if metric in self.stats and metric in self.references:
            return self.stats[metric][0] - self.references[metric].value
        return None

    @property
    def subset(self) -> bool:
        return self.runs[0].subset  # one group never mixes subset and full tests (group_runs' key)

    @property
    def reevaluation(self) -> bool:
        return self.runs[0].reevaluation

    @property
    def comparable(self) -> bool:
        return self.runs[0].comparable  # group_runs' key keeps apart what compares and what does not

    @property
    def note(self) -> str:
        """What the row is, where it is not a full-test training run."""
        notes = []
        if self.reevaluation:
            ckpts = sorted({str(_first(r.metrics.get("ckpt"), r.config.get("ckpt")) or "?") for r in self.runs})
            shown = ", ".join("/".join(Path(c).parts[-3:]) for c in ckpts[:2]) + (", …" if len(ckpts) > 2 else "")
            notes.append(f"re-evaluation (mode=test) of {shown}")
        if self.runs[0].transfer:
            trained = sorted({str(r.metrics.get("trained_on")) for r in self.runs})
            notes.append(f"transfer evaluation: a model trained on {', '.join(trained)}; not compared with references")
        if self.subset:
            phrases = sorted({r.subset_phrase for r in self.runs})
            notes.append(f"subset test: {phrases[0] if len(phrases) == 1 else 'a sample of the test set'} "
                         "(trainer.limit_eval_batches); not compared with references")
        return "; ".join(notes)


def _fingerprint_key(fingerprint: dict[str, Any]) -> str:
    return json.dumps(fingerprint, sort_keys=True, default=str)


def variant_labels(fingerprints: Sequence[dict[str, Any]], limit: int = 4) -> list[str]:
    """For groups sharing a dataset and setting, a short ``key=value`` label per group naming the
    config keys whose values differ (so two rows for ETTh1 pred_len=96 say why they are two)."""
    if len(fingerprints) < 2:
        return [""] * len(fingerprints)
    keys = sorted({k for fp in fingerprints for k in fp})
    differing = [k for k in keys if len({json.dumps(fp.get(k, "?"), default=str) for fp in fingerprints}) > 1]
    labels = []
    for fp in fingerprints:
        parts = [f"{k}={fp.get(k, '?')}" for k in differing]
        labels.append(", ".join(parts[:limit]) + (", …" if len(parts) > limit else ""))
    return labels


def _setting_sort_key(setting: str) -> tuple:
    if setting.lower() in M4_PATTERN_ORDER:
        return (0, M4_PATTERN_ORDER.index(setting.lower()), "")
    numbers = [float(v) for v in setting_fields(setting).values() if re.fullmatch(r"[-+0-9.eE]+", v)]
    return (1, numbers[0] if numbers else math.inf, setting)


def group_runs(runs: Iterable[Run], references: Sequence[Reference]) -> list[Group]:
    """Completed runs grouped by (task, dataset, setting, config without seed), with each metric's
    mean ± std and the matching reference values."""
    buckets: dict[tuple, list[Run]] = {}
    fingerprints: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        if not run.completed:
            continue
        fingerprint = run_fingerprint(run)
        # Subset tests and re-evaluations are never pooled with full-test training runs, whatever
        # the config files say (old run dirs lack config.yaml).
        key = (run.task, run.dataset, run.setting, run.seq_len,
               _fingerprint_key({**fingerprint, "subset test": run.subset, "re-evaluation": run.reevaluation,
                                 "trained on": run.metrics.get("trained_on") if run.transfer else None}))
        buckets.setdefault(key, []).append(run)
        fingerprints[key] = fingerprint

    groups: dict[tuple, Group] = {}
    for key, members in buckets.items():
        task, dataset, setting, seq_len, _ = key
        group = Group(task, dataset, setting, seq_len, sorted(members, key=lambda r: (r.seed is None, r.seed, r.name)))
        for metric in metric_names(task):
            values = [v for v in (metric_value(r, metric) for r in members) if v is not None]
            if values:
                mean, std = mean_std(values)
                group.stats[metric] = (mean, std, len(values))
            ref = find_reference(references, task, dataset, setting, seq_len, metric) if group.comparable else None
            if ref is not None:
                group.references[metric] = ref
        groups[key] = group

    # Label groups that would otherwise be two indistinguishable rows.
    same_row: dict[tuple, list[tuple]] = {}
    for key in groups:
        same_row.setdefault(key[:4], []).append(key)
    for keys in same_row.values():
        for key, label in zip(keys, variant_labels([fingerprints[k] for k in keys])):
            groups[key].variant = label

    task_rank = {t: i for i, t in enumerate(TASK_ORDER)}
    return sorted(groups.values(), key=lambda g: (task_rank.get(g.task, len(task_rank)), g.task, g.dataset.lower(),
                                                  _setting_sort_key(g.setting), g.seq_len or 0, g.variant))


@dataclass
class PaperAverage:
    """A paper average (over datasets the figure does not name) beside the mean of our rows."""

    reference: Reference
    ours: float | None
    rows: list[str]  # "dataset setting" of each of our rows in the mean

    @property
    def difference(self) -> float | None:
        return None if self.ours is None else self.ours - self.reference.value

    @property
    def note(self) -> str:
        # The figure never names its datasets (nor, for M4, how patterns are weighted), so the two
        # numbers are never the same average; say what each one is.
        shown = ", ".join(self.rows[:8]) + (f", … ({len(self.rows)} rows)" if len(self.rows) > 8 else "")
        return (f"not like-for-like: the paper's {self.reference.dataset}; ours is the plain mean of our "
                f"{len(self.rows)} row(s): {shown or 'none'}")


def averaged_groups(groups: Sequence[Group]) -> list[Group]:
    """The rows "ours" averages beside the paper: full tests only, and a re-evaluation only where no
    training run covers its dataset and setting (else one model would count twice)."""
    trained = {(g.task, g.dataset, g.setting, g.seq_len) for g in groups if not g.reevaluation and g.comparable}
    return [g for g in groups if g.comparable
            and (not g.reevaluation or (g.task, g.dataset, g.setting, g.seq_len) not in trained)]


def paper_averages(task: str, groups: Sequence[Group], references: Sequence[Reference]) -> list[PaperAverage]:
    found = []
    for ref in references:
        if not (ref.is_average and ref.task == task):
            continue
        used = [g for g in averaged_groups(groups) if g.task == task and ref.metric in g.stats]
        ours = statistics.fmean(g.stats[ref.metric][0] for g in used) if used else None
        found.append(PaperAverage(ref, ours, [" ".join(filter(None, (g.dataset, g.setting, g.variant))) for g in used]))
    return found


# ----------------------------------------------------------------------------------------------
# Rendering


def decimals(task: str, metric: str) -> int:
    """Digits as the references publish them: 2 for percentages, 3 for M4 scores, 4 for MSE/MAE."""
    if task in PERCENT_TASKS:
        return 2
    return 3 if task == "short_term" else 4


def fmt(value: float | None, digits: int, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_mean_std(stat: tuple[float, float | None, int] | None, digits: int) -> str:
    if stat is None:
        return "–"
    mean, std, _ = stat
    return fmt(mean, digits) if std is None else f"{fmt(mean, digits)} ± {fmt(std, digits)}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def task_section(task: str, groups: Sequence[Group], references: Sequence[Reference]) -> str:
    metrics = metric_names(task)
    with_reference = [m for m in metrics if any(m in g.references for g in groups)]
    show_seq_len = task == "long_term"
    show_variant = any(g.variant for g in groups)
    show_note = any(g.note for g in groups)
    header = ["dataset", "setting"] + (["seq_len"] if show_seq_len else []) + (["variant"] if show_variant else [])
    header += ["n"] + list(metrics)
    for metric in with_reference:
        header += [f"ref {metric}", f"Δ {metric}"]
    header += ["note"] if show_note else []
    rows = []
    for g in groups:
        row = [g.dataset, g.setting] + ([g.seq_len if g.seq_len is not None else "?"] if show_seq_len else [])
        row += [g.variant] if show_variant else []
        row += [len(g.runs)] + [fmt_mean_std(g.stats.get(m), decimals(task, m)) for m in metrics]
        for metric in with_reference:
            ref, digits = g.references.get(metric), decimals(task, metric)
            row += [fmt(ref.value if ref else None, digits), fmt(g.difference(metric), digits, signed=True)]
        row += [g.note] if show_note else []
        rows.append(row)

    unit = (" Metrics in percent: our fractions × 100, the unit the references publish."
            if task in PERCENT_TASKS else "")
    marks = ""
    if any(g.subset for g in groups):
        marks += (" Rows noted *subset test* scored only a sample of the test set (trainer.limit_eval_batches): "
                  "they are not compared with reference numbers nor counted in the averages below.")
    if any(r.transfer for g in groups for r in g.runs):
        marks += (" Rows noted *transfer evaluation* test a model trained on another dataset: they are not compared "
                  "with reference numbers nor counted in the averages below.")
    if any(g.reevaluation for g in groups):
        marks += (" Rows noted *re-evaluation* test a checkpoint again (mode=test): n counts evaluations of the same "
                  "weights, not trained seeds, and such a row counts in the averages below only where no training "
                  "row has its dataset and setting.")
    parts = [f"## {task}", "",
             f"Test metrics, mean ± sample std over runs that differ only in seed (n runs).{unit} "
             f"Δ = ours − reference.{marks}", "", markdown_table(header, rows), ""]
    if not with_reference:
        parts += ["No per-dataset reference value matches these rows.", ""]

    averages = paper_averages(task, groups, references)
    if averages:
        avg_rows = []
        for avg in averages:
            digits = decimals(task, avg.reference.metric)
            avg_rows.append([f"paper: {avg.reference.dataset}", avg.reference.metric, fmt(avg.reference.value, digits),
                             fmt(avg.ours, digits), fmt(avg.difference, digits, signed=True), avg.note])
        header = ["paper averages", "metric", "paper", "ours (mean of rows)", "Δ", "note"]
        parts += ["Paper averages:", "", markdown_table(header, avg_rows), ""]

    sources = sorted({g.references[m].source for g in groups for m in g.references}
                     | {a.reference.source for a in averages})
    if sources:
        parts += ["Reference sources:", ""] + [f"- {s}" for s in sources] + [""]
    return "\n".join(parts)


def wall_seconds(run: Run) -> float | None:
    """The run's wall time: ``wall_seconds`` where the run recorded it, else train + test time."""
    if isinstance(run.metrics.get("wall_seconds"), (int, float)):
        return float(run.metrics["wall_seconds"])
    parts = [run.metrics.get("train_seconds"), run.metrics.get("test_seconds")]
    numbers = [float(p) for p in parts if isinstance(p, (int, float))]
    return sum(numbers) if numbers else None


def _number(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def device_section(runs: Sequence[Run]) -> str:
    rows = [[r.name, r.task, r.dataset, r.setting, r.seed if r.seed is not None else "?",
             r.metrics.get("device_name") or r.metrics.get("device") or "?",
             _number(r.metrics.get("train_samples_per_second")), _number(r.metrics.get("peak_memory_mb")),
             _number(wall_seconds(r)), r.metrics.get("epochs_run", "?")]
            for r in sorted((r for r in runs if r.completed), key=_run_sort_key)]
    header = ["run", "task", "dataset", "setting", "seed", "device", "train samples/s", "peak MB", "wall s", "epochs"]
    parts = ["## Devices and throughput", ""]
    if not rows:
        return "\n".join(parts + ["No completed run.", ""])
    return "\n".join(parts + ["Wall s is `wall_seconds` where the run recorded it, else train + test seconds.", "",
                               markdown_table(header, rows), ""])


def problems_section(runs: Sequence[Run]) -> str:
    bad = [r for r in runs if not r.completed]
    parts = ["## Failed or incomplete runs", ""]
    if not bad:
        return "\n".join(parts + ["None: every run dir holds a completed metrics.json.", ""])
    rows = [[r.name, r.status, r.task or "?", r.dataset or "?", r.setting, _shorten(r.reason, 300)]
            for r in sorted(bad, key=_run_sort_key)]
    return "\n".join(parts + [markdown_table(["run", "status", "task", "dataset", "setting", "reason"], rows), ""])


def _run_sort_key(run: Run) -> tuple:
    rank = TASK_ORDER.index(run.task) if run.task in TASK_ORDER else len(TASK_ORDER)
    return (rank, run.dataset.lower(), _setting_sort_key(run.setting), run.seed or 0, run.name)


M4_SCORES = "scores.json"  # written by scripts/short_term_forecast.sh: all patterns scored together
M4_SUMMARY_TO_REFERENCE = {"Others": ("M4", "Others"), "Average": ("M4 (average)", "avg")}


def m4_summary_section(root: Path, references: Sequence[Reference]) -> str:
    """The M4 scorer's summary of a short-term sweep (per pattern, "Others", "Average"), beside the
    references that are the same aggregate (the repo's logged "Others", the paper's M4 average)."""
    path = Path(root) / M4_SCORES
    try:
        scores = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    if not isinstance(scores, dict) or not scores:
        return ""
    header = ["group", "series", "smape", "mase", "owa", "reference", "Δ"]
    rows = []
    for group, values in scores.items():
        if not isinstance(values, dict):
            continue
        dataset, setting = M4_SUMMARY_TO_REFERENCE.get(group, ("M4", group))
        found = [f"{r.metric} {r.value:g}" for r in references if r.task == "short_term"
                 and r.dataset.lower() == dataset.lower() and r.setting.lower() == setting.lower()]
        deltas = [f"{r.metric} {values[r.metric] - r.value:+.3f}" for r in references if r.task == "short_term"
                  and r.dataset.lower() == dataset.lower() and r.setting.lower() == setting.lower()
                  and isinstance(values.get(r.metric), (int, float))]
        rows.append([group, values.get("series", ""), *(fmt(values.get(m), 3) for m in ("smape", "mase", "owa")),
                     ", ".join(found), ", ".join(deltas)])
    if not rows:
        return ""
    note = ("Scored together by `python -m symtime_repro.metrics.m4 score` (the official M4 summary: \"Others\" = "
            "Weekly + Daily + Hourly and \"Average\" = all six patterns, weighted by series count), so "
            "these compare like for like with the references beside them.")
    return "\n".join([f"### M4 summary ({path.name})", "", note, "", markdown_table(header, rows), ""])


def bench_section(benches: Sequence[Bench]) -> str:
    """Timings of ``python -m symtime_repro.bench`` found below the folder: not runs, no metrics."""
    if not benches:
        return ""
    rows = []
    for b in sorted(benches, key=lambda b: b.name):
        r = b.result
        if not r:
            rows.append([b.name, "–", "–", "no bench.json (running, killed or failed; see its run.log)", "–", "–", "–",
                         "–"])
            continue
        mfu = r.get("mfu")
        rows.append([b.name, r.get("task", "?"), r.get("dataset", "?"), r.get("device_name") or r.get("device", "?"),
                     _number(r.get("train_samples_per_second")), _number(r.get("eval_samples_per_second")),
                     f"{mfu:.1%}" if isinstance(mfu, (int, float)) else "–", _number(r.get("peak_memory_mb"))])
    header = ["bench", "task", "dataset", "device", "train samples/s", "eval samples/s", "MFU", "peak MB"]
    return "\n".join(["## Benchmarks (python -m symtime_repro.bench)", "",
                      "Timings, not runs: they have no test metrics and are not in the tables above.", "",
                      markdown_table(header, rows), ""])


def render_tables(root: Path, runs: Sequence[Run], groups: Sequence[Group], references: Sequence[Reference],
                  benches: Sequence[Bench] = ()) -> str:
    """Everything but the plots: the part also printed to stdout."""
    counts = {status: sum(r.status == status for r in runs) for status in dict.fromkeys(r.status for r in runs)}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    benched = f"; {len(benches)} bench dir(s), listed apart" if benches else ""
    parts = [f"# SymTime reproduction report: {root}", "",
             f"{len(runs)} run dir(s): {summary or 'none'}{benched}. "
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}.", ""]
    tasks = [t for t in TASK_ORDER if any(g.task == t for g in groups)]
    tasks += sorted({g.task for g in groups} - set(tasks))
    for task in tasks:
        parts.append(task_section(task, [g for g in groups if g.task == task], references))
        if task == "short_term":
            parts.append(m4_summary_section(root, references))
    if not groups:
        parts += ["No completed run: no result table.", ""]
    parts.append(device_section(runs))
    parts.append(problems_section(runs))
    parts.append(bench_section(benches))
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------
# results.csv


def results_fieldnames() -> list[str]:
    metrics = list(dict.fromkeys([*ALL_METRICS, *(m for names in _RECORDED_METRICS.values() for m in names)]))
    fields = ["run_dir", "status", "reason", "task", "dataset", "setting", "seq_len", "seed", "mode", "test_subset",
              "test_samples_scored", "test_samples_total", "unit"]
    fields += metrics
    fields += ["device", "device_name", "train_samples_per_second", "peak_memory_mb", "wall_seconds", "epochs_run"]
    for metric in metrics:
        fields += [f"{metric}_reference", f"{metric}_difference"]
    return fields + ["reference_source"]


def results_rows(runs: Sequence[Run], references: Sequence[Reference]) -> list[dict[str, Any]]:
    """One row per run (failed ones too), metrics in the report's unit, each with the matching
    reference value and ours − reference."""
    rows = []
    for run in sorted(runs, key=_run_sort_key):
        row: dict[str, Any] = {
            "run_dir": run.name, "status": run.status, "reason": run.reason, "task": run.task,
            "dataset": run.dataset, "setting": run.setting, "seq_len": run.seq_len, "seed": run.seed,
            "mode": _first(run.metrics.get("mode"), run.config.get("mode")), "test_subset": run.subset,
            "test_samples_scored": run.metrics.get("test_samples_scored"),
            "test_samples_total": run.metrics.get("test_samples_total"),
            "unit": "percent" if run.task in PERCENT_TASKS and run.completed else "",
            "device": run.metrics.get("device"), "device_name": run.metrics.get("device_name"),
            "train_samples_per_second": run.metrics.get("train_samples_per_second"),
            "peak_memory_mb": run.metrics.get("peak_memory_mb"), "wall_seconds": wall_seconds(run),
            "epochs_run": run.metrics.get("epochs_run"),
        }
        sources = []
        for metric in metric_names(run.task) if run.completed else ():
            value = metric_value(run, metric)
            row[metric] = value
            if not run.comparable:  # a sample of the test set, or another dataset's model: no reference
                continue
            ref = find_reference(references, run.task, run.dataset, run.setting, run.seq_len, metric)
            if ref is not None:
                row[f"{metric}_reference"] = ref.value
                row[f"{metric}_difference"] = None if value is None else value - ref.value
                sources.append(ref.source)
        row["reference_source"] = "; ".join(dict.fromkeys(sources))
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------
# Plots (optional: the report is complete without matplotlib)


def load_matplotlib():
    """matplotlib's Figure class with the file-only Agg backend, or None when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # no display needed; never opens a window
    from matplotlib.figure import Figure

    return Figure


def safe_name(text: str) -> str:
    """A file name from a run's path or a label: letters, digits, '.', '_' and '-' only."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name or "run"


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv as columns of floats (empty cells become NaN)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, cell in row.items():
            try:
                columns.setdefault(key, []).append(float(cell))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(math.nan)
    return columns


def plot_history(Figure, run: Run, path: Path) -> bool:
    from matplotlib.ticker import MaxNLocator

    history = read_history(run.path / "history.csv")
    if not history.get("epoch"):
        return False
    figure = Figure(figsize=(5, 3.2), layout="constrained")
    ax = figure.subplots()
    epochs = history["epoch"]
    shown = []
    for column, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        if column in history:
            ax.plot(epochs, history[column], marker="o", label=label)
            shown += [(e, v) for e, v in zip(epochs, history[column]) if math.isfinite(v)]
    if len(epochs) <= SHORT_HISTORY:
        _label_few_points(ax, shown, len(epochs))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(f"{run.task} {run.dataset} {run.setting} (seed {run.seed})".replace("  ", " "), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(figure, path)
    return True


SHORT_HISTORY = 2  # epochs up to which the loss plot writes the values on its points


def _label_few_points(ax, points: Sequence[tuple[float, float]], epochs: int) -> None:
    """One or two epochs: matplotlib would zoom around the points (ticks 0.945-1.05 for one value);
    write each value on its point and start the loss axis at 0, so the plot reads at a glance."""
    for epoch, value in points:
        ax.annotate(f"{value:.4g}", (epoch, value), textcoords="offset points", xytext=(6, 4), fontsize=8)
    values = [v for _, v in points]
    if values and min(values) >= 0:
        ax.set_ylim(0, max(values) * 1.25 or 1.0)
    ax.set_xlim(0.5, epochs + 0.5)
    ax.set_xticks(range(1, epochs + 1))


def plot_samples(Figure, run: Run, path: Path, windows: int = 3) -> bool:
    """Truth vs prediction on the first test windows, last channel; for imputation the hidden
    points (the only ones scored) are marked."""
    with np.load(run.path / "test_samples.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    truth, pred = arrays["y"], arrays["pred"]
    count = min(windows, truth.shape[0])
    if count == 0:
        return False
    columns = arrays.get("columns")
    channel = str(columns[-1]) if columns is not None and len(columns) else f"channel {truth.shape[-1] - 1}"
    figure = Figure(figsize=(9, 2.4 * count), layout="constrained")
    axes = np.atleast_1d(figure.subplots(count, 1, squeeze=False)[:, 0])
    for i, ax in enumerate(axes):
        if run.task == "imputation":
            steps = np.arange(truth.shape[1])
            ax.plot(steps, truth[i, :, -1], color="black", lw=1, label="truth")
            ax.plot(steps, pred[i, :, -1], color="tab:orange", lw=1, label="prediction")
            if "mask" in arrays:
                hidden = arrays["mask"][i, :, -1].astype(bool)
                ax.scatter(steps[hidden], truth[i, hidden, -1], s=14, facecolors="none", edgecolors="tab:red",
                           label="hidden (scored)")
        else:
            horizon = np.arange(truth.shape[1])
            if "x" in arrays:
                history = arrays["x"][i, :, -1]
                ax.plot(np.arange(-len(history), 0), history, color="gray", lw=1, label="input")
            ax.plot(horizon, truth[i, :, -1], color="black", lw=1, label="truth")
            ax.plot(horizon, pred[i, :, -1], color="tab:orange", lw=1, label="forecast")
            ax.axvline(0, color="gray", ls=":", lw=0.8)
        ax.set_title(f"test window {i}, {channel}", fontsize=9)
        ax.set_xlabel("time step" + ("" if run.task == "imputation" else " (0 = first forecast step)"), fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    figure.suptitle(f"{run.task} {run.dataset} {run.setting} (seed {run.seed})", fontsize=10)
    _save(figure, path)
    return True


def plot_vs_reference(Figure, task: str, groups: Sequence[Group], path: Path) -> bool:
    """Bars: our mean (± std) next to the reference, per dataset/setting with a reference."""
    metrics = [m for m in metric_names(task) if any(m in g.references and m in g.stats for g in groups)]
    if not metrics:
        return False
    figure = Figure(figsize=(max(5.0, 1.2 * len(groups) + 2), 3.2 * len(metrics)), layout="constrained")
    axes = np.atleast_1d(figure.subplots(len(metrics), 1, squeeze=False)[:, 0])
    for ax, metric in zip(axes, metrics):
        shown = [g for g in groups if metric in g.references and metric in g.stats]
        x = np.arange(len(shown))
        ours = [g.stats[metric][0] for g in shown]
        errors = [g.stats[metric][1] or 0.0 for g in shown]
        ax.bar(x - 0.2, ours, width=0.4, yerr=errors, capsize=3, label="ours (mean ± std)")
        ax.bar(x + 0.2, [g.references[metric].value for g in shown], width=0.4, label="reference")
        labels = [f"{g.dataset}\n{g.setting}" + (f"\n{g.variant}" if g.variant else "") for g in shown]
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_ylabel(metric + (" (%)" if task in PERCENT_TASKS else ""))
        ax.grid(axis="y", alpha=0.3)
    # One legend below the plots: inside an axes it covers the bars.
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    figure.suptitle(f"{task}: reproduced vs reference", fontsize=10)
    _save(figure, path)
    return True


def _unique(name: str, taken: set[str]) -> str:
    candidate, counter = name, 2
    while candidate in taken:
        candidate = f"{Path(name).stem}-{counter}{Path(name).suffix}"
        counter += 1
    taken.add(candidate)
    return candidate


def make_plots(out: Path, runs: Sequence[Run], groups: Sequence[Group]) -> str:
    """Write the PNGs into ``<out>/plots/`` and return the report's Plots section (relative links)."""
    Figure = load_matplotlib()
    parts = ["## Plots", ""]
    if Figure is None:
        return "\n".join(parts + [NO_MATPLOTLIB_NOTE, ""])
    plots, taken = out / PLOTS_DIR, set()

    def image(title: str, name: str) -> str:
        return f"![{title}]({PLOTS_DIR}/{name})"

    comparison = []
    for task in dict.fromkeys(g.task for g in groups):
        name = _unique(f"{safe_name(task)}_vs_reference.png", taken)
        if plot_vs_reference(Figure, task, [g for g in groups if g.task == task], plots / name):
            comparison.append(image(f"{task} vs reference", name))
    if comparison:
        parts += ["### Reproduced vs reference", ""] + [line + "\n" for line in comparison]

    ordered = sorted(runs, key=_run_sort_key)
    curves, samples, notes = [], [], []
    for run in ordered:
        if (run.path / "history.csv").is_file():
            name = _unique(f"{safe_name(run.name)}_loss.png", taken)
            if plot_history(Figure, run, plots / name):
                curves.append(f"{run.name}\n\n{image(run.name + ' loss', name)}\n")
        if run.task in ("long_term", "imputation") and (run.path / "test_samples.npz").is_file():
            name = _unique(f"{safe_name(run.name)}_test_windows.png", taken)
            try:
                if plot_samples(Figure, run, plots / name):
                    samples.append(f"{run.name}\n\n{image(run.name + ' test windows', name)}\n")
            except (OSError, ValueError, KeyError, IndexError) as exc:  # a damaged npz must not sink the report
                notes.append(f"- {run.name}: test_samples.npz not plotted ({type(exc).__name__}: {exc})")
    if curves:
        parts += ["### Loss curves", ""] + curves
    if samples:
        parts += ["### Test windows (first 3, last channel)", ""] + samples
    if notes:
        parts += notes + [""]
    if len(parts) == 2:
        parts += ["Nothing to plot (no history.csv, test_samples.npz or reference match).", ""]
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------
# Entry points


@dataclass
class Report:
    markdown_path: Path
    csv_path: Path
    tables: str  # the tables part of report.md, as printed to stdout


def write_report(root: Path, out: Path | None = None, reference_dir: Path = DEFAULT_REFERENCE_DIR) -> Report:
    """Collect the runs below ``root`` and write report.md, results.csv and plots/ into ``out``."""
    root = Path(root)
    references = load_references(reference_dir)  # a bad --reference is reported before any run is read
    runs, benches = collect(root)
    out = Path(out) if out is not None else root
    groups = group_runs(runs, references)
    tables = render_tables(root, runs, groups, references, benches)
    plots = make_plots(out, runs, groups)
    csv_path, md_path = out / "results.csv", out / "report.md"
    write_csv(csv_path, results_rows(runs, references), results_fieldnames())
    atomic_write_bytes(md_path, (tables + "\n" + plots).encode())
    return Report(md_path, csv_path, tables)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m symtime_repro.report",
        description="Summarise run dirs (a run, a sweep, or any folder of them) into report.md, results.csv "
                    "and plots/, beside the published SymTime numbers.")
    parser.add_argument("folder", type=Path, help="a run dir or a folder holding run dirs (e.g. a sweep dir)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the report (default: FOLDER)")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE_DIR,
                        help="folder of reference CSVs (task,dataset,setting,metric,value,source); "
                             "default: the published numbers shipped in symtime_repro/reference")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = write_report(args.folder, args.out, args.reference)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # an unreadable history.csv, an --out we may not write to
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(report.tables)
    print(f"report: {report.markdown_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
