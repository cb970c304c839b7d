"""``resume=true``: what the resumable checkpoint ``last.pt`` holds, and the checks before using it.

``last.pt`` is written after every epoch (and at the step where a signal stops one) so that a
resumed run continues exactly: weights, optimiser, schedule, early-stopping counters, every
process's random state. It belongs to one config: resuming with a setting that changes results
is refused, naming the setting.
"""

from __future__ import annotations

import io
import logging
import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..config import NOT_RESULT_KEYS
from ..device import Device
from ..distributed import Dist
from ..errors import UserError
from ..files import atomic_write_bytes, write_csv
from .state import FitResult, FitState

log = logging.getLogger(__name__)

RESUME_FILE = "last.pt"
RESUME_FORMAT = "symtime-repro-resume-v1"
# Keys a resumed run may change: those that never alter results, the evaluation cap, and the
# pre-trained encoder file (its weights are already in last.pt).
RESUME_FREE_KEYS = NOT_RESULT_KEYS | {"trainer.limit_eval_batches", "model.pretrained"}
RESUME_SECTIONS = ("task", "dataset", "model", "trainer", "device", "seed")


def resume_refusal(saved: dict, now: dict, run_dir: Path) -> Optional[str]:
    """Why the run saved with config ``saved`` cannot be resumed with config ``now``, or None if it can."""
    for section in RESUME_SECTIONS:
        before, after = saved.get(section), now.get(section)
        if isinstance(after, dict) and isinstance(before, dict):
            for key in sorted(set(before) | set(after)):
                if f"{section}.{key}" not in RESUME_FREE_KEYS and before.get(key) != after.get(key):
                    return (f"resume=true: the run in {run_dir} was started with {section}.{key}={before.get(key)} "
                            f"but this command has {section}.{key}={after.get(key)}; use the same settings to "
                            f"resume, or another hydra.run.dir for a new run")
        elif before != after:
            return (f"resume=true: the run in {run_dir} was started with {section}={before} but this command has "
                    f"{section}={after}; use the same settings to resume")
    return None


def load_resume_state(run_dir: Path, config_record: dict) -> Optional[dict]:
    """The resume state in ``run_dir`` if there is one, after checking it belongs to this config."""
    path = Path(run_dir) / RESUME_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - a damaged file must not become a traceback
        raise UserError(f"resume=true: {path} cannot be read ({type(exc).__name__}); delete it to start the run "
                        f"again from epoch 1") from exc
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise UserError(f"resume=true: {path} is not a symtime-repro resume file; delete it to start again")
    refusal = resume_refusal(state.get("config", {}), config_record, run_dir)
    if refusal:
        raise UserError(refusal)
    return state


def rng_state(device: Device) -> dict:
    """This process's random state: dropout, M4 cut points and anything else that draws."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.kind == "cuda" else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(rng: dict, device: Device) -> None:
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and device.kind == "cuda":
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])


def save_resume_state(run: FitState, run_dir: Path, config_record: dict, dist: Dist, device: Device,
                      in_epoch: Optional[dict] = None) -> None:
    """Write ``last.pt`` (process 0; every process must call it, to hand over its random state).

    ``in_epoch``: set when stopping inside an epoch (its number, steps done, running totals).
    """
    # Every process's random state, so each continues its own stream.
    rngs = [rng_state(device)]
    if dist.enabled:
        rngs = [None] * dist.world
        torch.distributed.all_gather_object(rngs, rng_state(device))
    if not dist.is_main:
        return
    state = {
        "format": RESUME_FORMAT,
        "config": config_record,
        "epoch": run.result.epochs_run,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
        "result": {k: v for k, v in vars(run.result).items()},
        "bad_epochs": run.stopper.bad_epochs,
        "rng": rngs,  # one per process
        "in_epoch": in_epoch,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(Path(run_dir) / RESUME_FILE, buffer.getvalue())


def restore(state: dict, run: FitState, run_dir: Path, dist: Dist, device: Device) -> None:
    """Put a loaded ``last.pt`` back into ``run``: weights, optimiser, counters, random state, best weights."""
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    if run.scheduler is not None and state.get("scheduler"):
        run.scheduler.load_state_dict(state["scheduler"])
    run.result = FitResult(**state["result"])
    run.stopper.best, run.stopper.bad_epochs = run.result.best_value, state["bad_epochs"]
    run.in_epoch = state.get("in_epoch")
    rngs = state["rng"]
    if len(rngs) != dist.world:
        raise UserError(f"resume=true: the run was started with {len(rngs)} process(es), this command has "
                        f"{dist.world}; resume it with the same torchrun --nproc_per_node / --nnodes")
    set_rng_state(rngs[dist.rank], device)
    run.best_weights = _saved_best_weights(Path(run_dir), run.result.best_epoch)
    if dist.is_main and run.result.history:
        write_csv(Path(run_dir) / "history.csv", run.result.history, list(run.result.history[-1]))


def _saved_best_weights(run_dir: Path, best_epoch: int) -> Optional[dict]:
    """The weights in ``checkpoint.pt`` if they are those of ``best_epoch``, else None."""
    best_file = run_dir / "checkpoint.pt"
    if not best_epoch or not best_file.is_file():
        return None
    best = torch.load(best_file, map_location="cpu", weights_only=False)
    if best.get("epoch") == best_epoch:
        return best["model"]
    # Killed between saving the best weights and last.pt: that epoch runs again.
    log.info("checkpoint.pt is from epoch %s, after the resumed state; that epoch runs again", best.get("epoch"))
    return None
