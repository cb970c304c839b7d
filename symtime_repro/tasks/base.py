"""What every task is to the rest of the code: the :class:`Task` protocol the trainer and the run
talk to, :class:`BaseTask` with its optional parts, and small pieces tasks share."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..metrics.mean_errors import MeanErrors
from ..metrics.merge import merge_states


@dataclass
class Splits:
    """The three datasets of a run and the facts derived from the data (``enc_in`` ...)."""

    train: Dataset
    val: Dataset
    test: Dataset
    info: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    name: str
    monitor: tuple[str, str]  # (metric name from evaluate(), "min" or "max") for early stopping
    sample_unit: str  # what one test sample is, in words ("windows", "series", "cases")

    def datasets(self) -> Splits:
        """Load and check the data (fail here, before any work, on bad input)."""

    def build_model(self, splits: Splits) -> nn.Module:
        """The network for this task, sized from the data."""

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar loss of one training batch (already on the device)."""

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Metrics over a split; must include ``loss`` and the ``monitor`` metric.

        A task that can be evaluated in shares (under torchrun every process scores a contiguous run
        of whole batches) defines instead, and BaseTask's ``evaluate`` combines them:

        * ``evaluation_state(model, batches) -> dict``: what its share of the batches adds up to,
          host-side (sums and counts as numbers, per-sample values as arrays; the merge rule is
          symtime_repro/metrics/merge.py). ``batches`` may carry where the share starts in the split
          (:func:`share_start`), for what depends on global positions (seeded masks, plot windows);
        * ``metrics_from(state) -> dict``: the metrics of a merged state (run once, on process 0);
        * optionally ``test_state(model, splits, batches_for)`` and ``test_metrics(state)`` for the
          test (BaseTask: the same two on the test split); ``test_metrics`` also keeps, from the
          merged state, what :meth:`save_test_outputs` writes.

        A task with ``evaluate`` alone still works: under torchrun process 0 then evaluates the whole
        split and the others wait."""

    def test_metric_names(self) -> tuple[str, ...]:
        """The metrics.json keys this task reports: ``task.metrics`` of its YAML (docs/contract.md)."""

    def resolve(self, splits: Splits):
        """The run's config with what the task derived filled in (M4 horizons, UEA lengths, the
        dataset's anomaly ratio): a new object, the caller's is left as it was. Call after
        :meth:`datasets`; the run records and sizes everything from this one."""

    def test(self, model: nn.Module, splits: Splits, batches_for) -> dict[str, Any]:
        """Test metrics (BaseTask: evaluate() on the test split)."""

    def save_test_outputs(self, run_dir) -> Optional[dict[str, Any]]:
        """Called after the test evaluation; write extra files (optional, see BaseTask). What it
        returns (file paths, a command) is added to metrics.json."""

    def closing_note(self, outputs: dict[str, Any]) -> str:
        """Lines printed under the run's result table, given what save_test_outputs returned."""


class BaseTask:
    """Defaults for the optional parts of :class:`Task`. ``self.cfg`` is the run's config as this
    task resolved it: a task that derives a value replaces ``self.cfg`` with :func:`with_task`
    (a copy), never edits the config it was given."""

    name = ""
    # The validation metric early stopping watches, and whether lower or higher is better.
    monitor: tuple[str, str] = ("loss", "min")
    # What one test sample is, in words (run tables say "1024 of 2785 test windows").
    sample_unit = "windows"

    @staticmethod
    def validates_on_test(cfg) -> bool:
        """Whether, under ``cfg``, this task's validation split is its test split (an official protocol
        that early-stops on the test set). A hyper-parameter search refuses then: it would tune on the
        test set. Asked of the class, before anything is built."""
        return False

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """The metrics of ``batches``: :meth:`metrics_from` of the task's ``evaluation_state`` (a task
        without one overrides this method; see :meth:`Task.evaluate`)."""
        return self.metrics_from(merge_states([self.evaluation_state(model, batches)]))

    def metrics_from(self, state: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError(f"task {self.name}: evaluation_state without metrics_from")

    def test_state(self, model: nn.Module, splits: Splits,
                   batches_for: Callable[[Dataset], Iterable[dict[str, torch.Tensor]]]) -> dict[str, Any]:
        """This process's share of the test (by default ``evaluation_state`` on the test split)."""
        return self.evaluation_state(model, batches_for(splits.test))

    def test_metrics(self, state: dict[str, Any]) -> dict[str, Any]:
        """Test metrics of the merged test state (by default :meth:`metrics_from`); a task keeps
        here what :meth:`save_test_outputs` writes."""
        return self.metrics_from(state)

    def test(self, model: nn.Module, splits: Splits,
             batches_for: Callable[[Dataset], Iterable[dict[str, torch.Tensor]]]) -> dict[str, Any]:
        """Test metrics in one process: :meth:`test_metrics` of :meth:`test_state`, or for a task
        with ``evaluate`` alone, :meth:`evaluate` on the test split. ``batches_for(dataset)``
        yields a split's batches on the device (anomaly detection also needs the train split)."""
        if shares_evaluation(self):
            return self.test_metrics(merge_states([self.test_state(model, splits, batches_for)]))
        return self.evaluate(model, batches_for(splits.test))

    def save_test_outputs(self, run_dir) -> Optional[dict[str, Any]]:
        """Write task-specific test artefacts (e.g. the M4 forecast CSV) into the run dir; return
        what metrics.json should record of them (None: nothing)."""

    def closing_note(self, outputs: dict[str, Any]) -> str:
        return ""

    def test_metric_names(self) -> tuple[str, ...]:
        return tuple(self.cfg.task.metrics)

    def resolve(self, splits: Splits):
        return self.cfg

    def network(self, enc_in: int, **sizes):
        """The SymTime network with this task's head (``task.head``), sized by the resolved config."""
        from ..models import build_model

        t = self.cfg.task
        return build_model(t.head, enc_in, t.seq_len, t.pred_len, self.cfg.model, **sizes)


def shares_evaluation(task) -> bool:
    """Whether ``task`` evaluates in shares (it has ``evaluation_state``), so that every process
    under torchrun can score its part; else process 0 evaluates everything."""
    return callable(getattr(task, "evaluation_state", None))


def share_start(batches) -> tuple[int, int]:
    """(index of the first sample, index of the first batch) in the split of the share of batches
    ``batches`` holds: what the trainer's batches say, (0, 0) for plain batches (the whole split)."""
    return getattr(batches, "offset", 0), getattr(batches, "batch_offset", 0)


def eval_generator(seed: int, item: int) -> torch.Generator:
    """The generator of evaluation item ``item``'s seeded random draws (imputation: the ``item``-th
    scored window's mask; pre-training: global batch ``item``'s masks), seeded from (``seed``, ``item``)
    alone: the same draws whichever process scores it, under any number of processes, at every
    evaluation."""
    state = np.random.SeedSequence([seed % 2**64, item]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def with_task(cfg, **changes):
    """A copy of the run config ``cfg`` with ``task`` fields changed (``seq_len=…``)."""
    return dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, **changes))


class TestSamples:
    """A few test windows (inputs, truth, prediction) for plots; written as test_samples.npz.

    Consecutive windows overlap almost entirely (stride 1), so the kept ones are spread over the
    test split: windows 0, n/limit, 2n/limit, … of the ``total`` the split holds, taken as the
    batches go by (in order), from window ``offset`` on (a process's share of the split). Kept
    small on purpose: enough to look at, never a copy of the test set. :meth:`state` is what a
    share kept, for the test state; :meth:`from_state` the windows of the merged shares.
    """

    def __init__(self, total: int, limit: int = 4, offset: int = 0) -> None:
        self.wanted = sorted({i * total // limit for i in range(limit)}) if total > 0 else []
        self.seen = offset  # windows passed so far
        self.parts: dict[str, list[np.ndarray]] = {}
        self.index: list[int] = []  # the kept windows' indices in the split

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts.items()}

    def keep(self, **tensors: torch.Tensor) -> None:
        size = next(iter(tensors.values())).shape[0]
        wanted = [i for i in self.wanted if self.seen <= i < self.seen + size]
        rows = [i - self.seen for i in wanted]
        self.seen += size
        if not rows:
            return
        self.index.extend(wanted)
        for key, value in tensors.items():
            picked = value[rows].detach().cpu()
            self.parts.setdefault(key, []).append(picked.numpy() if picked.dtype == torch.bool
                                                  else picked.float().numpy())

    def state(self) -> dict[str, Any]:
        """``{"samples": {key: array, "index": …}}``, or {} when this share kept no window."""
        return {"samples": {**self.arrays, "index": np.asarray(self.index, dtype=np.int64)}} if self.parts else {}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "TestSamples":
        kept = cls(0)
        for key, value in state.get("samples", {}).items():
            if key == "index":
                kept.index = [int(i) for i in value]
            else:
                kept.parts[key] = [value]
        return kept

    def save(self, run_dir, columns: Iterable[str]) -> None:
        if not self.parts:
            return
        import io

        from ..files import atomic_write_bytes

        buffer = io.BytesIO()
        np.savez_compressed(buffer, columns=np.array(list(columns), dtype=str), **self.arrays)
        atomic_write_bytes(Path(run_dir) / "test_samples.npz", buffer.getvalue())


class WindowErrorsTask(BaseTask):
    """What long-term forecasting and imputation share: MSE and MAE over a split's windows (a
    :class:`MeanErrors` state), and a few test windows kept for the report's plots
    (:class:`TestSamples`, written as test_samples.npz with the series' ``columns``).

    A subclass's ``evaluation_state`` adds :meth:`kept_state` to its errors' state and, while
    ``self.keeping`` is set (this process's share of the test), keeps windows in it."""

    samples: Optional[TestSamples] = None  # set by the test: a few windows for the report's plots
    keeping: Optional[TestSamples] = None  # while this process scores its share of the test
    columns: tuple[str, ...] = ()  # the series' columns, set by datasets()

    def kept_state(self) -> dict:
        return self.keeping.state() if self.keeping is not None else {}

    def metrics_from(self, state: dict) -> dict[str, float]:
        result = MeanErrors.result_of(state)
        return {"loss": result["mse"], **result}

    def test_state(self, model: nn.Module, splits: Splits, batches_for) -> dict:
        batches = batches_for(splits.test)
        self.keeping = TestSamples(len(splits.test), offset=share_start(batches)[0])
        try:
            return self.evaluation_state(model, batches)
        finally:
            self.keeping = None

    def test_metrics(self, state: dict) -> dict:
        self.samples = TestSamples.from_state(state)
        return self.metrics_from(state)

    def save_test_outputs(self, run_dir) -> None:
        if self.samples is not None:
            self.samples.save(run_dir, self.columns)
