"""Hyper-parameter search (hydra/sweeper=optuna, hparams_search=<task>) and the report a multirun
writes of itself, on the tiny model and the shipped ETTh1, through the command line as a user runs it.

One 4-trial search is shared by the tests that read it (module fixture); a second command continues
its study. Every trial is a real run: one epoch of two batches, validation on one batch."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, TINY, run_cli

optuna = pytest.importorskip("optuna", reason="the tune extra (pip install -e '.[tune]')")
pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the tune extra (pip install -e '.[tune]')")

SHORTER = {"trainer.epochs": "1", "trainer.limit_train_batches": "2", "trainer.limit_eval_batches": "1",
           "trainer.batch_size": "16",
           "trainer.eval_batch_size": "64"}
# TINY with its training cut to seconds (each key once: Hydra takes one value per key).
FAST = [a for a in TINY if a.split("=", 1)[0] not in SHORTER] + [f"{k}={v}" for k, v in SHORTER.items()]
TASKS = ["long_term", "short_term", "imputation", "classification", "anomaly"]


def search(sweep_dir: Path, storage: str, *extra: str) -> subprocess.CompletedProcess:
    return run_cli(["-m", "task=long_term", "hparams_search=long_term", *FAST, f"hydra.sweep.dir={sweep_dir}",
                    f"hydra.sweeper.storage={storage}", *extra], timeout=600)


def study_of(storage: str, name: str = "long_term_ETTh1_96_24_symtime_tiny"):
    return optuna.load_study(study_name=name, storage=storage)


@pytest.fixture(scope="module")
def first_search(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    storage = f"sqlite:///{root / 'db' / 'optuna.db'}"  # a folder that does not exist yet
    result = search(root / "first", storage, "hydra.sweeper.n_trials=4")
    assert result.returncode == 0, result.stderr[-3000:]
    return root, storage, result


def test_a_four_trial_search_completes_and_optimises_the_validation_loss(first_search):
    root, storage, result = first_search
    trials = study_of(storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    # Each trial's value is its run's best validation loss (never a test metric), and the run ran the
    # values Optuna chose (trainer.batch_size is fixed on the command line, so it is not searched).
    for trial in trials:
        metrics = json.loads((root / "first" / f"{trial.number}_long_term_ETTh1" / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["monitor"] == "loss"
        assert trial.value == metrics["best_val_loss"] != metrics["mse"]
        ran = (root / "first" / f"{trial.number}_long_term_ETTh1" / ".hydra" / "overrides.yaml").read_text()
        assert set(trial.params) == {"trainer.lr", "model.dropout", "model.out_dropout", "model.stride"}
        assert all(f"{k}={v}" in ran for k, v in trial.params.items())
    assert study_of(storage).direction.name == "MINIMIZE"
    # The end of the search: the report of its sweep dir, and the best trial as a ready command.
    assert (root / "first" / "report.md").is_file() and (root / "first" / "results.csv").is_file()
    assert f"report: {root / 'first' / 'report.md'}" in result.stdout and "| long_term |" in result.stdout
    best = study_of(storage).best_trial
    assert f"best: trial {best.number}, validation loss" in result.stdout
    assert (root / "first" / "best_trial.sh").is_file()


def test_the_same_command_continues_the_study_and_its_best_trial_command_reproduces_the_value(first_search):
    root, storage, _ = first_search
    before = [(t.number, t.params, t.value) for t in study_of(storage).trials]
    result = search(root / "second", storage, "hydra.sweeper.n_trials=2")
    assert result.returncode == 0, result.stderr[-3000:]
    study = study_of(storage)
    assert len(study.trials) == 6 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert [(t.number, t.params, t.value) for t in study.trials[:4]] == before  # kept as they were

    script = root / "second" / "best_trial.sh"
    text = script.read_text()
    assert "hparams_search" not in text and "hydra.sweeper" not in text
    rerun = subprocess.run([str(script), f"hydra.run.dir={root / 'best'}"], capture_output=True, text=True,
                           timeout=300, cwd=REPO)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    metrics = json.loads((root / "best" / "metrics.json").read_text())
    # A normal single run (train, then test) of the best trial's values: the same validation loss, bit for
    # bit (fixed seed, two pinned threads).
    assert metrics["mode"] == "train" and "mse" in metrics
    assert metrics["best_val_loss"] == study.best_value


def test_a_failed_trial_is_recorded_as_failed_and_the_study_goes_on(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # Only the stride is searched; with this seed the random sampler draws 0 (refused), 8, 0.
    result = search(tmp_path / "sweep", storage, "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=0",
                    "hydra.sweeper.params=null", "model.stride=choice(8,0)", "hydra.sweeper.n_trials=3")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study_of(storage).trials
    assert [(t.params["model.stride"], t.state.name) for t in trials] == [(0, "FAIL"), (8, "COMPLETE"), (0, "FAIL")]
    assert trials[0].value is None  # no made-up value for a trial that gave none
    # The refused trial's run dir stays, with the reason in its log.
    assert "model.patch_len and model.stride must be positive" in (tmp_path / "sweep" / "0_long_term_ETTh1" /
                                                                  "run.log").read_text()
    assert "best: trial 1" in result.stdout


def test_every_preset_optimises_its_tasks_own_validation_metric_in_the_right_direction():
    from hydra import compose, initialize_config_module

    import symtime_repro.__main__  # noqa: F401  (registers the schema and resolvers)
    from symtime_repro.tasks import task_class

    with initialize_config_module("symtime_repro.conf", version_base="1.3"):
        for task in TASKS:
            cfg = compose("config", overrides=[f"task={task}", f"hparams_search={task}"], return_hydra_config=True)
            sweeper = cfg.hydra.sweeper
            assert sweeper._target_.startswith("hydra_plugins.hydra_optuna_sweeper.")
            assert sweeper.storage.startswith("sqlite:///") and task in sweeper.study_name
            assert "trainer.lr" in sweeper.params and sweeper.params["trainer.lr"].startswith("tag(log")
            assert sweeper.max_failure_rate == 1.0
            metric, mode = task_class(task).monitor
            assert sweeper.direction == {"min": "minimize", "max": "maximize"}[mode], task
            if task == "classification":
                assert (metric, sweeper.direction) == ("accuracy", "maximize")
            if task in ("classification", "short_term"):
                assert cfg.dataset.validation == "holdout"  # the official validation split is TEST
                assert not task_class(task).validates_on_test(cfg)


@pytest.mark.parametrize("args, expected", [
    (["task=classification", "hparams_search=long_term"], "hydra.sweeper.direction=minimize: a search optimises "
                                                          "one value, task classification's validation accuracy"),
    (["task=classification", "hparams_search=classification", "dataset.validation=test"],
     "it would tune on the test set; set dataset.validation=holdout"),
    (["task=short_term", "hparams_search=short_term", "dataset.validation=test"],
     "task short_term validates on its test split here (the official protocol), and a search optimises the "
     "validation loss: it would tune on the test set; set dataset.validation=holdout"),
])
def test_a_search_that_would_be_wrong_is_refused_before_any_trial(tmp_path, args, expected):
    result = run_cli(["-m", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}",
                      f"hydra.sweeper.storage=sqlite:///{tmp_path / 'db' / 'optuna.db'}"])
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0]
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "db").exists()


def test_a_preset_without_multirun_is_one_error_line(tmp_path):
    result = run_cli(["hparams_search=long_term"], tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: hparams_search=long_term is a search of many runs: add -m (python -m "
                                     "symtime_repro -m task=… hparams_search=long_term); docs/search.md")


def test_a_grid_multirun_writes_its_report_into_the_sweep_dir_and_prints_its_table(tmp_path):
    result = run_cli(["-m", "trainer.lr=1e-3,1e-4", *FAST, f"hydra.sweep.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "report.md").is_file() and (tmp_path / "results.csv").is_file()
    assert "| long_term |" in result.stdout and result.stdout.count(f"report: {tmp_path / 'report.md'}") == 1
    assert not (tmp_path / "best_trial.sh").exists()  # not a search


def test_a_report_that_fails_is_a_warning_not_a_failed_sweep(tmp_path, caplog):
    from symtime_repro.sweep_report import report_sweep

    (tmp_path / "0_long_term_ETTh1").mkdir()  # a sweep dir whose job left no metrics.json
    with caplog.at_level(logging.WARNING, logger="symtime_repro"):
        assert report_sweep(tmp_path) is False
    assert "no report for the sweep" in caplog.text and f"python -m symtime_repro.report {tmp_path}" in caplog.text
    assert report_sweep(tmp_path / "never_created") is False  # a sweep that ran nothing: silence


def test_a_search_none_of_whose_trials_completes_ends_with_one_line(tmp_path):
    result = search(tmp_path / "sweep", f"sqlite:///{tmp_path / 'optuna.db'}", "model.stride=0",
                    "hydra.sweeper.n_trials=2")
    assert result.returncode == 3, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == ("error: no trial of the search completed, so there is no best "
                                                      "one; each trial's run.log (in the sweep dir) says why it failed")
    assert [t.state.name for t in study_of(f"sqlite:///{tmp_path / 'optuna.db'}").trials] == ["FAIL", "FAIL"]


def test_a_short_term_search_tunes_on_the_held_out_validation_not_on_the_m4_test(tmp_path):
    """hparams_search=short_term on the shipped M4 Weekly slice: the preset holds each series' last H
    training points out, and each trial's value is their sMAPE, not the test's."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = run_cli(["-m", "task=short_term", "hparams_search=short_term", "dataset.seasonal_pattern=Weekly",
                      *(a for a in FAST if a.split("=", 1)[0] not in ("task.seq_len", "task.pred_len")),
                      f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.sweeper.storage={storage}",
                      "hydra.sweeper.n_trials=2"], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    study = study_of(storage, "short_term_M4_Weekly_symtime_tiny")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    for trial in study.trials:
        run_dir = tmp_path / "sweep" / f"{trial.number}_short_term_M4"
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["monitor"] == "loss"
        assert trial.value == metrics["best_val_loss"] != metrics["smape"]  # validation sMAPE, not the test's
        assert "validation = held out of TRAIN (dataset.validation=holdout)" in (run_dir / "run.log").read_text()
        assert "trainer.epochs" not in trial.params  # typed once on the command line: fixed
    # Its re-run keeps the held-out validation the preset set (the script leaves the preset out).
    script = (tmp_path / "sweep" / "best_trial.sh").read_text()
    assert "hparams_search" not in script and "dataset.validation=holdout" in script


def test_the_best_trials_rerun_types_the_validation_split_its_preset_set():
    from omegaconf import OmegaConf

    from symtime_repro.search import preset_settings, rerun_overrides

    held_out = preset_settings(OmegaConf.create({"dataset": {"validation": "holdout"}}))
    assert held_out == {"dataset.validation": "holdout"}
    assert preset_settings(OmegaConf.create({"dataset": {"validation": "test"}})) == {}  # the default: not typed
    given = ["task=short_term", "hparams_search=short_term", "trainer.lr=1e-3", "hydra.sweeper.n_trials=2"]
    assert rerun_overrides(given, {"trainer.lr": 0.01}, held_out) == [
        "task=short_term", "dataset.validation=holdout", "trainer.lr=0.01"]
    # Typed on the command line already: kept once, where it was.
    assert rerun_overrides([*given, "dataset.validation=holdout"], {}, held_out) == [
        "task=short_term", "trainer.lr=1e-3", "dataset.validation=holdout"]
