"""``logger=mlflow``: the run as an MLflow run (MLflow's client, ``mlflow-skinny``: ``pip install
'symtime-repro[track]'``). What goes where is in docs/tracking.md; in short:

* params: the resolved config (config.yaml) as dotted keys, values cut to MLflow's length limit;
* tags: task, dataset, mode, device, device_name, model, experiment, seed, framework, git_commit,
  run_dir; ``mlflow.parentRunId`` for a job of a multirun (see :mod:`.sweep_callback`);
* metrics: each history.csv row at step = epoch (``train_loss``, ``val_loss``, ``lr``,
  ``epoch_seconds``), then the numbers of metrics.json under their names there;
* artifacts: metrics.json, history.csv, run.log, config.yaml, Hydra's .hydra/ (as ``hydra/``), plots,
  and checkpoint.pt with ``logger.log_checkpoint=true``;
* status: FINISHED, FAILED (exit 3), KILLED (a signal, exit 75); ``resume=true`` reopens the same
  run, whose id the run dir keeps in ``mlflow_run.json``.

Only the client API is used (no ``mlflow.start_run``): nothing global, so runs of one process (a
sweep's jobs, tests) cannot mix. Imported only when ``logger.mlflow`` is true.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

from ..files import write_json
from .base import SWEEP_FILE, RunContext, epoch_metrics, flatten, result_metrics

log = logging.getLogger(__name__)

RUN_FILE = "mlflow_run.json"  # in the run dir: which MLflow run this run dir is (resume continues it)
DEFAULT_STORE = Path("outputs") / "mlflow.db"  # from where the command runs, made absolute
ARTIFACTS_BESIDE_STORE = "mlartifacts"
FILES = ("metrics.json", "history.csv", "run.log", "config.yaml")
PLOTS = ("*.png", "*.svg", "*.pdf")
# How long one request to a tracking server may take, unless the environment says otherwise: MLflow's
# own defaults (7 retries with back-off, 120 s each) would hold a run up for minutes at a server that
# is down, before the tracker gives up and the run goes on without it.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
QUIET_LOGGERS = ("mlflow", "alembic")  # "Creating initial MLflow database tables…" on every new store


def tracking_uri(configured: Optional[str]) -> str:
    """logger.tracking_uri, else MLFLOW_TRACKING_URI, else an SQLite store at outputs/mlflow.db; a local
    SQLite path is made absolute (a sweep's jobs and a later resume find the same file)."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_STORE}"
    path = sqlite_path(uri)
    if path is not None:
        path = Path(os.path.abspath(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{path}"
    return uri


def sqlite_path(uri: str) -> Optional[Path]:
    """The database file of an ``sqlite:///path`` URI (``sqlite:////abs`` is absolute), else None."""
    if not uri.startswith("sqlite:///") or uri == "sqlite:///:memory:":
        return None
    return Path(uri[len("sqlite:///"):])


def shown_uri(uri: str) -> str:
    """The URI without a password, for logs and metrics.json."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def client_for(uri: str):
    """An MlflowClient for ``uri``, with our request time-outs and MLflow's INFO lines quietened."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(client, name: str, uri: str) -> str:
    """The id of experiment ``name``, created if new; a local SQLite store keeps its artifacts in a
    folder beside the database file (MLflow would otherwise use ./mlruns of wherever it runs)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    path = sqlite_path(uri)
    location = (path.parent / ARTIFACTS_BESIDE_STORE).as_uri() if path is not None else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # another job of a sweep created it just now
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def param_limit() -> int:
    """The longest param value MLflow takes (6000 characters in 2.x/3.x; 500 before)."""
    try:
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
    except ImportError:
        return 500
    return int(MAX_PARAM_VAL_LENGTH)


def params_of(config: Mapping[str, Any]) -> dict[str, str]:
    """The config as MLflow params: dotted keys, values as text, a value past the limit cut short
    with a mark (the whole value is in config.yaml, logged as an artifact)."""
    limit, mark = param_limit(), "...[cut; see config.yaml]"
    params = {}
    for key, value in flatten(config):
        text = "null" if value is None else (json.dumps(value) if isinstance(value, (list, dict)) else str(value))
        params[key[:250]] = text if len(text) <= limit else text[: limit - len(mark)] + mark
    return params


def git_commit() -> Optional[str]:
    """The commit of the source tree this package runs from, when it is a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                              text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def read_json(path: Path) -> Optional[dict]:
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _now_ms() -> int:
    return int(time.time() * 1000)


def log_in_batches(client, run_id: str, metrics=(), params=(), tags=()) -> None:
    """log_batch within MLflow's limits per call (1000 metrics, 100 params, 100 tags)."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        client.log_batch(run_id, metrics=metrics[:1000], params=params[:100], tags=tags[:100])
        metrics, params, tags = metrics[1000:], params[100:], tags[100:]


class MlflowTracker:
    name = "mlflow"
    wants_steps = False  # MLflow gets the per-epoch series; per step is TensorBoard's

    def __init__(self, configured_uri: Optional[str], experiment_name: str, log_checkpoint: bool) -> None:
        self.uri = tracking_uri(configured_uri)
        self.experiment_name = experiment_name
        self.log_checkpoint = log_checkpoint
        self.client = None
        self.run_id: Optional[str] = None
        self.run_dir: Optional[Path] = None

    def start(self, context: RunContext) -> str:
        from mlflow.entities import Metric, Param, RunTag

        self.client = client_for(self.uri)
        self.run_dir = Path(context.run_dir)
        previous = self._previous_run() if context.resume else None
        if previous is not None:
            self.run_id = previous.info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            known, last_epoch = previous.data.params, self._last_epoch()
            log.info("logger.mlflow: resume=true continues MLflow run %s", self.run_id)
        else:
            parent = self._sweep_parent(context.sweep_dir)
            experiment = parent["experiment_id"] if parent else experiment_id(self.client, self.experiment_name,
                                                                               self.uri)
            tags = {**context.tags, "run_dir": str(self.run_dir), "mlflow.source.name": "symtime_repro"}
            commit = git_commit()
            if commit:
                tags.update({"git_commit": commit, "mlflow.source.git.commit": commit})
            if parent:
                tags["mlflow.parentRunId"] = parent["run_id"]
            run = self.client.create_run(experiment, start_time=_now_ms(), tags=tags, run_name=context.run_name)
            self.run_id, known, last_epoch = run.info.run_id, {}, 0
            write_json(self.run_dir / RUN_FILE, {"run_id": self.run_id, "experiment_id": experiment,
                                                 "tracking_uri": self.uri})
        # Params are written once (MLflow refuses to change one): a resumed run adds only new keys.
        params = [Param(k, v) for k, v in params_of(context.config).items() if k not in known]
        # Epochs history.csv has and the tracked run lacks (a resume after a hard kill): the view catches up.
        rows = [row for row in context.history if int(row["epoch"]) > last_epoch]
        metrics = [Metric(k, v, _now_ms(), int(row["epoch"])) for row in rows for k, v in epoch_metrics(row).items()]
        log_in_batches(self.client, self.run_id, metrics=metrics, params=params,
                       tags=[RunTag("resumed", "true")] if previous is not None else [])
        return f"run {self.run_id} at {shown_uri(self.uri)}"

    def _previous_run(self):
        """The MLflow run this run dir was tracked as (``mlflow_run.json``), if it is in this store."""
        previous = read_json(self.run_dir / RUN_FILE)
        if not previous or previous.get("tracking_uri") != self.uri:
            return None
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(previous["run_id"])
        except MlflowException as exc:  # deleted, or a store that was replaced: a new run is the next best view
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise  # an unreachable server: the tracker fails (one warning), the run goes on
            log.warning("logger.mlflow: resume=true found no MLflow run %s at %s (%s); starting a new one",
                        previous["run_id"], shown_uri(self.uri), str(exc).splitlines()[0] if str(exc) else exc)
            return None

    def _last_epoch(self) -> int:
        history = self.client.get_metric_history(self.run_id, "train_loss")
        return max((m.step for m in history), default=0)

    def _sweep_parent(self, sweep_dir: Optional[Path]) -> Optional[dict]:
        """The sweep's parent run (left by the Hydra callback in the sweep dir), if it is in this store."""
        parent = read_json(Path(sweep_dir) / SWEEP_FILE) if sweep_dir is not None else None
        return parent if parent and parent.get("tracking_uri") == self.uri else None

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        now, epoch = _now_ms(), int(row["epoch"])
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, epoch) for k, v in epoch_metrics(row).items()])

    def log_step(self, step: int, values: Mapping[str, float]) -> None:
        pass

    def finish(self, status: str, metrics: Optional[Mapping[str, Any]]) -> None:
        from mlflow.entities import Metric

        try:
            if metrics:
                now, step = _now_ms(), int(metrics.get("epochs_run") or 0)
                log_in_batches(self.client, self.run_id,
                               metrics=[Metric(k, v, now, step) for k, v in result_metrics(metrics).items()])
            self._log_files()
        finally:  # the status even when a file could not be uploaded
            self.client.set_terminated(self.run_id, status=status)

    def _log_files(self) -> None:
        run_dir = self.run_dir
        names = [*FILES, *("checkpoint.pt",)] if self.log_checkpoint else list(FILES)
        for path in [run_dir / n for n in names] + sorted(p for pattern in PLOTS for p in run_dir.glob(pattern)):
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        if (run_dir / ".hydra").is_dir():
            self.client.log_artifacts(self.run_id, str(run_dir / ".hydra"), "hydra")


# -- a multirun's parent run (created and closed by sweep_callback.MlflowSweepCallback) ------------------

def start_sweep_parent(sweep_dir: Path, configured_uri: Optional[str], experiment_name: str, resume: bool,
                       overrides: list[str]) -> str:
    """Create the parent run of a sweep (or reopen it when the sweep is re-run with resume=true) and
    leave its id in ``<sweep dir>/mlflow_sweep.json`` for the jobs, which may run in other processes."""
    uri = tracking_uri(configured_uri)
    client = client_for(uri)
    previous = read_json(sweep_dir / SWEEP_FILE) if resume else None
    if previous and previous.get("tracking_uri") == uri:
        client.update_run(previous["run_id"], status="RUNNING")
        return previous["run_id"]
    experiment = experiment_id(client, experiment_name, uri)
    tags = {"sweep_dir": str(sweep_dir), "sweep_overrides": " ".join(overrides)[:5000],
            "mlflow.source.name": "symtime_repro"}
    commit = git_commit()
    if commit:
        tags.update({"git_commit": commit, "mlflow.source.git.commit": commit})
    run = client.create_run(experiment, start_time=_now_ms(), tags=tags, run_name=f"sweep {sweep_dir.name}")
    write_json(sweep_dir / SWEEP_FILE, {"run_id": run.info.run_id, "experiment_id": experiment, "tracking_uri": uri})
    return run.info.run_id


def finish_sweep_parent(sweep_dir: Path, ended: bool) -> Optional[str]:
    """Close the sweep's parent run: KILLED if a job was stopped by a signal, FAILED if a job failed or
    the sweep ended before its last job, else FINISHED. Returns the status (None: no parent here)."""
    parent = read_json(sweep_dir / SWEEP_FILE)
    if not parent:
        return None
    client = client_for(parent["tracking_uri"])
    children = client.search_runs([parent["experiment_id"]],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent['run_id']}'")
    statuses = {run.info.status for run in children}
    status = ("KILLED" if "KILLED" in statuses else "FAILED" if "FAILED" in statuses or not ended
              else "FINISHED")
    client.set_terminated(parent["run_id"], status=status)
    return status
