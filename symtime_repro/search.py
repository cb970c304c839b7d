"""Hyper-parameter search: ``python -m symtime_repro -m task=<task> hparams_search=<task>``.

Hydra's Optuna sweeper (``hydra/sweeper=optuna``, the ``tune`` extra) asks Optuna for each trial's
values and runs the trial as a job of the multirun; the presets in ``conf/hparams_search/`` say what
each task searches, the direction and where the study is stored (SQLite, so that the same command
continues it and several workers can share it). This module is our side of it:

* :func:`objective`: what a finished trial gives the sweeper, the best value of the validation
  metric the task's early stopping watches (``best_val_<monitor>`` in ``metrics.json``), never a
  test metric; nothing (a failed trial) when the run did not complete.
* :class:`Search`, a Hydra callback (``hydra.callbacks.search`` in conf/config.yaml) that acts only
  under the Optuna sweeper: before the first trial it creates the SQLite file's folder and refuses a
  direction that contradicts the task's metric; when the search ends it writes ``best_trial.sh``
  into the sweep dir (the best trial of the whole study as a normal single run) and prints it.

Nothing here imports torch or Optuna when the module is imported (the CLI loads every callback).
"""

from __future__ import annotations

import logging
import shlex
import sys
from datetime import datetime
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Iterable, Mapping, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .errors import EXIT_USER_ERROR, UserError
from .files import atomic_write_bytes

log = logging.getLogger("symtime_repro")

OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper."  # the plugin's module, in hydra.sweeper._target_
BEST_TRIAL_FILE = "best_trial.sh"
SQLITE = "sqlite:///"
# Optuna's ValueError for the best trial of a study with no completed trial (in memory; SQL storage)
NO_TRIAL_COMPLETED = ("No trials are completed yet.", "Record does not exist.")


def is_search(hydra_cfg: Any) -> bool:
    """Whether this multirun is an Optuna search (``hydra_cfg``: the ``hydra`` node or HydraConfig)."""
    sweeper = hydra_cfg.get("sweeper") if hydra_cfg is not None else None
    return bool(sweeper) and str(sweeper.get("_target_", "")).startswith(OPTUNA_SWEEPER)


def no_trial_completed(exc: BaseException) -> bool:
    """Whether ``exc`` is the Optuna sweeper, at the end of a search, asking for the best trial of a
    study none of whose trials completed."""
    import traceback

    if not isinstance(exc, ValueError) or str(exc) not in NO_TRIAL_COMPLETED:
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return any("hydra_optuna_sweeper" in f.filename for f in frames) and any(f.name == "best_trial" for f in frames)


def objective(metrics: Optional[Mapping[str, Any]]) -> Optional[float]:
    """The value a search optimises for this run: the best validation value of the task's monitored
    metric (``best_val_loss``, or ``best_val_accuracy`` for classification), or None when the run did
    not complete a training epoch (a failed run, ``mode=test``)."""
    if not metrics or metrics.get("status") != "completed" or not metrics.get("epochs_run"):
        return None
    monitor = metrics.get("monitor")
    if not monitor:  # a metrics.json written before "monitor" was recorded: the one other best_val_*
        others = [k for k in metrics if k.startswith("best_val_") and k != "best_val_loss"]
        monitor = others[0][len("best_val_"):] if len(others) == 1 else "loss"
    value = metrics.get(f"best_val_{monitor}")
    return float(value) if isinstance(value, (int, float)) else None


def directions(direction: Any) -> list[str]:
    """``hydra.sweeper.direction`` as names: minimize / maximize (a string, Optuna's enum, or a list)."""
    given = list(direction) if isinstance(direction, Sequence) and not isinstance(direction, str) else [direction]
    return [str(getattr(d, "name", d)).lower() for d in given]


def sqlite_file(storage: Optional[str]) -> Optional[Path]:
    """The file of a ``sqlite:///path`` storage (relative to the current folder), or None."""
    if not storage or not str(storage).startswith(SQLITE):
        return None
    return Path(str(storage)[len(SQLITE):].split("?", 1)[0])


def check_search(config: DictConfig) -> tuple[str, str]:
    """The task's monitored validation metric and the direction that optimises it. A UserError when
    the search would tune on the test set (the task's validation split is its test split under this
    config) or when ``hydra.sweeper.direction`` says otherwise (a study that would keep the worst trials)."""
    from .tasks import task_class  # imports the task's module (torch): only when a search starts

    name = config.task.name
    task = task_class(name, config.task.get("module"))
    metric, mode = getattr(task, "monitor", ("loss", "min"))
    wanted = "maximize" if mode == "max" else "minimize"
    given = directions(config.hydra.sweeper.direction)
    if given != [wanted]:
        raise UserError(
            f"hydra.sweeper.direction={','.join(given)}: a search optimises one value, task {name}'s "
            f"validation {metric} (best_val_{metric} in metrics.json), which is best when "
            f"{'highest' if mode == 'max' else 'lowest'}; set hydra.sweeper.direction={wanted} (the "
            f"hparams_search={name} preset does)")
    if task.validates_on_test(config):
        held_out = OmegaConf.merge(config, {"dataset": {"validation": "holdout"}})
        fix = ("set dataset.validation=holdout (a validation split held out of TRAIN; the hparams_search preset "
               "sets it)"
               if not task.validates_on_test(held_out) else
               "this task has no held-out validation split yet, so it cannot be searched without tuning on the test set")
        raise UserError(f"task {name} validates on its test split here (the official protocol), and a search "
                        f"optimises the validation {metric}: it would tune on the test set; {fix}")
    return metric, wanted


# Settings a preset makes for its trials outside ``hydra:``, with the value a run has without it: the
# validation split a search needs (the official protocols of classification and short_term validate
# on TEST). The re-run of the best trial leaves the preset out, so it types them where they differ.
PRESET_SETTINGS = {"dataset.validation": "test"}


def preset_settings(config: DictConfig) -> dict[str, Any]:
    """The :data:`PRESET_SETTINGS` the search's trials run with, where they are not the default."""
    values = {key: OmegaConf.select(config, key, default=None) for key in PRESET_SETTINGS}
    return {key: value for key, value in values.items() if value is not None and value != PRESET_SETTINGS[key]}


def rerun_overrides(task_overrides: Iterable[str], params: Mapping[str, Any],
                    settings: Optional[Mapping[str, Any]] = None) -> list[str]:
    """The overrides of a single run that repeats a trial: the search command's own (less the search
    itself: ``hparams_search``, Hydra's settings, the dimensions it swept), the preset's
    ``settings`` that the command line did not type, then the trial's values, written as the sweeper
    wrote them for the trial's job."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    kept = []
    for text in task_overrides:
        override = parser.parse_override(text)
        key = override.key_or_group
        if key == "hparams_search" or key.split(".")[0].split("/")[0] == "hydra" or override.is_sweep_override():
            continue
        if key in params:  # a value given on the command line that the trial's own value replaces
            continue
        kept.append(text)
    typed = {parser.parse_override(text).key_or_group for text in kept}
    fixed = [f"{key}={value}" for key, value in (settings or {}).items() if key not in typed and key not in params]
    return kept + fixed + [f"{name}={value}" for name, value in params.items()]


def best_trial_script(overrides: list[str], cwd: str, header: list[str]) -> str:
    command = " ".join(["exec", f'"${{PYTHON:-{sys.executable}}}"', "-m", "symtime_repro",
                        *(shlex.quote(o) for o in overrides), '"$@"'])
    lines = ["#!/usr/bin/env bash", *(f"# {line}" for line in header),
             "# Extra overrides are passed on: ./best_trial.sh hydra.run.dir=outputs/best device=cuda",
             "# (PYTHON=… chooses another interpreter).", "set -euo pipefail", f"cd {shlex.quote(cwd)}", command]
    return "\n".join(lines) + "\n"


def write_best_trial(config: DictConfig) -> Optional[Path]:
    """Write ``best_trial.sh`` into the sweep dir for the best trial of the study so far, print it,
    and return its path (None, with a warning, when the study has no completed trial)."""
    import optuna

    sweeper = config.hydra.sweeper
    if not sweeper.storage:
        log.warning("hydra.sweeper.storage is null: the study lived in memory only, so there is no best_trial.sh "
                    "(its best values are in %s/optimization_results.yaml)", config.hydra.sweep.dir)
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage)
    try:
        best = study.best_trial
    except ValueError:
        log.warning("study %s has no completed trial yet: no best_trial.sh (each trial's run.log says why it "
                    "failed)", sweeper.study_name)
        return None
    metric, direction = check_search(config)
    overrides = rerun_overrides(config.hydra.overrides.task, best.params, preset_settings(config))
    states = [t.state.name for t in study.trials]
    header = [
        f"Best trial of Optuna study {study.study_name} ({sweeper.storage}): trial {best.number}, "
        f"validation {metric} {best.value!r} ({direction}), out of {len(states)} trials "
        f"({states.count('COMPLETE')} complete, {states.count('FAIL')} failed).",
        f"Written {datetime.now():%Y-%m-%d %H:%M:%S} when the search in this folder ended: it re-runs that "
        f"trial as a normal single run (train, then test).",
    ]
    path = Path(str(config.hydra.sweep.dir)) / BEST_TRIAL_FILE
    atomic_write_bytes(path, best_trial_script(overrides, str(config.hydra.runtime.cwd), header).encode())
    path.chmod(path.stat().st_mode | 0o111)
    print(f"study {study.study_name}: {len(states)} trials ({states.count('COMPLETE')} complete, "
          f"{states.count('FAIL')} failed); best: trial {best.number}, validation {metric} {best.value:.6g} "
          f"({direction}): {' '.join(f'{k}={v}' for k, v in best.params.items())}", flush=True)
    print(f"re-run it: {path}", flush=True)
    return path


class Search(Callback):
    """The search's start and end (acts only under hydra/sweeper=optuna; any other multirun or run
    passes through untouched)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_search(config.hydra):
            return
        try:
            check_search(config)  # before any trial or folder: a study that would be wrong is refused outright
        except UserError as exc:
            # Hydra turns a callback's Exception into a warning and goes on; SystemExit passes through.
            print(f"error: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(EXIT_USER_ERROR) from None
        # Optuna's SQL migrations (alembic) log each of their plugins at INFO, under Hydra's own log format.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        database = sqlite_file(config.hydra.sweeper.storage)
        if database is not None and str(database) not in ("", ":memory:"):
            database.parent.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its folder

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_search(config.hydra):
            return
        try:
            write_best_trial(config)
        except Exception as exc:  # the study and the trials are stored; only the ready command is missing
            log.warning("warning: could not write %s into %s (%s: %s); the study is intact in %s", BEST_TRIAL_FILE,
                        config.hydra.sweep.dir, type(exc).__name__, exc, config.hydra.sweeper.storage)
