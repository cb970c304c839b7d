"""Command line: ``python -m symtime_repro task=… dataset=… device=… [experiment=…] [overrides]``.

Hydra composes ``conf/`` into the typed schema of :mod:`symtime_repro.config`; everything else
happens in :func:`symtime_repro.run.run`. A :class:`UserError` ends the run with one line on
stderr and exit status 2, and leaves no ``metrics.json``.
"""

from __future__ import annotations

if __name__ == "__main__":  # `python -m symtime_repro`, before anything heavy is imported:
    from symtime_repro.allocator import restart_with_mimalloc
    from symtime_repro.frameworks import restart_in_framework_venv
    from symtime_repro.preemption import exit_on_signal_while_starting

    exit_on_signal_while_starting()  # a signal while Hydra and torch import is one line too
    restart_in_framework_venv()  # framework=mindspore: the MindSpore venv's python runs this command
    restart_with_mimalloc()  # the re-exec (when mimalloc is installed) then costs only Python's own start

import errno
import logging
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, NoReturn, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from .allocator import restart_with_mimalloc
from .frameworks import restart_in_framework_venv
from .config import register_configs, unknown_key, unknown_option
from .errors import EXIT_PREEMPTED, EXIT_RUN_FAILED, EXIT_USER_ERROR, Preempted, RunFailed, TrialFailed, UserError
from .preemption import StopRequest, requeue_slurm_job
from .search import is_search, no_trial_completed, objective
from .tracking.base import SWEEP_FILE

log = logging.getLogger("symtime_repro")

register_configs()

# What existed before this command where its run dir will be (see existing_dirs); hydra_main removes
# what Hydra created for a run it refuses. A plain object, like _app below, so joblib's workers get it.
_before = SimpleNamespace(anchor=None, depth=0, existed=frozenset())

# Whether Hydra finished composing and called our app: an error before that is the user's override.
# A plain object: under `python -m` joblib's workers receive hydra_main by value, with what it uses.
_app = SimpleNamespace(entered=False)


def app_started() -> None:
    """First call of every Hydra app that :func:`launch` runs: composition is over, so from here on
    an exception is ours (a bug shows its traceback), not the user's override."""
    _app.entered = True


@hydra.main(config_path="pkg://symtime_repro.conf", config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> Optional[float]:
    """One run. Returns the value a search optimises (:func:`symtime_repro.search.objective`: the best
    validation value of the task's monitored metric), None when the run has none.

    Under hydra/sweeper=optuna a refused or failed run raises :class:`TrialFailed` instead of ending
    the process: Hydra records the job as failed, the sweeper the trial, and the study goes on (its
    run dir, run.log included, is kept to say why)."""
    app_started()
    from .run import run  # imported here so `--help` and config errors stay fast

    logging.captureWarnings(True)
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    searching = is_search(hydra_cfg)
    try:
        metrics = run(cfg, run_dir)
    except UserError as exc:
        log.error("error: %s", exc)
        if searching:
            raise TrialFailed(f"refused: {exc}") from None
        remove_refused_run_dir(run_dir)
        sys.exit(EXIT_USER_ERROR)
    except RunFailed as exc:
        log.error("error: %s", exc)
        if searching:
            raise TrialFailed(f"failed: {exc}") from None
        sys.exit(EXIT_RUN_FAILED)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # Every file is written to a temporary name first and renamed when complete, so a full disk
        # leaves the previous checkpoint / metrics as they were.
        log.error("error: no space left on the device writing %s (%s); the files already in %s are intact "
                  "(each is written whole or not at all). Free space and continue with resume=true "
                  "hydra.run.dir=%s", exc.filename or "a file", exc.strerror, run_dir, run_dir)
        sys.exit(EXIT_RUN_FAILED)
    value = objective(metrics)
    if searching and value is None:
        raise TrialFailed(f"the run in {run_dir} ended without a validation value to optimise (a search trains: "
                          f"mode=train, trainer.epochs >= 1)")
    return value


def run_dir_pattern(argv: list[str]) -> str:
    """hydra.run.dir, or for a multirun hydra.sweep.dir/hydra.sweep.subdir, as given (the last
    override wins over conf/config.yaml), ${…} unresolved."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    defaults = OmegaConf.to_container(OmegaConf.load(files("symtime_repro.conf") / "config.yaml").hydra)

    def given(key: str, default: str) -> str:
        values = [a.split("=", 1)[1] for a in argv if a.lstrip("+").split("=", 1)[0] == key]
        return values[-1] if values else default

    if is_multirun(argv):
        return (f"{given('hydra.sweep.dir', defaults['sweep']['dir'])}/"
                f"{given('hydra.sweep.subdir', defaults['sweep']['subdir'])}")
    return given("hydra.run.dir", defaults["run"]["dir"])


def existing_dirs(pattern: str) -> tuple[Path, int, frozenset[Path]]:
    """Where a run dir made from ``pattern`` may lie and what is there now: the anchor (the deepest
    existing folder of the pattern's fixed start: outputs/ for outputs/${task.name}/…), how many
    levels below it the run dir lies, and every folder under it that matches the pattern, level by
    level, now. Whatever this command later finds there and not in the set, it created itself."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if set(part) & set("${}")), len(parts))
    anchor = Path(os.path.abspath(Path(*parts[:fixed]) if fixed else "."))
    rest = parts[fixed:]
    while not anchor.is_dir():  # part of the fixed start is yet to be created
        rest, anchor = (anchor.name, *rest), anchor.parent
    existed, level = {anchor}, [anchor]
    for part in rest:
        if set(part) & set("${}"):  # any name may come of it
            level = [child for folder in level for child in _subdirs(folder)]
        else:
            level = [folder / part for folder in level if (folder / part).is_dir()]
        existed.update(level)
    return anchor, len(rest), frozenset(existed)


def _subdirs(folder: Path) -> list[Path]:
    try:
        return [child for child in folder.iterdir() if child.is_dir()]
    except OSError:
        return []


def remove_refused_run_dir(run_dir: Path) -> None:
    """Remove the run dir Hydra created for a run refused before it began, and the folders above it
    this command created that are now empty, so that a typo leaves nothing in outputs/.

    Never a folder that existed before the command (hydra.run.dir=<a run> resume=true keeps its
    dir), nothing at or above the anchor, and no run dir that holds more than Hydra's own record
    (.hydra/) and the log: a file of the run itself means it began."""
    anchor, existed = _before.anchor, _before.existed
    run_dir = Path(os.path.abspath(run_dir))
    if anchor is None or anchor not in run_dir.parents or run_dir in existed or not run_dir.is_dir():
        return
    if len(run_dir.relative_to(anchor).parts) != _before.depth:
        return  # an interpolation made more or fewer levels than the pattern shows: what existed is unknown
    hydra = HydraConfig.get()
    logs = {Path(h.baseFilename) for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)}
    own = {run_dir / str(hydra.output_subdir), *logs}
    if any(entry not in own for entry in run_dir.iterdir()):
        return
    for handler in logging.getLogger().handlers:  # the log is going away with its folder
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) in own:
            handler.close()
    shutil.rmtree(run_dir, ignore_errors=True)
    sequential = hydra.launcher._target_.endswith(".BasicLauncher")  # no other job of the sweep runs now
    folder = run_dir.parent
    while folder != anchor and folder not in existed:
        left = list(folder.iterdir())
        # A sweep dir that holds only Hydra's multirun.yaml (and the MLflow parent run's id, with
        # logger=mlflow): no job of this sweep has a dir in it.
        if left and not (sequential and {p.name for p in left} <= {"multirun.yaml", SWEEP_FILE}):
            break
        shutil.rmtree(folder, ignore_errors=True)
        folder = folder.parent


def config_groups(argv: Optional[list[str]] = None) -> dict[str, list[str]]:
    """The config groups of conf/ and their options (dataset: [ECL, ETTh1, …]), with those of the
    folders the command adds with ``hydra.searchpath=[…]`` (a task or dataset kept in your project)."""
    from importlib.resources import files

    def options(folder, prefix: str = "") -> list[str]:  # experiment/ nests one level: long_term/ETTh1_96
        found = []
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.name.startswith("_"):
                found += options(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".yaml"):
                found.append(prefix + entry.name[:-5])
        return sorted(found)

    groups: dict[str, set[str]] = {}
    for root in [files("symtime_repro.conf"), *search_path_folders(argv or [])]:
        for group in root.iterdir():
            if group.is_dir() and not group.name.startswith("_"):
                groups.setdefault(group.name, set()).update(options(group))
    return {name: sorted(found) for name, found in groups.items()}


def search_path_folders(argv: list[str]) -> list:
    """The folders of ``hydra.searchpath=[file://…, pkg://…]`` in ``argv`` that exist (Hydra itself
    says what is wrong with one that does not)."""
    from importlib.resources import files

    from hydra.core.override_parser.overrides_parser import OverridesParser

    folders = []
    for arg in argv:
        if not arg.lstrip("+").startswith("hydra.searchpath="):
            continue
        try:
            value = OverridesParser.create().parse_override(arg.lstrip("+")).value()
        except Exception:  # Hydra reports what does not parse
            continue
        for entry in value if isinstance(value, list) else [value]:
            scheme, _, where = str(entry).rpartition("://")
            try:
                folder = files(where) if scheme == "pkg" else Path(where)
            except (ImportError, TypeError):
                continue
            if folder.is_dir():
                folders.append(folder)
    return folders


def describe_config_error(exc: BaseException, argv: Optional[list[str]] = None) -> str:
    """One line for a Hydra/OmegaConf composition error: what is wrong and the valid choices."""
    if not isinstance(exc, (HydraException, OmegaConfBaseException)):  # Hydra's plain ValueError / TypeError
        groups = config_groups(argv)
        for arg in argv or []:
            key, _, value = arg.lstrip("+~").partition("=")
            if key in groups and value not in groups[key]:
                return not_a_name(arg, groups[key])
        return f"cannot compose the configuration from these overrides: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and "/" in exc.missing_cfg_file:
        group, _, choice = exc.missing_cfg_file.rpartition("/")
        return unknown_option(group, choice, sorted(exc.options or [])) or str(exc)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = lines[0] if lines else type(exc).__name__
    if getattr(exc, "override", None):  # an override that does not parse
        message = f"cannot parse override {exc.override!r}: {message}"
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException):
        detail = [line.strip() for line in str(cause).splitlines() if line.strip()]
        if detail:
            message += f": {detail[0]}"
        key = getattr(cause, "full_key", None)
        if key:
            message += f" (key: {key})"
    return message


def not_a_name(arg: str, options: list[str]) -> str:
    return f"{arg}: a config group takes the name of one of its options; choose one of: {', '.join(options)}"


def override_values(value: object) -> list[object]:
    """What an override gives a config group: one value, or each of a sweep's list (a,b or
    choice(a,b)). Interpolations, globs and ranges are left to Hydra."""
    from hydra.core.override_parser.types import ChoiceSweep, Sweep

    if isinstance(value, Sweep) and not isinstance(value, ChoiceSweep):
        return []
    given = value.list if isinstance(value, ChoiceSweep) else [value]
    return [v for v in given if not (isinstance(v, str) and "${" in v)]


def refused_override(argv: list[str]) -> Optional[str]:
    """Why an override names a config group option or a key that does not exist, or None.

    Checked before Hydra starts, so a typo creates no run dir: Hydra skips an unknown
    experiment=<preset> without a word (the defaults list has it as optional) and runs the default
    job, and its own message for an unknown key (trainer.lrr=1) suggests no key."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    groups = {group: options for group, options in config_groups(argv).items() if group != "hydra"}
    parser = OverridesParser.create()
    for arg in argv:
        if arg.startswith("-"):  # -m, --cfg, …; a flag's own value (job) does not parse as an override
            continue
        try:
            override = parser.parse_override(arg)
        except Exception:  # Hydra reports what does not parse, in its own words
            continue
        key = override.key_or_group
        group, _, folder = key.partition("/")  # experiment/long_term=ETTh1_96 is experiment=long_term/ETTh1_96
        if group.split(".")[0] == "hydra":  # Hydra's own settings and launcher plugins: Hydra checks them
            continue
        if group in groups:
            if override.type == OverrideType.DEL:
                continue
            for value in override_values(override.value()):
                # logger=[mlflow,tensorboard]: a group whose options combine takes a list of them.
                chosen = value if isinstance(value, list) and group in COMBINABLE_GROUPS and value else [value]
                for one in chosen:
                    if not isinstance(one, str):  # dataset=[] selects no dataset, and the schema's defaults run
                        return not_a_name(arg, groups[group])
                    problem = unknown_option(group, f"{folder}/{one}" if folder else one, groups[group])
                    if problem:
                        return problem
        elif "/" not in key:
            problem = unknown_key(key)
            if problem:
                return problem
            if override.type == OverrideType.DEL:  # the code reads every key: ~mode fails deep in the run
                return f"{arg}: a configuration key cannot be deleted; set it ({key}=…) instead"
    return None


# Config groups whose options are switches that add up (each sets its own boolean), so that a list
# of them is one choice: logger=[mlflow,tensorboard].
COMBINABLE_GROUPS = ("logger",)

# Launchers that start a fresh Python process for every job (joblib's workers are reused between jobs).
PROCESS_PER_JOB_LAUNCHERS = ("submitit_local", "submitit_slurm")


def is_multirun(argv: list[str]) -> bool:
    return any(a in ("-m", "--multirun") or a == "hydra.mode=MULTIRUN" for a in argv)


def mixed_npu_sweep(argv: list[str]) -> Optional[str]:
    """Why a multirun that mixes device=npu with another device in one process can't run, or None.

    transfer_to_npu patches torch for the whole process and cannot be undone: after an npu job,
    a cpu or cuda job of the same process would silently run on the NPU.
    """
    if not is_multirun(argv):
        return None
    launchers = [a.split("=", 1)[1] for a in argv if a.lstrip("+").split("=", 1)[0] in ("hydra/launcher",
                                                                                       "override hydra/launcher")]
    if launchers and launchers[-1] in PROCESS_PER_JOB_LAUNCHERS:
        return None
    devices: set[str] = set()
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") in ("device", "device.name"):
            devices.update(v.strip() for v in value.split(","))
    if "npu" in devices and len(devices) > 1:
        return (f"a sweep over device={','.join(sorted(devices))} runs its jobs in one process, and device=npu "
                f"patches torch for the whole process (transfer_to_npu cannot be undone), so the other devices' "
                f"jobs would run on the NPU; run one sweep per device, or add hydra/launcher=submitit_local "
                f"(hydra-submitit-launcher), which starts a process per job")
    return None


def launch(hydra_app: Callable[[], None]) -> None:
    """Start a Hydra app the way every command of ours starts: with the fast allocator when it is
    installed, and configuration errors as one line (exit 2) instead of Hydra's screen of text."""
    # HYDRA_FULL_ERROR=1 makes Hydra raise them to us instead of printing (a user's own setting wins).
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    restart_in_framework_venv()  # framework=mindspore typed in the usual venv: its own venv runs the command
    restart_with_mimalloc()  # returns unless mimalloc is installed and not yet preloaded
    _app.entered = False
    refusal = refused_override(sys.argv[1:])
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    try:
        # SIGTERM / SIGINT from here on end the command with status 75 and one line; a run replaces
        # this with its own handling while it lasts (training saves at the next step boundary).
        with StopRequest():
            hydra_app()
    except Preempted as exc:
        log.warning("%s", exc)
        requeue_slurm_job()
        sys.exit(EXIT_PREEMPTED)
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"error: {describe_config_error(exc)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except BrokenPipeError:  # `--help | head`: the reader has gone; say nothing more (Python's own recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except (ValueError, TypeError) as exc:
        if no_trial_completed(exc):  # the Optuna sweeper asks for the best trial of a study with none
            print("error: no trial of the search completed, so there is no best one; each trial's run.log (in the "
                  "sweep dir) says why it failed", file=sys.stderr)
            sys.exit(EXIT_RUN_FAILED)
        if _app.entered:  # after our app started, a bug shows its traceback
            raise
        # Hydra raises plain ValueError / TypeError for some overrides it cannot compose (dataset=-1, dataset=[1,2]).
        print(f"error: {describe_config_error(exc, sys.argv[1:])}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def torchrun_overrides(argv: list[str]) -> list[str]:
    """Extra overrides for a process that torchrun started: processes other than 0 write nothing
    (their Hydra dir is a throw-away temp folder, their log goes to the console at WARNING)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return []
    if is_multirun(argv):
        print("error: under torchrun a command trains one run; sweep by starting one torchrun per job (or use "
              "hydra/launcher=slurm, one job per run)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    if int(os.environ.get("RANK", "0")) == 0:
        return []
    import atexit
    import shutil
    import tempfile

    scratch = tempfile.mkdtemp(prefix="symtime-rank")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return [f"hydra.run.dir={scratch}", "hydra.output_subdir=null",
            "hydra.job_logging.root.handlers=[console]", "hydra.job_logging.root.level=WARNING"]


def busy_run_dir(argv: list[str]) -> Optional[str]:
    """Why the explicit hydra.run.dir can't be used now (another live run holds it), or None.

    Checked before Hydra starts, because Hydra writes the run's .hydra/ record into the folder
    first thing, which would overwrite the other run's."""
    from .files import busy_message, lock_owner

    given = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
    if not given or "${" in given[-1]:
        return None
    owner = lock_owner(Path(given[-1]))
    return busy_message(Path(given[-1]), owner) if owner else None


def search_refusal(argv: list[str]) -> Optional[str]:
    """Why a search (hparams_search=… or hydra/sweeper=optuna) can't start, or None: it needs -m, and
    the Optuna sweeper plugin (the tune extra)."""
    presets = [a.split("=", 1)[1] for a in argv if a.lstrip("+").split("=", 1)[0] == "hparams_search"]
    optuna = presets or any(a.lstrip("+").replace("override ", "") == "hydra/sweeper=optuna" for a in argv)
    if not optuna:
        return None
    if presets and not is_multirun(argv):
        return (f"hparams_search={presets[-1]} is a search of many runs: add -m (python -m symtime_repro -m "
                f"task=… hparams_search={presets[-1]}); docs/search.md")
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        return ("a search needs Hydra's Optuna sweeper, which is not installed: pip install -e \".[tune]\" "
                "(hydra-optuna-sweeper, optuna)")
    return None


def command() -> None:
    """The command's work, without ending the process (tests run it in-process)."""
    refusal = mixed_npu_sweep(sys.argv[1:]) or busy_run_dir(sys.argv[1:]) or search_refusal(sys.argv[1:])
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    sys.argv += torchrun_overrides(sys.argv[1:])
    _before.anchor, _before.depth, _before.existed = existing_dirs(run_dir_pattern(sys.argv[1:]))
    launch(hydra_main)


def main() -> NoReturn:
    """``python -m symtime_repro`` and the ``symtime-repro`` script."""
    exit_before_finalization(command)


def exit_before_finalization(command: Callable[[], None]) -> NoReturn:
    """Run ``command``, then end the process once Python's own exit work is done (atexit handlers,
    logs, streams) but before the interpreter is finalized. Two reasons:

    * Finalization first puts the default action back on SIGTERM / SIGINT, then tears torch down
      (a second or more on a loaded machine): a signal in that window killed a finished run
      (status -15 instead of 0). Once the command is over, nothing is left to save, so from here
      a signal is ignored and the process ends with the command's own status.
    * Under torchrun, finalization destroys Gloo objects after the run has written every file, and
      one time in a dozen a worker thread of theirs is still joinable: the C++ runtime aborts
      ("terminate called without an active exception") and torchrun reports a finished run as failed.

    A bug's traceback still ends the process the usual way."""
    import atexit
    import signal
    import threading

    from .preemption import SIGNALS

    try:
        command()
        status = 0
    except SystemExit as exc:
        if isinstance(exc.code, str):  # sys.exit("message"): Python prints it and exits 1
            print(exc.code, file=sys.stderr)
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    # Python's own exit order: wait for non-daemon threads and run their exit hooks (the joblib /
    # concurrent.futures executors of a local_parallel sweep shut their workers down there), then
    # the atexit handlers. Skipping the first left a finished sweep waiting for its idle workers.
    threading._shutdown()
    atexit._run_exitfuncs()  # what a normal exit would run: the scratch run dir of processes other than 0
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
