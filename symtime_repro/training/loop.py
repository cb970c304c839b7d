"""The one training loop shared by every task.

It knows nothing about tasks beyond :class:`symtime_repro.tasks.base.Task`: it moves batches to the
device, runs the optimiser under the chosen precision, follows the official learning-rate schedule,
stops early on the validation metric the task names, keeps the best weights in ``checkpoint.pt``,
and evaluates the test split once, at the end, with those weights (the official loop also
evaluates the test set every epoch, only to print it; we don't).

:meth:`Trainer.fit` is the loop: train an epoch, validate, decide (keep the best weights, stop
early, set the next learning rate, save ``last.pt``). What the epochs share lives in one
:class:`~symtime_repro.training.state.FitState`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from ..datasets.windows import contiguous_share, eval_sample_count, make_loader, spread_indices
from ..device import Device
from ..distributed import Dist, broadcast, gather_to_main, share_buffers
from ..errors import Preempted
from ..files import write_csv
from ..metrics.merge import merge_states
from ..models import save_checkpoint
from ..preemption import StopRequest
from ..tasks.base import Splits, Task, shares_evaluation
from ..tracking.base import NullTracker, Trackers
from .batches import EvalBatches, limit_batches, to_device
from .early_stopping import EarlyStopping
from .nonfinite import loss_and_grads_finite, stop_if_nonfinite
from .parallel import data_parallel
from .progress import Progress
from .resume import restore, save_resume_state
from .schedule import follow_schedule, per_batch_scheduler
from .state import FitResult, FitState

log = logging.getLogger(__name__)


class Trainer:
    def __init__(self, cfg, device: Device, run_dir: Path, seed: int, config_record: dict,
                 dist: Dist = Dist(), stop: Optional[StopRequest] = None, tracker: Optional[Trackers] = None) -> None:
        self.cfg = cfg  # TrainerConfig
        self.tracker = tracker or NullTracker()  # logger=: each history row, and steps when a tracker wants them
        self.stop = stop  # the run's SIGTERM / SIGINT handling; fit() makes its own when None
        self.device = device
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.config_record = config_record  # saved in checkpoint.pt
        self.dist = dist  # under torchrun: this process's rank; each evaluates its share, only process 0 writes
        self.finite: Optional[torch.Tensor] = None  # the last train_step's loss and gradients were finite

    # -- data -----------------------------------------------------------------------------------
    def loader(self, dataset, train: bool) -> DataLoader:
        """Training: this process's share of each shuffled global batch. Evaluation: all of ``dataset``
        (:meth:`eval_batches` hands it a process's share of the split)."""
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

    def eval_batches(self, dataset, share: bool = False) -> EvalBatches:
        """``dataset``'s batches, in order, on the device (callers pass :meth:`eval_subset`): all of
        them, or with ``share`` under torchrun this process's share, a contiguous run of WHOLE
        batches (process r of N takes ``torch.tensor_split(range(n_batches), N)[r]``), so every batch
        is the batch one process would score; the batches say where the share starts."""
        size, n = self.eval_batch_size, len(dataset)
        n_batches = -(-n // size)
        first, stop = 0, n_batches
        if share and self.dist.enabled:
            part = contiguous_share(n_batches, self.dist.rank, self.dist.world)
            first, stop = part.start, part.stop
            dataset = Subset(dataset, range(min(first * size, n), min(stop * size, n)))
        return EvalBatches(self.loader(dataset, train=False), self.device, offset=min(first * size, n),
                           batch_offset=first)

    def evaluate(self, task: Task, model: nn.Module, dataset) -> dict[str, float]:
        """The task's metrics on ``dataset`` (as :meth:`eval_subset` cuts it), on every process.

        Under torchrun (every process calls it) each process scores its share of the batches with the
        task's ``evaluation_state``, process 0 merges the states (metrics/merge.py) and computes the
        metrics, and every process gets them. A task with ``evaluate`` alone is evaluated whole by
        process 0, the others waiting for its numbers."""
        scored = self.eval_subset(dataset)
        dist = self.dist
        if not dist.enabled or not shares_evaluation(task):
            metrics = None
            if dist.is_main:
                model.eval()
                with self.device.autocast():
                    metrics = task.evaluate(model, self.eval_batches(scored))
            return broadcast(metrics, dist)
        model.eval()
        share_buffers(model, dist)  # process 0's BatchNorm statistics, as process 0 alone would use
        with self.device.autocast():
            state = task.evaluation_state(model, self.eval_batches(scored, share=True))
        states = gather_to_main(state, dist)
        return broadcast(task.metrics_from(merge_states(states)) if dist.is_main else None, dist)

    def test(self, task: Task, model: nn.Module, splits: Splits) -> Optional[dict[str, Any]]:
        """The task's test on the splits as :meth:`eval_subset` cuts them (anomaly detection also
        scores the train split, for its threshold). Under torchrun every process calls it and scores
        its share (:meth:`evaluate`); process 0 merges the states, gets the metrics and keeps what
        ``save_test_outputs`` writes; the others get None."""
        model.eval()
        scored = Splits(self.eval_subset(splits.train), self.eval_subset(splits.val), self.eval_subset(splits.test),
                        splits.info)
        dist = self.dist
        if not dist.enabled or not shares_evaluation(task):
            if not dist.is_main:
                return None
            with self.device.autocast():
                return task.test(model, scored, self.eval_batches)
        share_buffers(model, dist)
        with self.device.autocast():
            state = task.test_state(model, scored, lambda dataset: self.eval_batches(dataset, share=True))
        states = gather_to_main(state, dist)
        return task.test_metrics(merge_states(states)) if dist.is_main else None

    # -- one step -------------------------------------------------------------------------------
    def make_optimizer(self, model: nn.Module) -> tuple[torch.optim.Optimizer, list[nn.Parameter]]:
        params = [p for p in model.parameters() if p.requires_grad]
        if self.cfg.optimizer == "adamw":  # pre-training's (official betas and eps are torch's defaults)
            return torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay), params
        optimizer_cls = torch.optim.RAdam if self.cfg.optimizer == "radam" else torch.optim.Adam
        return optimizer_cls(params, lr=self.cfg.lr), params

    def train_step(self, task: Task, model: nn.Module, batch: dict, optimizer: torch.optim.Optimizer,
                   scaler, params: list[nn.Parameter], weight: float = 1.0) -> torch.Tensor:
        """One optimiser step on one batch (already on the device); returns the loss tensor and
        leaves in ``self.finite`` whether loss and gradients were finite (a device tensor).

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

    # -- the loop -------------------------------------------------------------------------------
    def fit(self, task: Task, model: nn.Module, splits: Splits, resume_state: Optional[dict] = None) -> FitResult:
        run = self._start(task, model, splits, resume_state)
        with run.stop if self.stop is None else contextlib.nullcontext():  # fit()'s own signal handling
            for epoch in range(run.result.epochs_run + 1, self.cfg.epochs + 1):
                if run.result.stopped_early:  # by the last epoch, or by the run this one resumes
                    break
                train_loss, started = self._train_epoch(task, run, epoch)
                # Every process scores its share of the split; everyone follows the merged numbers.
                val = self.evaluate(task, model, splits.val)
                self._end_epoch(task, run, epoch, train_loss, val, started)
            self._keep_best_weights(task, run)
        return run.result

    def _start(self, task: Task, model: nn.Module, splits: Splits, resume_state: Optional[dict]) -> FitState:
        """The fit's state, from scratch or from a resumed run's ``last.pt``; logs what is ahead."""
        cfg, dist = self.cfg, self.dist
        optimizer, params = self.make_optimizer(model)
        monitor, mode = task.monitor
        stopper = EarlyStopping(mode, cfg.patience)
        # The run's signal handling (run.py), or this fit's own when the trainer is used alone.
        stop = self.stop or StopRequest(self.run_dir, dist, self.device.torch_device)
        train_loader = self.loader(splits.train, train=True)
        steps_per_epoch = len(train_loader) if cfg.limit_train_batches is None else min(
            len(train_loader), cfg.limit_train_batches)
        run = FitState(model=model, train_model=model, optimizer=optimizer, params=params,
                       scaler=self.device.grad_scaler(), scheduler=per_batch_scheduler(optimizer, cfg, steps_per_epoch),
                       train_loader=train_loader, stop=stop, stopper=stopper,
                       result=FitResult(monitor=monitor, best_value=stopper.best))
        if resume_state is not None:
            restore(resume_state, run, self.run_dir, dist, self.device)
            in_epoch = run.in_epoch
            where = f", inside epoch {in_epoch['epoch']} after step {in_epoch['steps']}" if in_epoch else ""
            log.info("resumed after epoch %d%s (best so far: epoch %d, val %s %.6f)", run.result.epochs_run, where,
                     run.result.best_epoch, monitor, run.result.best_value)
        # Only now does a signal wait for a step boundary: until here (restoring too) it stops the run at once.
        stop.dist, stop.device, stop.phase = dist, self.device.torch_device, "training"
        run.train_model = data_parallel(model, self.device, dist)  # after restoring: DDP starts from process 0's
        log.info("training: %d windows (%d batches of %d%s), %d validation windows, up to %d epochs",
                 len(splits.train), len(run.train_loader), cfg.batch_size,
                 f" over {dist.world} processes" if dist.enabled else "", len(splits.val), cfg.epochs)
        scored, total = self.eval_coverage(splits.val)
        if scored < total:
            log.info("trainer.limit_eval_batches=%d: validation scores %d of %d %s, drawn over the split with "
                     "seed %d (the same every epoch)", cfg.limit_eval_batches, scored, total,
                     task.sample_unit, self.seed)
        return run

    def _train_epoch(self, task: Task, run: FitState, epoch: int) -> tuple[float, float]:
        """Train one epoch (or what a stopped one had left); returns (mean train loss, its start time).

        The start time is on ``time.perf_counter``'s clock, moved back by the time a stopped epoch
        had already trained, so that the epoch's seconds count all of it.
        """
        cfg, dist = self.cfg, self.dist
        resumed = run.in_epoch if run.in_epoch and run.in_epoch["epoch"] == epoch else None
        done = resumed["steps"] if resumed else 0  # steps of this epoch trained before a stop
        started = time.perf_counter() - (resumed["seconds"] if resumed else 0.0)
        run.model.train()
        run.train_loader.sampler.set_epoch(epoch, start=done)
        global_sizes = run.train_loader.sampler.global_sizes()
        # This process's true share of each global batch: 0 where a tiny last batch left it none (it
        # then steps on one stand-in window with weight 0: DDP needs every process in every step).
        share_sizes = run.train_loader.sampler.share_sizes()
        limit = None if cfg.limit_train_batches is None else max(0, cfg.limit_train_batches - done)
        n_batches, batches = limit_batches(run.train_loader, limit, "train")
        progress = Progress(n_batches, f"epoch {epoch}/{cfg.epochs}", enabled=cfg.progress and dist.is_main)
        # The loss stays on the device: reading it (.item()) waits for the accelerator, so it is
        # read only when the progress display needs it and once at the end of the epoch.
        totals = torch.tensor(resumed["totals"] if resumed else [0.0, 0.0], dtype=torch.float64,
                              device=self.device.torch_device)  # loss sum, samples
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device.torch_device)  # step, or -1
        check_every = max(1, n_batches // 5)
        step_every = self.tracker.step_every  # 0 unless a tracker plots steps (the loss is read only then)
        per_epoch = len(run.train_loader) if cfg.limit_train_batches is None else min(len(run.train_loader),
                                                                                       cfg.limit_train_batches)
        for step, batch in enumerate(to_device(batches, self.device)):
            size = share_sizes[step]
            weight = size * dist.world / global_sizes[step] if dist.enabled else 1.0
            loss = self.train_step(task, run.train_model, batch, run.optimizer, run.scaler, run.params, weight)
            if run.scheduler is not None:  # per batch, skipped batches included (the schedule counts steps)
                run.scheduler.step()
            if cfg.on_nonfinite == "skip" and not bool(self.finite):
                run.result.skipped_batches += 1
                log.warning("epoch %d, step %d: loss or gradient is not finite; batch skipped "
                            "(trainer.on_nonfinite=skip, %d so far)", epoch, step + 1, run.result.skipped_batches)
                continue
            first_bad = torch.where((first_bad < 0) & ~self.finite, step, first_bad)
            totals[0] += loss.detach().double() * size
            totals[1] += size
            progress.update(loss)
            global_step = (epoch - 1) * per_epoch + done + step + 1
            if step_every and global_step % step_every == 0:
                self.tracker.log_step(global_step, {"train_loss": float(loss.detach()),
                                                    "lr": run.optimizer.param_groups[0]["lr"]})
            if (step + 1) % check_every == 0:
                stop_if_nonfinite(first_bad, epoch, self.run_dir, dist)
            if run.stop.requested():  # SIGTERM / SIGINT: save where we are, at this step boundary
                progress.close()
                stop_if_nonfinite(first_bad, epoch, self.run_dir, dist)
                in_epoch = {"epoch": epoch, "steps": done + step + 1, "totals": totals.tolist(),
                            "seconds": time.perf_counter() - started}
                save_resume_state(run, self.run_dir, self.config_record, dist, self.device, in_epoch)
                raise Preempted(run.stop.signum, self.run_dir, epoch, done + step + 1)
        progress.close()
        stop_if_nonfinite(first_bad, epoch, self.run_dir, dist)
        if dist.enabled:
            torch.distributed.all_reduce(totals)
        loss_sum, seen = totals.tolist()
        run.result.train_seconds += time.perf_counter() - started
        run.result.train_samples += int(seen)
        return loss_sum / max(seen, 1), started

    def _end_epoch(self, task: Task, run: FitState, epoch: int, train_loss: float, val: dict[str, float],
                   started: float) -> None:
        """Record the epoch, keep its weights if they are the best, stop early or set the next
        learning rate, and save ``last.pt``."""
        result, optimizer = run.result, run.optimizer
        monitor = task.monitor[0]
        value = val[monitor]
        lr_now = optimizer.param_groups[0]["lr"]
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"], "lr": lr_now,
               "seconds": round(time.perf_counter() - started, 3)}
        if monitor != "loss":
            row[f"val_{monitor}"] = value
        result.history.append(row)
        result.epochs_run = epoch
        if self.dist.is_main:
            write_csv(self.run_dir / "history.csv", result.history, list(row))
            self.tracker.log_epoch(row)  # a view of the row just written; never fails the run

        improved = run.stopper.update(value)
        shown = f", val {monitor} {value:.6f}" if monitor != "loss" else ""
        log.info("epoch %d: train loss %.6f, val loss %.6f%s, lr %.3g, %.1fs%s", epoch, train_loss,
                 val["loss"], shown, lr_now, row["seconds"], " (best, saved)" if improved else "")
        if improved:
            result.best_value, result.best_val_loss, result.best_epoch = value, val["loss"], epoch
            run.best_weights = copy.deepcopy(run.model.state_dict())
            if self.dist.is_main:
                save_checkpoint(self.run_dir / "checkpoint.pt", run.model, optimizer, epoch, self.config_record,
                                {"best_val_loss": val["loss"], f"best_val_{monitor}": value})
        elif run.stopper.should_stop:
            log.info("early stopping: no validation improvement for %d epochs", run.stopper.bad_epochs)
            result.stopped_early = True
        if not result.stopped_early:
            follow_schedule(optimizer, self.cfg, epoch)
        save_resume_state(run, self.run_dir, self.config_record, self.dist, self.device)
        if run.stop.requested():  # the signal came during validation: the epoch is saved whole
            raise Preempted(run.stop.signum, self.run_dir, epoch)

    def _keep_best_weights(self, task: Task, run: FitState) -> None:
        """Leave the best epoch's weights in the model, the ones the test scores."""
        if run.best_weights is None:  # every validation loss was NaN
            log.warning("validation loss never improved (NaN?); testing the last weights")
            if self.dist.is_main:
                save_checkpoint(self.run_dir / "checkpoint.pt", run.model, run.optimizer, run.result.epochs_run,
                                self.config_record, {"best_val_loss": float("nan")})
        else:
            run.model.load_state_dict(run.best_weights)
            log.info("restored the best weights (epoch %d, val %s %.6f)", run.result.best_epoch, task.monitor[0],
                     run.result.best_value)
