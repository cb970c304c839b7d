"""Command line: ``python -m symtime_repro task=… dataset=… device=… [experiment=…] [overrides]``.

Hydra composes ``conf/`` into the typed schema of :mod:`symtime_repro.config`; everything else
happens in :func:`symtime_repro.run.run`. A :class:`UserError` ends the run with one line on
stderr and exit status 2, and leaves no ``metrics.json``.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from .allocator import restart_with_mimalloc
from .config import register_configs
from .errors import Preempted, RunFailed, UserError

log = logging.getLogger("symtime_repro")
EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 3  # the run started and failed (metrics.json says why)
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by a signal after saving; run again with resume=true

register_configs()


@hydra.main(config_path="pkg://symtime_repro.conf", config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    from .run import run  # imported here so `--help` and config errors stay fast

    logging.captureWarnings(True)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run(cfg, run_dir)
    except UserError as exc:
        log.error("error: %s", exc)
        sys.exit(EXIT_USER_ERROR)
    except RunFailed as exc:
        log.error("error: %s", exc)
        sys.exit(EXIT_RUN_FAILED)
    except Preempted as exc:
        log.warning("%s", exc)
        requeue_slurm_job()
        sys.exit(EXIT_PREEMPTED)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # Every file is written to a temporary name first and renamed when complete, so a full disk
        # leaves the previous checkpoint / metrics as they were.
        log.error("error: no space left on the device writing %s (%s); the files already in %s are intact "
                  "(each is written whole or not at all). Free space and continue with resume=true "
                  "hydra.run.dir=%s", exc.filename or "a file", exc.strerror, run_dir, run_dir)
        sys.exit(EXIT_RUN_FAILED)
    except KeyboardInterrupt:
        log.error("interrupted; continue from the last finished epoch with: resume=true hydra.run.dir=%s", run_dir)
        sys.exit(130)


def requeue_slurm_job() -> None:
    """Under SLURM, put this job back in the queue; when it starts again it resumes by itself
    (SLURM_RESTART_COUNT > 0 implies resume=true). Only process 0 of a torchrun job asks."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job or os.environ.get("RANK", "0") != "0" or os.environ.get("SYMTIME_REPRO_REQUEUE", "1") == "0":
        return
    import subprocess

    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("could not requeue SLURM job %s (%s); resubmit it with resume=true", job, exc)
        return
    if done.returncode == 0:
        log.warning("requeued SLURM job %s: it resumes from the saved state when it starts again", job)
    else:
        log.warning("scontrol requeue %s failed (%s); resubmit it with resume=true", job, done.stderr.strip())


def describe_config_error(exc: BaseException) -> str:
    """One line for a Hydra/OmegaConf composition error: what is wrong and the valid choices."""
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and "/" in exc.missing_cfg_file:
        group, _, choice = exc.missing_cfg_file.rpartition("/")
        options = ", ".join(sorted(exc.options or []))
        return f"{group}={choice} is not available; choose one of: {options}"
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
    restart_with_mimalloc()  # returns unless mimalloc is installed and not yet preloaded
    try:
        hydra_app()
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"error: {describe_config_error(exc)}", file=sys.stderr)
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


def main() -> None:
    refusal = mixed_npu_sweep(sys.argv[1:]) or busy_run_dir(sys.argv[1:])
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    sys.argv += torchrun_overrides(sys.argv[1:])
    launch(hydra_main)


if __name__ == "__main__":
    main()
