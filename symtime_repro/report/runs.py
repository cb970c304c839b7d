"""Reading run directories (docs/contract.md): metrics.json, config.yaml or .hydra/, run.log, and
the folders ``python -m symtime_repro.bench`` leaves, which are listed apart and never as runs."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..console import subset_phrase
from ..errors import UserError
from ..files import RUN_CONFIG
from . import task_facts

BENCH_FILE = "bench.json"  # python -m symtime_repro.bench: a timing, not a run
COMPLETED = "completed"
FAILED = "failed"
INCOMPLETE = "running or killed"
PLOTS_DIR = "plots"  # the report's own output folder, never searched for runs


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
        return first_given(self.metrics.get("mode"), self.config.get("mode")) == "test"

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


def shorten(text: str, limit: int = 200) -> str:
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
    last = f" (last log line: {shorten(_LOG_PREFIX.sub('', lines[-1]).strip(), 120)})" if lines else ""
    return INCOMPLETE, f"no metrics.json and no error in run.log{last}"


def first_given(*values: Any) -> Any:
    """The first of ``values`` that is set (None and "" are not): callers list metrics.json's value
    before the config's, since the run recorded what it really used."""
    return next((v for v in values if v is not None and v != ""), None)


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


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
    task = str(first_given(metrics.get("task"), config.get("task.name")) or "")
    task_facts.note_record(task, config, metrics.get("test_metrics"))
    name = run_dir.relative_to(root).as_posix() if run_dir != root else run_dir.name
    return Run(path=run_dir, name=name, status=status, reason=reason, task=task,
               dataset=str(first_given(metrics.get("dataset"), config.get("dataset.name")) or ""),
               setting=task_facts.setting(task, metrics, config),
               seq_len=as_int(first_given(metrics.get("seq_len"), config.get("task.seq_len"))),
               seed=as_int(first_given(metrics.get("seed"), config.get("seed"))),
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


def metric_value(run: Run, metric: str) -> float | None:
    """A test metric of a run in the report's unit (percent where the task's references are)."""
    value = run.metrics.get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value) * 100.0 if task_facts.in_percent(run.task) else float(value)


def wall_seconds(run: Run) -> float | None:
    """The run's wall time: ``wall_seconds`` where the run recorded it, else train + test time."""
    if isinstance(run.metrics.get("wall_seconds"), (int, float)):
        return float(run.metrics["wall_seconds"])
    parts = [run.metrics.get("train_seconds"), run.metrics.get("test_seconds")]
    numbers = [float(p) for p in parts if isinstance(p, (int, float))]
    return sum(numbers) if numbers else None

