"""Experiment tracking (``logger=``): MLflow and TensorBoard as views of the run dir, which stays the
record (docs/tracking.md).

* ``base``: the :class:`Tracker` protocol, :class:`Trackers` (the chosen ones as one; a tracker's
  failure is a warning and a note in metrics.json, never the run's), :class:`RunContext`.
* ``mlflow_tracker``, ``tensorboard_tracker``: one tracker each, imported only when chosen.
* ``sweep_callback``: the Hydra callback that makes a multirun one MLflow parent run.

Nothing here loads torch, MLflow or TensorBoard when imported.
"""

from __future__ import annotations

from typing import Any

from .base import FAILED, FINISHED, KILLED, NullTracker, RunContext, Tracker, Trackers

__all__ = ["FAILED", "FINISHED", "KILLED", "NullTracker", "RunContext", "Tracker", "Trackers", "make_tracker"]


def make_tracker(logger: Any, enabled: bool = True) -> Trackers:
    """The trackers ``logger`` (the config's LoggerConfig) chooses; none when ``enabled`` is false
    (processes other than 0 under torchrun). A tracker that cannot even be made is a noted failure."""
    if not enabled or not (logger.mlflow or logger.tensorboard):
        return NullTracker()
    trackers: list = []
    failed: list[tuple[str, Exception]] = []
    if logger.mlflow:
        try:
            from .mlflow_tracker import MlflowTracker

            trackers.append(MlflowTracker(logger.tracking_uri, logger.experiment_name, logger.log_checkpoint))
        except Exception as exc:  # noqa: BLE001 - e.g. a store folder that cannot be made
            failed.append(("mlflow", exc))
    if logger.tensorboard:
        from .tensorboard_tracker import TensorBoardTracker

        trackers.append(TensorBoardTracker())
    composite = Trackers(trackers, step_every=logger.log_every_n_steps)
    for name, exc in failed:
        composite.fail(name, exc, "starting the run")
    return composite
