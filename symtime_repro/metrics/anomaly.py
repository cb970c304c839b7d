"""Threshold, point adjustment and binary scores of the official anomaly-detection protocol.

The official protocol (SymTime's ``exp/exp_anomaly_detection.py``, as in TSLib):

1. Every window of the train loader and of the test loader is reconstructed; a time step's energy
   is the mean over channels of its squared reconstruction error. The test windows *overlap*
   (step 1 except SMD), and their energies and labels are concatenated window after window: a
   time step is counted up to ``win`` times, once per window that contains it.
2. threshold = ``np.percentile(concat(train_energy, test_energy), 100 - anomaly_ratio)``.
3. pred = energy > threshold, then point adjustment (``utils/tools.py: adjustment``) over the
   concatenation: a run of labelled anomalies with at least one hit is flagged whole. Because the
   runs are those of the concatenated window labels, one true anomaly shows up as many runs.
4. accuracy, precision, recall and F1 (sklearn, ``average="binary"``) on the adjusted predictions.

We keep this by default, overlap included, because the published numbers (the paper's and every
TSLib baseline's) were computed this way and are not comparable with any other protocol; the task
offers non-overlapping scoring as an option (each point once, in time order).

The official adjustment is a Python loop over every point, element by element on numpy arrays
(about 7 s on the 42.7 M points of SMAP's overlapping test windows, 2-core CPU); ``point_adjust``
computes the same result with a few vectorised passes (about 0.3 s), and
``tests/test_anomaly_data.py`` checks it against a transcription of the loop.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError


def threshold(train_energy: np.ndarray, test_energy: np.ndarray, anomaly_ratio: float) -> float:
    """The (100 - ``anomaly_ratio``) percentile of all energies, train and test together.

    Energies are concatenated in their own dtype (float32 from the model), as officially: numpy
    interpolates in that dtype, so upcasting first could move the threshold by one ulp.
    """
    if not 0 < anomaly_ratio < 100:
        raise UserError(f"task.anomaly_ratio is a percent in (0, 100), got {anomaly_ratio}")
    energy = np.concatenate([np.asarray(train_energy).reshape(-1), np.asarray(test_energy).reshape(-1)])
    if energy.size == 0:
        raise UserError("no anomaly energies to threshold: the train and test loaders yielded no windows")
    if not np.isfinite(energy).all():
        raise UserError("anomaly energies hold NaN or inf (the model diverged); "
                        "lower trainer.lr or check the data for extreme values")
    return float(np.percentile(energy, 100 - anomaly_ratio))


def _binary(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise UserError(f"{name} must be a 1-D array of 0/1, got shape {values.shape}")
    if values.dtype != bool and not ((values == 0) | (values == 1)).all():
        raise UserError(f"{name} must hold only 0 and 1, found {np.unique(values)[:5].tolist()}")
    return values.astype(bool)


def point_adjust(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The official ``adjustment(gt, pred)``'s adjusted ``pred``, in O(n), without changing ``pred``.

    The loop flags the whole run of ``gt == 1`` around the first hit in that run (runs with no hit
    and every step outside runs keep their prediction). Its backward fill is
    ``for j in range(i, 0, -1)``, which never reaches index 0: when a run starts at index 0 and its
    first hit is later, ``pred[0]`` stays 0. We reproduce that quirk so scores match to the bit.
    Returns an array of ``pred``'s dtype.
    """
    truth = _binary("gt", gt)
    hits = _binary("pred", pred)
    if truth.shape != hits.shape:
        raise UserError(f"gt and pred differ in length ({truth.size} vs {hits.size})")
    adjusted = hits.copy()
    if truth.any():
        # Run boundaries: starts where gt rises, ends (exclusive) where it falls.
        edges = np.flatnonzero(np.diff(truth.view(np.int8), prepend=np.int8(0), append=np.int8(0)))
        starts, ends = edges[0::2], edges[1::2]
        # OR of hits from each run's start to the next run's start: the gap between runs has
        # gt == 0, so (truth & hits) there is 0 and each value is "does this run hold a hit".
        detected = np.logical_or.reduceat(truth & hits, starts)
        # Flag detected runs with +1 at their start and -1 at their end, then a running sum
        # (runs are disjoint, so the sum is 0 or 1 and int8 cannot overflow).
        marks = np.zeros(truth.size + 1, dtype=np.int8)
        marks[starts[detected]] = 1
        marks[ends[detected]] = -1
        adjusted |= np.cumsum(marks[:-1], dtype=np.int8).astype(bool)
        if truth[0] and not hits[0]:
            adjusted[0] = False  # the official backward fill stops at index 1
    return adjusted.astype(np.asarray(pred).dtype)


def binary_scores(gt: np.ndarray, pred: np.ndarray) -> dict:
    """accuracy, precision, recall, F1 of the positive class (1), as sklearn's ``accuracy_score``
    and ``precision_recall_fscore_support(average="binary")``; a 0/0 ratio is 0 (sklearn's
    default ``zero_division="warn"`` warns and returns 0)."""
    truth = _binary("gt", gt)
    flagged = _binary("pred", pred)
    if truth.shape != flagged.shape:
        raise UserError(f"gt and pred differ in length ({truth.size} vs {flagged.size})")
    if truth.size == 0:
        raise UserError("no test points to score")
    tp = int(np.count_nonzero(truth & flagged))
    fp = int(np.count_nonzero(flagged)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    correct = truth.size - fp - fn

    def ratio(num: int, den: int) -> float:
        return num / den if den else 0.0

    return {
        "accuracy": correct / truth.size,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        # sklearn's form (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp) with b = 1, not 2PR / (P + R).
        "f1": ratio(2 * tp, 2 * tp + fn + fp),
    }
