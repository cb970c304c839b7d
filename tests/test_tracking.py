"""logger=mlflow / logger=tensorboard: what a run logs, read back from the real stores (MLflow's SQLite
store through MlflowClient, TensorBoard's event files through EventAccumulator) and compared with the
run dir, which stays the record. Real tiny runs on the shipped ETTh1; one SQLite store for the module
(creating a store's tables costs seconds)."""

from __future__ import annotations

import csv
import json
import logging
import signal

import pytest
import yaml

from conftest import TINY, read_metrics, run_cli

mlflow = pytest.importorskip("mlflow", reason="pip install 'symtime-repro[track]'")
pytest.importorskip("tensorboard", reason="pip install 'symtime-repro[track]'")

from mlflow.tracking import MlflowClient  # noqa: E402

from symtime_repro.tracking import Trackers  # noqa: E402
from symtime_repro.tracking.base import flatten  # noqa: E402
from symtime_repro.tracking.mlflow_tracker import RUN_FILE, params_of, param_limit  # noqa: E402
from symtime_repro.training import Trainer  # noqa: E402

# Few batches: the tracking is under test, not the training.
FAST = [*TINY, "trainer.limit_train_batches=4", "trainer.limit_eval_batches=2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def run_id(run_dir) -> str:
    return json.loads((run_dir / RUN_FILE).read_text())["run_id"]


def history(run_dir) -> list[dict]:
    with open(run_dir / "history.csv") as handle:
        return list(csv.DictReader(handle))


def series(c: MlflowClient, rid: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in c.get_metric_history(rid, key))


def test_mlflow_and_tensorboard_show_what_the_run_dir_holds(tmp_path, store, cli_in_process):
    run_dir = tmp_path / "run"
    assert cli_in_process([*FAST, "logger=[mlflow,tensorboard]", f"logger.tracking_uri={store}",
                           "logger.log_every_n_steps=2", f"hydra.run.dir={run_dir}"]) == 0
    metrics, rows = read_metrics(run_dir), history(run_dir)
    rid = run_id(run_dir)
    assert metrics["tracking"] == {"mlflow": f"run {rid} at {store}", "tensorboard": str(run_dir / "tensorboard")}

    c = client(store)
    run = c.get_run(rid)
    assert run.info.status == "FINISHED"
    # Params: the resolved config (config.yaml) as dotted keys.
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert run.data.params == params_of(config)
    assert run.data.params["trainer.lr"] == "0.0001" and run.data.params["model.name"] == "symtime_tiny"
    tags = run.data.tags
    assert {k: tags[k] for k in ("task", "dataset", "device", "model", "experiment", "seed")} == {
        "task": "long_term", "dataset": "ETTh1", "device": "cpu", "model": "symtime_tiny", "experiment": "none",
        "seed": "2025"}
    assert tags["device_name"] == metrics["device_name"] and tags["run_dir"] == str(run_dir)
    # Per-epoch series equal history.csv; the test metrics equal metrics.json under the same names.
    for key, column in (("train_loss", "train_loss"), ("val_loss", "val_loss"), ("lr", "lr"),
                        ("epoch_seconds", "seconds")):
        assert series(c, rid, key) == [(int(r["epoch"]), float(r[column])) for r in rows], key
    for name in ("mse", "mae", "best_val_loss", "epochs_run", "train_seconds"):
        assert run.data.metrics[name] == metrics[name], name
    artifacts = {a.path for a in c.list_artifacts(rid)}
    assert {"metrics.json", "history.csv", "run.log", "config.yaml", "hydra"} <= artifacts
    assert "checkpoint.pt" not in artifacts  # only with logger.log_checkpoint=true

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    for key in ("train_loss", "val_loss", "lr"):
        assert [(e.step, e.value) for e in events.Scalars(key)] == \
            [(int(r["epoch"]), pytest.approx(float(r[key]), rel=1e-6)) for r in rows], key
    assert [e.step for e in events.Scalars("step/train_loss")] == [2, 4, 6, 8]  # 4 steps an epoch, 2 epochs
    assert events.Scalars("mse")[0].value == pytest.approx(metrics["mse"], rel=1e-6)
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    hparams = events.PluginTagToContent("hparams")
    assert sorted(hparams) == ["_hparams_/experiment", "_hparams_/session_end_info", "_hparams_/session_start_info"]
    started = HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info
    assert started.hparams["trainer.lr"].number_value == pytest.approx(1e-4)
    assert started.hparams["model.name"].string_value == "symtime_tiny"


def test_a_failed_run_is_failed_in_mlflow_with_its_files(tmp_path, store, cli_in_process):
    run_dir = tmp_path / "run"
    assert cli_in_process([*FAST, "trainer.lr=1e12", "logger=mlflow", f"logger.tracking_uri={store}",
                           f"hydra.run.dir={run_dir}"]) == 3
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "failed" and metrics["tracking"]["mlflow"].startswith("run ")
    c = client(store)
    run = c.get_run(run_id(run_dir))
    assert run.info.status == "FAILED"
    assert {"metrics.json", "run.log"} <= {a.path for a in c.list_artifacts(run.info.run_id)}


def test_a_stopped_run_is_killed_and_resume_continues_the_same_mlflow_run(tmp_path, store, cli_in_process):
    from test_faults import signal_self_on_call

    run_dir = tmp_path / "run"
    args = [*FAST, "logger=mlflow", f"logger.tracking_uri={store}", f"hydra.run.dir={run_dir}"]
    with pytest.MonkeyPatch.context() as patch:  # (monkeypatch.undo() would also undo cli_in_process's own)
        signal_self_on_call(patch, Trainer, "evaluate", signal.SIGTERM)  # stops after epoch 1
        assert cli_in_process(args) == 75
    rid = run_id(run_dir)
    c = client(store)
    assert c.get_run(rid).info.status == "KILLED"
    assert series(c, rid, "train_loss")[0][0] == 1

    assert cli_in_process([*args, "resume=true"]) == 0
    assert run_id(run_dir) == rid
    run = c.get_run(rid)
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "true"
    rows = history(run_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert series(c, rid, "train_loss") == [(int(r["epoch"]), float(r["train_loss"])) for r in rows]
    assert run.data.metrics["mse"] == read_metrics(run_dir)["mse"]
    assert len(c.search_runs([run.info.experiment_id], f"tags.run_dir = '{run_dir}'")) == 1  # no second run


def test_a_multirun_is_one_parent_run_with_its_jobs_as_children(tmp_path, store):
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", *FAST, "trainer.epochs=1", "task.pred_len=24,48", "logger=mlflow",
                      f"logger.tracking_uri={store}", f"hydra.sweep.dir={sweep}"])
    assert result.returncode == 0, result.stderr[-3000:]
    parent = json.loads((sweep / "mlflow_sweep.json").read_text())
    c = client(store)
    assert c.get_run(parent["run_id"]).info.status == "FINISHED"
    children = c.search_runs([parent["experiment_id"]], f"tags.mlflow.parentRunId = '{parent['run_id']}'")
    jobs = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())  # the job dirs (the sweep report adds plots/)
    assert len(jobs) == 2 and {r.info.run_id for r in children} == {run_id(job) for job in jobs}
    assert {r.info.status for r in children} == {"FINISHED"}
    assert sorted(r.data.params["task.pred_len"] for r in children) == ["24", "48"]


def test_an_unreachable_server_leaves_the_run_completed_with_one_warning(tmp_path, cli_in_process, monkeypatch,
                                                                         capfd):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    run_dir = tmp_path / "run"
    assert cli_in_process([*FAST, "trainer.epochs=1", "logger=[mlflow,tensorboard]",
                           "logger.tracking_uri=http://127.0.0.1:9", f"hydra.run.dir={run_dir}"]) == 0
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["mse"] > 0
    assert metrics["tracking"]["mlflow"].startswith("failed: MlflowException: API request to http://127.0.0.1:9")
    assert metrics["tracking"]["tensorboard"] == str(run_dir / "tensorboard")  # the other tracker carried on
    err = capfd.readouterr().err
    assert "Traceback" not in err
    warned = [line for line in err.splitlines() if "logger.mlflow" in line]
    assert len(warned) == 1 and "logger.mlflow: tracking failed while starting the run" in warned[0], err[-3000:]
    assert warned[0].count("\n") == 0 and (run_dir / "run.log").read_text().count("tracking failed") == 1


def test_a_tracker_that_fails_mid_run_is_dropped_after_one_warning(caplog):
    class Broken:
        name, wants_steps = "broken", True

        def start(self, context):
            return "ok"

        def log_epoch(self, row):
            raise OSError(28, "No space left on device")

    class Working(Broken):
        name = "working"
        epochs: list = []

        def log_epoch(self, row):
            self.epochs.append(row["epoch"])

    trackers = Trackers([Broken(), Working()], step_every=5)
    trackers.start(None)
    assert trackers.step_every == 5
    with caplog.at_level(logging.WARNING, logger="symtime_repro.tracking"):
        for epoch in (1, 2, 3):
            trackers.log_epoch({"epoch": epoch})
    assert len(caplog.records) == 1 and "logger.broken" in caplog.records[0].getMessage()
    assert trackers.notes == {"broken": "failed: OSError: [Errno 28] No space left on device", "working": "ok"}
    assert Working.epochs == [1, 2, 3]


def test_params_are_dotted_keys_and_long_values_are_cut_to_mlflows_limit():
    config = {"trainer": {"lr": 1e-4}, "task": {"metrics": ["mse", "mae"], "report": {}}, "ckpt": None,
              "note": "x" * (param_limit() + 10)}
    params = params_of(config)
    assert params["trainer.lr"] == "0.0001" and params["task.metrics"] == '["mse", "mae"]'
    assert params["task.report"] == "{}" and params["ckpt"] == "null"
    assert len(params["note"]) == param_limit() and params["note"].endswith("see config.yaml]")
    assert dict(flatten({"a": {"b": {"c": 1}}})) == {"a.b.c": 1}


@pytest.mark.parametrize("args, expected", [
    (["logger=mlfow"], "logger=mlfow is not available; did you mean mlflow?"),
    (["logger=[mlflow,tensorbord]"], "logger=tensorbord is not available; did you mean tensorboard?"),
    (["logger.tracking_url=http://x"], "logger.tracking_url is not a configuration key; did you mean "
                                       "logger.tracking_uri?"),
    (["logger=mlflow", "logger.tracking_uri=localhost:5000"], "logger.tracking_uri='localhost:5000' is not a "
                                                              "tracking URI"),
    (["logger=tensorboard", "logger.log_every_n_steps=-1"], "logger.log_every_n_steps must be >= 0"),
])
def test_a_bad_logger_setting_is_refused_in_one_line(args, expected, tmp_path, cli_in_process, capfd):
    run_dir = tmp_path / "run"
    assert cli_in_process([*FAST, *args, f"hydra.run.dir={run_dir}"]) == 2
    errors = [line for line in capfd.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected in errors[0], errors
    assert not (run_dir / "metrics.json").exists()
