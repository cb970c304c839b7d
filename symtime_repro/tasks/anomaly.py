"""Anomaly detection by reconstruction (``task=anomaly dataset=MSL``): SMD, MSL, SMAP, PSM, SWaT.

Protocol of the official ``anomaly_detection.py``: windows of ``seq_len`` (100) steps at the
dataset's official step (SMD 100, others 1) over the train-scaled series; the network reconstructs
each window (MSE loss; validation = the last 20 % of train). Test: the energy of a time step is the
mean over channels of its squared reconstruction error; the threshold is the
(100 - ``anomaly_ratio``) percentile of the train and test energies together; a step is flagged
when its energy exceeds it; point adjustment; accuracy, precision, recall, F1.

Official scoring (``task.test_windows=official``, the default) scores every test window at the
dataset's step and concatenates the windows' steps, so with step 1 each point is counted up to
``seq_len`` times and point adjustment runs over that concatenation, not over the series. That
is what published numbers use, and it is kept so results compare. ``task.test_windows=
non_overlapping`` scores each test point once, in time order (windows at step ``seq_len``): the
series-level protocol, ~``seq_len`` times less work, numbers not comparable with published ones.

Scoring streams: energies are reduced on the device batch by batch and only [batch, seq_len]
float32 comes back to the host (SMAP's ~430 000 overlapping test windows give 43 M energies,
about 170 MB); thresholding and point adjustment are vectorised (symtime_repro/metrics/anomaly.py).
Under torchrun each process scores its share of the batches of both splits, and process 0 alone
gathers the energies (a gather, not an all-gather: those 170 MB go to one process) and computes the
threshold and point adjustment over all of them, in order, as one process would.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..datasets import anomaly
from ..datasets.anomaly import AnomalyWindows
from ..errors import UserError
from ..files import atomic_write_bytes
from ..metrics import anomaly as anomaly_scores
from .base import BaseTask, Splits, share_start, with_task

log = logging.getLogger(__name__)


def step_energy(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """[batch, seq_len] mean squared reconstruction error over channels, per time step."""
    return (model(x).float() - x).square().mean(-1)


class AnomalyDetection(BaseTask):
    name = "anomaly"

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        if cfg.dataset.family != "anomaly":
            raise UserError(f"task=anomaly runs on SMD, MSL, SMAP, PSM or SWaT (e.g. dataset=MSL), "
                            f"not dataset={cfg.dataset.name}")
        ratio = cfg.task.anomaly_ratio if cfg.task.anomaly_ratio is not None else cfg.dataset.anomaly_ratio
        if ratio is None:
            raise UserError(f"no anomaly ratio for dataset={cfg.dataset.name}: set task.anomaly_ratio=<percent>")
        self.cfg = with_task(cfg, anomaly_ratio=ratio, pred_len=0)  # the run records the ratio it used
        self.scored: dict[str, Any] | None = None  # set by the test: what anomaly_scores.npz is made from

    def datasets(self) -> Splits:
        cfg = self.cfg
        series = anomaly.load(cfg.dataset, cfg.data.root)
        window, step = cfg.task.seq_len, cfg.dataset.window_step
        test_step = step if cfg.task.test_windows == "official" else window
        train = AnomalyWindows(series.train, None, window, step)
        val = AnomalyWindows(series.val, None, window, step)
        test = AnomalyWindows(series.test, series.test_labels, window, test_step)
        log.info("anomaly: windows of %d at step %d (test step %d, %s scoring), anomaly ratio %.2f %%", window, step,
                 test_step, cfg.task.test_windows, cfg.task.anomaly_ratio)
        info = {"enc_in": series.train.shape[1], **series.info}
        return Splits(train, val, test, info)

    def build_model(self, splits: Splits) -> nn.Module:
        return self.network(splits.info["enc_in"])

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["x"]
        return nn.functional.mse_loss(model(x).float(), x)

    @torch.inference_mode()
    def evaluation_state(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> dict:
        total, count = None, 0
        for batch in batches:
            energy = step_energy(model, batch["x"]).sum(dtype=torch.float64)
            total = energy if total is None else total + energy
            count += batch["x"].shape[0] * batch["x"].shape[1]
        return {"energy_sum": 0.0 if total is None else total.item(), "points": count}

    def metrics_from(self, state: dict) -> dict[str, float]:
        count = state.get("points", 0)
        return {"loss": state["energy_sum"] / count if count else float("nan")}

    @torch.inference_mode()
    def _energies(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], with_labels: bool):
        energies, labels = [], []
        for batch in batches:
            energies.append(step_energy(model, batch["x"]).cpu().numpy().reshape(-1))
            if with_labels:
                labels.append(batch["labels"].cpu().numpy().reshape(-1))
        energy = np.concatenate(energies) if energies else np.zeros(0, np.float32)
        return energy, (np.concatenate(labels) if labels else np.zeros(0, np.int8))

    def test_state(self, model: nn.Module, splits: Splits,
                   batches_for: Callable[[Any], Iterable[dict[str, torch.Tensor]]]) -> dict[str, Any]:
        """This share's train and test energies (one per window step, in order), the test labels and
        the test windows' start points: the threshold and point adjustment need ALL of them, so
        they run on the merged state (:meth:`test_metrics`)."""
        started = time.perf_counter()
        train_energy, _ = self._energies(model, batches_for(splits.train), with_labels=False)
        test_batches = batches_for(splits.test)
        test_energy, gt = self._energies(model, test_batches, with_labels=True)
        seconds = time.perf_counter() - started
        seq_len = self.cfg.task.seq_len
        test_step = self.cfg.dataset.window_step if self.cfg.task.test_windows == "official" else seq_len
        first, windows = share_start(test_batches)[0], len(test_energy) // seq_len
        scored = np.asarray(getattr(splits.test, "indices", range(len(splits.test))), dtype=np.int64)
        return {"train_energy": train_energy, "energy": test_energy, "label": gt,
                "starts": scored[first:first + windows] * test_step, "seconds": np.array([seconds])}

    def test_metrics(self, state: dict[str, Any]) -> dict[str, Any]:
        train_energy, test_energy, gt = state["train_energy"], state["energy"], state["label"]
        seq_len = self.cfg.task.seq_len
        scored = float(np.max(state["seconds"]))  # the slowest share: the scoring's wall time
        windows = len(test_energy) // seq_len
        log.info("scored %d train + %d test windows in %.1fs (%.0f windows/s)", len(train_energy) // seq_len, windows,
                 scored, (len(train_energy) + len(test_energy)) / seq_len / max(scored, 1e-9))
        threshold = anomaly_scores.threshold(train_energy, test_energy, self.cfg.task.anomaly_ratio)
        pred = (test_energy > threshold).astype(np.int8)
        adjusted = anomaly_scores.point_adjust(gt.astype(np.int8), pred)
        scores = anomaly_scores.binary_scores(gt.astype(np.int8), adjusted)
        val_loss = float(np.mean(test_energy)) if len(test_energy) else float("nan")
        self.scored = {"starts": state["starts"], "energy": test_energy, "label": gt, "pred": pred,
                       "adjusted": adjusted, "threshold": threshold}
        return {**scores, "loss": val_loss, "threshold": float(threshold), "anomaly_ratio": self.cfg.task.anomaly_ratio,
                "test_windows": windows, "scoring": self.cfg.task.test_windows,
                "scoring_seconds": round(scored, 3)}

    def save_test_outputs(self, run_dir) -> None:
        """anomaly_scores.npz, for the report's energy-over-time plot (see :func:`per_point`)."""
        if self.scored is None or not len(self.scored["energy"]):
            return None
        s = self.scored
        time_index, energy, flags = per_point(s["starts"], self.cfg.task.seq_len, s["energy"],
                                              {k: s[k] for k in ("label", "pred", "adjusted")})
        # The points' indices in the test series: saved only when they have gaps (a capped test scored a
        # sample of windows); else they are 0, 1, … and would cost a third of the file (SMD: 1 of 3.5 MB).
        gaps = {"time": time_index} if len(time_index) and time_index[-1] - time_index[0] + 1 != len(time_index) else {}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, start=np.int64(time_index[0]), **gaps, energy=energy, **flags,
                            threshold=np.float64(s["threshold"]), anomaly_ratio=np.float64(self.cfg.task.anomaly_ratio),
                            copies=np.int64(len(s["energy"])), scoring=np.array(self.cfg.task.test_windows))
        atomic_write_bytes(Path(run_dir) / SCORES_FILE, buffer.getvalue())
        return None


SCORES_FILE = "anomaly_scores.npz"


def per_point(starts: np.ndarray, seq_len: int, energy: np.ndarray, flags: dict[str, np.ndarray]):
    """The test scores per point of the test series, in time order: ``(time, energy, flags)``.

    The scoring's own arrays hold one value per (window, step in window): with the official
    overlapping windows (step 1) a point is there up to ``seq_len`` times, 43 M float32 (170 MB) for
    SMAP. A plot over time needs one value per point, so that is what is saved (SMAP: its 427 k test
    points): ``energy[t]`` is the largest energy any window gave point ``time[t]``, so it exceeds the
    threshold exactly when some window flagged the point, and each flag (``label``, ``pred`` = energy >
    threshold, ``adjusted`` = after point adjustment) is set when it is set in any window holding the
    point. With non-overlapping scoring every point is scored once and nothing is reduced. Energies
    stay float32 (as scored) and flags int8; metrics.json's scores come from the full arrays, never these.
    """
    starts = np.asarray(starts, dtype=np.int64)
    span = int(starts[-1]) + seq_len if len(starts) else 0
    windows = len(starts)
    per_window = np.asarray(energy, dtype=np.float32).reshape(windows, seq_len)
    out = np.full(span, -np.inf, dtype=np.float32)
    flagged = {name: np.zeros(span, dtype=np.int8) for name in flags}
    by_window = {name: np.asarray(values, dtype=np.int8).reshape(windows, seq_len) for name, values in flags.items()}
    covered = np.zeros(span, dtype=bool)
    for j in range(seq_len):  # windows start at distinct points: step j of every window is a distinct point
        at = starts + j
        out[at] = np.maximum(out[at], per_window[:, j])
        covered[at] = True
        for name, values in by_window.items():
            flagged[name][at] |= values[:, j]
    time_index = np.flatnonzero(covered)
    return time_index.astype(np.int32), out[time_index], {k: v[time_index] for k, v in flagged.items()}



TASK = AnomalyDetection
