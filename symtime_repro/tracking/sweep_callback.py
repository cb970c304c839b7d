"""A multirun as one MLflow parent run with its jobs as children: a Hydra callback, named in
conf/config.yaml under ``hydra.callbacks.mlflow_sweep``.

``on_multirun_start`` (in the process that runs ``-m``, before any job) creates the parent run and
leaves its id in ``<sweep dir>/mlflow_sweep.json``; each job, in this process or another (joblib,
SLURM), finds it there and tags its own run ``mlflow.parentRunId``. ``on_multirun_end`` closes the
parent with its jobs' outcome; a sweep that ends early (a job failed or was stopped, which ends the
command) is closed on exit instead. Nothing happens unless some job of the sweep has logger.mlflow.

Hydra instantiates callbacks for every command: this module imports neither MLflow nor torch.
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .base import one_line

log = logging.getLogger("symtime_repro.tracking")


def sweep_wants_mlflow(config: DictConfig) -> bool:
    """Whether logger.mlflow is on for the sweep, or for some of its jobs (``logger=none,mlflow``)."""
    if config.get("logger", {}).get("mlflow"):
        return True
    for override in config.hydra.overrides.get("task", []):
        key, _, value = str(override).partition("=")
        if key.lstrip("+~") in ("logger", "logger.mlflow") and ("mlflow" in value or "true" in value.lower()):
            return True
    return False


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.sweep_dir: Optional[Path] = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not sweep_wants_mlflow(config):
            return
        sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        lg = config.logger
        try:
            from .mlflow_tracker import start_sweep_parent

            sweep_dir.mkdir(parents=True, exist_ok=True)
            run_id = start_sweep_parent(sweep_dir, lg.get("tracking_uri"), lg.get("experiment_name", "symtime-repro"),
                                        bool(config.get("resume")), list(config.hydra.overrides.get("task", [])))
        except Exception as exc:  # noqa: BLE001 - the jobs still run, and are tracked as runs of their own
            log.warning("logger.mlflow: could not create the sweep's parent run (%s); each job is tracked as a run "
                        "of its own", one_line(exc))
            return
        self.sweep_dir = sweep_dir
        log.info("logger.mlflow: sweep parent run %s", run_id)
        atexit.register(self._close, False)  # the sweep ended early: on_multirun_end never comes

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.sweep_dir is not None:
            atexit.unregister(self._close)
            self._close(True)

    def _close(self, ended: bool) -> None:
        sweep_dir, self.sweep_dir = self.sweep_dir, None
        if sweep_dir is None:
            return
        try:
            from .mlflow_tracker import finish_sweep_parent

            finish_sweep_parent(sweep_dir, ended)
        except Exception as exc:  # noqa: BLE001
            log.warning("logger.mlflow: could not close the sweep's parent run (%s)", one_line(exc))
