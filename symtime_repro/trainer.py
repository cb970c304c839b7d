"""The one training loop shared by every task.

It knows nothing about tasks beyond :class:`symtime_repro.tasks.Task`: it moves batches to the
device, runs the optimiser under the chosen precision, follows the official learning-rate schedule,
stops early on the validation metric the task names, keeps the best weights in ``checkpoint.pt``,
and evaluates the test split once, at the end, with those weights (the official loop also
evaluates the test set every epoch, only to print it; we don't).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from .config import NOT_RESULT_KEYS
from .data.windows import eval_sample_count, make_loader, spread_indices
from .device import Device
from .distributed import Dist, broadcast
from .errors import Preempted, UserError
from .files import atomic_write_bytes, write_csv
from .models import save_checkpoint
from .preemption import StopRequest
from .tasks import Splits, Task
from .training.batches import limit_batches, to_device
from .training.compile import compile_model, compile_unavailable  # noqa: F401 - run.py and bench.py import them here
from .training.nonfinite import loss_and_grads_finite, stop_if_nonfinite
from .training.parallel import data_parallel
from .training.progress import Progress
from .training.schedule import follow_schedule, scheduled_lr  # noqa: F401 - tests import it here

log = logging.getLogger(__name__)

# The state of the last finished epoch, written after every epoch so that `resume=true` continues an
# interrupted run exactly (weights, optimiser, schedule, early-stopping counters, every RNG).
RESUME_FILE = "last.pt"
RESUME_FORMAT = "symtime-repro-resume-v1"


@dataclass
class FitResult:
    epochs_run: int = 0
    best_epoch: int = 0
    best_val_loss: float = float("inf")  # validation loss at the best epoch
    monitor: str = "loss"  # what early stopping watched
    best_value: float = float("inf")  # its best value
    train_seconds: float = 0.0
    train_samples: int = 0
    stopped_early: bool = False
    skipped_batches: int = 0  # trainer.on_nonfinite=skip
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def samples_per_second(self) -> Optional[float]:
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else None


# Keys a resumed run may change: those that never alter results, the evaluation cap, and the
# pre-trained encoder file (its weights are already in last.pt).
RESUME_FREE_KEYS = NOT_RESULT_KEYS | {"trainer.limit_eval_batches", "model.pretrained"}
RESUME_SECTIONS = ("task", "dataset", "model", "trainer", "device", "seed")


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
    saved = state.get("config", {})
    for section in RESUME_SECTIONS:
        before, now = saved.get(section), config_record.get(section)
        if isinstance(now, dict) and isinstance(before, dict):
            for key in sorted(set(before) | set(now)):
                if f"{section}.{key}" not in RESUME_FREE_KEYS and before.get(key) != now.get(key):
                    raise UserError(f"resume=true: the run in {run_dir} was started with {section}.{key}="
                                    f"{before.get(key)} but this command has {section}.{key}={now.get(key)}; "
                                    f"use the same settings to resume, or another hydra.run.dir for a new run")
        elif before != now:
            raise UserError(f"resume=true: the run in {run_dir} was started with {section}={before} but this "
                            f"command has {section}={now}; use the same settings to resume")
    return state


class Trainer:
    def __init__(self, cfg, device: Device, run_dir: Path, seed: int, config_record: dict,
                 dist: Dist = Dist(), stop: Optional[StopRequest] = None) -> None:
        self.cfg = cfg  # TrainerConfig
        self.stop = stop  # the run's SIGTERM / SIGINT handling; fit() makes its own when None
        self.device = device
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.config_record = config_record  # saved in checkpoint.pt
        self.dist = dist  # under torchrun: this process's rank; only process 0 writes and evaluates
        self.finite: Optional[torch.Tensor] = None  # the last train_step's loss and gradients were finite

    # -- data -----------------------------------------------------------------------------------
    def loader(self, dataset, train: bool) -> DataLoader:
        """Training: this process's share of each shuffled global batch. Evaluation: the whole split."""
        batch_size = self.cfg.batch_size if train else (self.cfg.eval_batch_size or self.cfg.batch_size)
        rank, world = (self.dist.rank, self.dist.world) if train else (0, 1)
        return make_loader(dataset, batch_size, shuffle=train, seed=self.seed, num_workers=self.cfg.num_workers,
                           pin_memory=self.device.pin_memory, rank=rank, world=world)

    @property
    def eval_batch_size(self) -> int:
        return self.cfg.eval_batch_size or self.cfg.batch_size

    def eval_coverage(self, dataset) -> tuple[int, int]:
        """(samples scored, samples in the split) when evaluating ``dataset`` under trainer.limit_eval_batches."""
        total = len(dataset)
        return eval_sample_count(total, self.cfg.limit_eval_batches, self.eval_batch_size), total

    def eval_subset(self, dataset):
        """What an evaluation scores: the whole split, or with trainer.limit_eval_batches a seeded
        sample spread over it (the same on every call), never just its first batches."""
        scored, total = self.eval_coverage(dataset)
        if scored >= total:
            return dataset
        return Subset(dataset, spread_indices(total, scored, self.seed))

    def eval_batches(self, dataset) -> Iterator[dict]:
        """All of ``dataset``'s batches, in order, on the device (callers pass :meth:`eval_subset`)."""
        return to_device(self.loader(dataset, train=False), self.device)

    def evaluate(self, task: Task, model: nn.Module, dataset) -> dict[str, float]:
        model.eval()
        with self.device.autocast():
            return task.evaluate(model, self.eval_batches(self.eval_subset(dataset)))

    def test(self, task: Task, model: nn.Module, splits: Splits) -> dict[str, Any]:
        """The task's test on the splits as :meth:`eval_subset` cuts them (anomaly detection also
        scores the train split, for its threshold)."""
        model.eval()
        scored = Splits(self.eval_subset(splits.train), self.eval_subset(splits.val), self.eval_subset(splits.test),
                        splits.info)
        with self.device.autocast():
            return task.test(model, scored, self.eval_batches)

    # -- resuming -------------------------------------------------------------------------------
    def _rng_state(self) -> dict:
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if self.device.kind == "cuda" else None,
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        }

    def _save_resume_state(self, model, optimizer, scaler, result: FitResult, bad_epochs: int,
                           in_epoch: Optional[dict] = None) -> None:
        """``in_epoch``: set when stopping inside an epoch (its number, steps done, running totals)."""
        # Every process's random state (dropout, M4 cut points), so each continues its own stream.
        rngs = [self._rng_state()]
        if self.dist.enabled:
            rngs = [None] * self.dist.world
            torch.distributed.all_gather_object(rngs, self._rng_state())
        if not self.dist.is_main:
            return
        state = {
            "format": RESUME_FORMAT,
            "config": self.config_record,
            "epoch": result.epochs_run,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "result": {k: v for k, v in vars(result).items()},
            "bad_epochs": bad_epochs,
            "rng": rngs,  # one per process
            "in_epoch": in_epoch,
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.run_dir / RESUME_FILE, buffer.getvalue())

    def _restore(self, state: dict, model, optimizer, scaler) -> tuple[FitResult, int, Optional[dict], Optional[dict]]:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        result = FitResult(**state["result"])
        rngs = state["rng"]
        if len(rngs) != self.dist.world:
            raise UserError(f"resume=true: the run was started with {len(rngs)} process(es), this command has "
                            f"{self.dist.world}; resume it with the same torchrun --nproc_per_node / --nnodes")
        rng = rngs[self.dist.rank]
        torch.set_rng_state(rng["torch"])
        if rng.get("cuda") is not None and self.device.kind == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        best_state = None
        best_file = self.run_dir / "checkpoint.pt"
        if result.best_epoch and best_file.is_file():
            best = torch.load(best_file, map_location="cpu", weights_only=False)
            if best.get("epoch") == result.best_epoch:
                best_state = best["model"]
            else:  # killed between saving the best weights and this state: that epoch is redone below
                log.info("checkpoint.pt is from epoch %s, after the resumed state; that epoch runs again",
                         best.get("epoch"))
        if self.dist.is_main and result.history:
            write_csv(self.run_dir / "history.csv", result.history, list(result.history[-1]))
        return result, state["bad_epochs"], best_state, state.get("in_epoch")

    # -- training -------------------------------------------------------------------------------
    def make_optimizer(self, model: nn.Module) -> tuple[torch.optim.Optimizer, list[nn.Parameter]]:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer_cls = torch.optim.RAdam if self.cfg.optimizer == "radam" else torch.optim.Adam
        return optimizer_cls(params, lr=self.cfg.lr), params

    def train_step(self, task: Task, model: nn.Module, batch: dict, optimizer: torch.optim.Optimizer,
                   scaler, params: list[nn.Parameter], weight: float = 1.0) -> torch.Tensor:
        """One optimiser step on one batch (already on the device); returns the loss tensor.

        ``weight`` scales this process's loss under data parallelism (its share of the global batch
        times the number of processes), so that DDP's average of gradients is the gradient of the
        global batch's mean loss, as in one process.
        """
        grad_clip = self.cfg.grad_clip
        optimizer.zero_grad(set_to_none=True)
        with self.device.autocast():
            loss = task.training_loss(model, batch)
        scaled = loss * weight if weight != 1.0 else loss
        if scaler is not None:  # float16: the scaler already skips steps whose gradients overflow
            scaler.scale(scaled).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, grad_clip)
            self.finite = torch.isfinite(loss.detach())
            scaler.step(optimizer)
            scaler.update()
            return loss
        scaled.backward()
        self.finite = loss_and_grads_finite(loss, params)
        if self.cfg.on_nonfinite == "skip" and not bool(self.finite):
            optimizer.zero_grad(set_to_none=True)
            return loss
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        return loss

    def fit(self, task: Task, model: nn.Module, splits: Splits, resume_state: Optional[dict] = None) -> FitResult:
        cfg = self.cfg
        dist = self.dist
        optimizer, params = self.make_optimizer(model)
        scaler = self.device.grad_scaler()
        train_loader = self.loader(splits.train, train=True)
        monitor, mode = task.monitor
        higher_is_better = mode == "max"
        result = FitResult(monitor=monitor, best_value=-math.inf if higher_is_better else math.inf)
        best_state: Optional[dict] = None
        bad_epochs = 0
        in_epoch: Optional[dict] = None  # where a stopped epoch is taken up again
        if resume_state is not None:
            result, bad_epochs, best_state, in_epoch = self._restore(resume_state, model, optimizer, scaler)
            where = f", inside epoch {in_epoch['epoch']} after step {in_epoch['steps']}" if in_epoch else ""
            log.info("resumed after epoch %d%s (best so far: epoch %d, val %s %.6f)", result.epochs_run, where,
                     result.best_epoch, monitor, result.best_value)
        # The run's signal handling (run.py), or this fit's own when the trainer is used alone.
        stop = self.stop or StopRequest(self.run_dir, dist, self.device.torch_device)
        stop.dist, stop.device, stop.phase = dist, self.device.torch_device, "training"
        train_model = data_parallel(model, self.device, dist)  # after restoring: DDP starts from process 0's weights
        log.info("training: %d windows (%d batches of %d%s), %d validation windows, up to %d epochs",
                 len(splits.train), len(train_loader), cfg.batch_size,
                 f" over {dist.world} processes" if dist.enabled else "", len(splits.val), cfg.epochs)
        scored, total = self.eval_coverage(splits.val)
        if scored < total:
            log.info("trainer.limit_eval_batches=%d: validation scores %d of %d %s, drawn over the split with "
                     "seed %d (the same every epoch)", cfg.limit_eval_batches, scored, total,
                     getattr(task, "sample_unit", "samples"), self.seed)

        with stop if self.stop is None else contextlib.nullcontext():
            self._epochs(task, model, train_model, splits, optimizer, scaler, params, train_loader, result,
                         bad_epochs, best_state, in_epoch, stop)
        return result

    def _epochs(self, task, model, train_model, splits, optimizer, scaler, params, train_loader, result: FitResult,
                bad_epochs: int, best_state: Optional[dict], in_epoch: Optional[dict], stop: StopRequest) -> None:
        cfg, dist = self.cfg, self.dist
        monitor, mode = task.monitor
        higher_is_better = mode == "max"
        for epoch in range(result.epochs_run + 1, cfg.epochs + 1):
            if result.stopped_early:
                break
            resumed = in_epoch if in_epoch and in_epoch["epoch"] == epoch else None
            done = resumed["steps"] if resumed else 0  # steps of this epoch trained before a stop
            started = time.perf_counter() - (resumed["seconds"] if resumed else 0.0)
            model.train()
            train_loader.sampler.set_epoch(epoch, start=done)
            global_sizes = train_loader.sampler.global_sizes()
            limit = None if cfg.limit_train_batches is None else max(0, cfg.limit_train_batches - done)
            n_batches, batches = limit_batches(train_loader, limit, "train")
            progress = Progress(n_batches, f"epoch {epoch}/{cfg.epochs}", enabled=cfg.progress and dist.is_main)
            # The loss stays on the device: reading it (.item()) waits for the accelerator, so it is
            # read only when the progress display needs it and once at the end of the epoch.
            totals = torch.tensor(resumed["totals"] if resumed else [0.0, 0.0], dtype=torch.float64,
                                  device=self.device.torch_device)  # loss sum, samples
            first_bad = torch.full((), -1, dtype=torch.long, device=self.device.torch_device)  # step, or -1
            check_every = max(1, n_batches // 5)
            for step, batch in enumerate(to_device(batches, self.device)):
                size = next(iter(batch.values())).shape[0]
                weight = size * dist.world / global_sizes[step] if dist.enabled else 1.0
                loss = self.train_step(task, train_model, batch, optimizer, scaler, params, weight)
                if cfg.on_nonfinite == "skip" and not bool(self.finite):
                    result.skipped_batches += 1
                    log.warning("epoch %d, step %d: loss or gradient is not finite; batch skipped "
                                "(trainer.on_nonfinite=skip, %d so far)", epoch, step + 1, result.skipped_batches)
                    continue
                first_bad = torch.where((first_bad < 0) & ~self.finite, step, first_bad)
                totals[0] += loss.detach().double() * size
                totals[1] += size
                progress.update(loss)
                if (step + 1) % check_every == 0:
                    stop_if_nonfinite(first_bad, epoch, self.run_dir, dist)
                if stop.requested():  # SIGTERM / SIGINT: save where we are, at this step boundary
                    progress.close()
                    stop_if_nonfinite(first_bad, epoch, self.run_dir, dist)
                    state = {"epoch": epoch, "steps": done + step + 1, "totals": totals.tolist(),
                             "seconds": time.perf_counter() - started}
                    self._save_resume_state(model, optimizer, scaler, result, bad_epochs, state)
                    raise Preempted(stop.signum, self.run_dir, epoch, done + step + 1)
            progress.close()
            stop_if_nonfinite(first_bad, epoch, self.run_dir, dist)
            if dist.enabled:
                torch.distributed.all_reduce(totals)
            loss_sum, seen = totals.tolist()
            train_seconds = time.perf_counter() - started
            result.train_seconds += train_seconds
            result.train_samples += int(seen)

            # Process 0 evaluates the whole split once; everyone follows its numbers.
            val = self.evaluate(task, model, splits.val) if dist.is_main else None
            val = broadcast(val, dist)
            value = val[monitor]
            lr_now = optimizer.param_groups[0]["lr"]
            row = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "val_loss": val["loss"], "lr": lr_now,
                   "seconds": round(time.perf_counter() - started, 3)}
            if monitor != "loss":
                row[f"val_{monitor}"] = value
            result.history.append(row)
            result.epochs_run = epoch
            if dist.is_main:
                write_csv(self.run_dir / "history.csv", result.history, list(row))

            # Strictly better, as the official EarlyStopping: a tie counts as no improvement.
            improved = value > result.best_value if higher_is_better else value < result.best_value
            shown = f", val {monitor} {value:.6f}" if monitor != "loss" else ""
            log.info("epoch %d: train loss %.6f, val loss %.6f%s, lr %.3g, %.1fs%s", epoch, row["train_loss"],
                     val["loss"], shown, lr_now, row["seconds"], " (best, saved)" if improved else "")
            if improved:
                result.best_value, result.best_val_loss, result.best_epoch, bad_epochs = value, val["loss"], epoch, 0
                best_state = copy.deepcopy(model.state_dict())
                if dist.is_main:
                    save_checkpoint(self.run_dir / "checkpoint.pt", model, optimizer, epoch, self.config_record,
                                    {"best_val_loss": val["loss"], f"best_val_{monitor}": value})
            else:
                bad_epochs += 1
                if bad_epochs >= cfg.patience:
                    log.info("early stopping: no validation improvement for %d epochs", bad_epochs)
                    result.stopped_early = True
            if not result.stopped_early:
                follow_schedule(optimizer, cfg, epoch)
            self._save_resume_state(model, optimizer, scaler, result, bad_epochs)
            if stop.requested():  # the signal came during validation: the epoch is saved whole
                raise Preempted(stop.signum, self.run_dir, epoch)
            if result.stopped_early:
                break

        if best_state is None:  # every validation loss was NaN
            log.warning("validation loss never improved (NaN?); testing the last weights")
            if dist.is_main:
                save_checkpoint(self.run_dir / "checkpoint.pt", model, optimizer, result.epochs_run,
                                self.config_record, {"best_val_loss": float("nan")})
        else:
            model.load_state_dict(best_state)
            log.info("restored the best weights (epoch %d, val %s %.6f)", result.best_epoch, monitor, result.best_value)
