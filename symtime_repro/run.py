"""One run: validate the config, set up the device, load data and model, train and/or test, and
write the run directory's files (docs/contract.md)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import re
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig

from . import device as devices
from . import distributed
from .distributed import Dist
from .allocator import current as current_allocator
from .config import RunConfig, validate
from .console import show_result, subset_phrase
from .datasets import check_files
from .errors import Preempted, RunFailed, UserError
from .files import RUN_CONFIG, RunDirLock, write_json, write_yaml
from .from_checkpoint import (Adopted, adopt_checkpoint_config, log_adopted, require_names_for_official,
                              saved_config)
from .models import encoder_state_size, load_model_weights, load_pretrained_encoder, read_checkpoint
from .preemption import StopRequest, requeued
from .tasks import make_task
from .tasks.base import Splits, Task
from .tracking import FAILED, FINISHED, KILLED, RunContext, Trackers, make_tracker
from .training import RESUME_FILE, FitResult, Trainer, compile_model, load_resume_state

log = logging.getLogger(__name__)

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def command_line_overrides() -> list[str]:
    """This job's overrides as typed (in a sweep: this job's values), or [] outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def take_checkpoint_config(cfg: DictConfig) -> Adopted:
    """mode=test with our checkpoint: run what it was trained for (see from_checkpoint)."""
    saved = saved_config(cfg.ckpt) if cfg.mode == "test" else None
    if not saved:
        return Adopted()
    adopted = adopt_checkpoint_config(cfg, saved, command_line_overrides())
    log_adopted(adopted, cfg.ckpt, cfg.task.name, cfg.dataset.name)
    return adopted


def finished_metrics(run_dir: Path) -> Optional[dict[str, Any]]:
    """The metrics of a run that completed in ``run_dir``, or None."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and metrics.get("status") == "completed" else None


def check_fits_in_memory(rc: RunConfig, enc_in: int) -> None:
    """Refuse sizes whose weights or padded windows alone exceed the memory this process may use,
    before anything is built. An allocation that large often succeeds on paper on Linux
    (overcommit), and the kernel then kills the process without a word: no line, no metrics."""
    memory = devices.host_memory_bytes()
    if memory is None:
        return
    m, gib = rc.model, 2**30
    values = encoder_state_size(m)
    if values * 4 > memory:
        raise UserError(f"model.n_layers={m.n_layers}, model.d_model={m.d_model}, model.d_ff={m.d_ff} make an encoder "
                        f"of {values:,} values ({values * 4 / gib:,.1f} GiB as float32), more than the "
                        f"{memory / gib:.1f} GiB of memory of this machine; choose a smaller model "
                        f"(model=symtime_small, or lower those three)")
    if m.use_avg and rc.task.head != "classify":  # the trend is a moving average over replicated ends
        batch = max(rc.trainer.batch_size, rc.trainer.eval_batch_size or 0)
        steps = rc.task.seq_len + m.moving_avg - 1
        padded = 4 * batch * enc_in * steps
        if padded > memory:
            raise UserError(f"model.moving_avg={m.moving_avg} pads each window to {steps:,} steps: a batch of {batch} "
                            f"windows x {enc_in} channels takes {padded / gib:,.1f} GiB, more than the "
                            f"{memory / gib:.1f} GiB of memory of this machine; use a kernel about as long as the "
                            f"window or shorter (official: 25)")


OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "Cannot allocate memory")


@contextlib.contextmanager
def out_of_memory_fails_the_run(stop: StopRequest):
    """An allocation that fails becomes one line naming the phase, the size and what to lower."""
    try:
        yield
    except RuntimeError as exc:  # torch.OutOfMemoryError (CUDA) is a RuntimeError; the CPU allocator raises one
        text = str(exc)
        if not (isinstance(exc, getattr(torch, "OutOfMemoryError", ())) or any(s in text for s in OUT_OF_MEMORY)):
            raise
        asked = re.search(r"allocate ([\d.]+ ?[KMGT]iB|\d+ bytes)", text)
        size = asked.group(1) if asked else "more than is free"
        if asked and asked.group(1).endswith("bytes"):
            size = f"{int(asked.group(1).split()[0]) / 2**30:,.1f} GiB"
        raise RunFailed(f"out of memory during {stop.phase} (it tried to allocate {size}); lower trainer.batch_size "
                        f"(trainer.eval_batch_size for evaluation), task.seq_len, or the model size (model.d_model, "
                        f"model.d_ff, model.n_layers; model.stride and model.moving_avg also set the size of a "
                        f"window's padding)", phase=stop.phase) from None


def prepare(cfg: DictConfig) -> tuple[RunConfig, devices.Device, Task, Splits, torch.nn.Module, Dist]:
    """Everything a run needs before training: checked config and files, device (and, under
    torchrun, the process group), data, model with its weights (our checkpoint, an official one,
    the pre-trained encoder, or random), on the device."""
    ckpt_state = None
    if cfg.mode == "test" and cfg.get("ckpt"):
        ckpt_state, saved = read_checkpoint(cfg.ckpt)
        if saved is None:
            require_names_for_official(cfg.ckpt, command_line_overrides())
    rc: RunConfig = validate(cfg)
    task = make_task(rc)  # a task refuses a dataset it cannot use (classification on ETTh1) before files are checked
    check_files(rc.dataset, rc.data.root)  # a missing file stops the run here, before any work
    seed_everything(rc.seed)
    dist = distributed.from_env()
    # framework=mindspore: torch only reads the data and the weights, on the CPU; MindSpore computes
    # on the device asked for (symtime_repro/mindspore/adapter.py).
    device = devices.setup(rc.device if rc.framework == "torch" else cpu_for_data(rc.device), dist)
    distributed.init(dist, device.kind)

    splits = task.datasets()
    rc = task.resolve(splits)  # what the data decided (M4 horizons, UEA lengths) filled in: the config run and recorded
    check_fits_in_memory(rc, splits.info.get("enc_in", 1))
    log.info("data: %s (%s), %d channels, windows train/val/test = %d/%d/%d", rc.dataset.name,
             splits.info.get("file", ""), splits.info.get("enc_in", 0), len(splits.train), len(splits.val),
             len(splits.test))
    model = task.build_model(splits)
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("model: %s, d_model %d, %d of %d layers run, %s parameters (%s trainable)", rc.model.name,
             rc.model.d_model, getattr(model, "layers_run", rc.model.forward_layers), rc.model.n_layers, f"{n_params:,}",
             f"{n_trainable:,}")

    if ckpt_state is not None:
        load_model_weights(model, ckpt_state, rc.ckpt)
        log.info("loaded weights from %s", rc.ckpt)
    elif rc.model.pretrained:
        load_pretrained_encoder(model, rc.model.pretrained)
        log.info("loaded the pre-trained encoder from %s", rc.model.pretrained)
    elif rc.task.head != "pretrain":  # pre-training starts from random weights by design
        log.warning("model.pretrained is null: fine-tuning from a randomly initialised encoder; results will "
                    "not match the paper's. Pass model.pretrained=<finetuning.pth> (see README) to reproduce them.")
    model.to(device.torch_device)
    if rc.framework == "mindspore":
        from .mindspore.adapter import on_mindspore

        model = on_mindspore(model, rc, splits)
    return rc, device, task, splits, model, dist


def cpu_for_data(device_cfg):
    """The torch side of a framework=mindspore run: the CPU, full precision (MindSpore has the device)."""
    return dataclasses.replace(device_cfg, name="cpu", amp=False, index=0)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Execute one run and return the metrics written to ``metrics.json``."""
    wall_started = time.perf_counter()
    if cfg.get("framework") == "mindspore" and cfg.mode != "test":
        raise UserError("framework=mindspore evaluates a checkpoint (mode=test ckpt=…); training runs in torch "
                        "(python -m symtime_repro.bench framework=mindspore times MindSpore's training step)")
    if requeued() and not cfg.get("resume"):
        log.info("SLURM_RESTART_COUNT=%s: a requeued job, so resume=true", os.environ["SLURM_RESTART_COUNT"])
        cfg.resume = True
    if cfg.get("resume") and cfg.mode == "train" and not distributed.from_env().enabled:
        done = finished_metrics(run_dir)
        if done is not None:  # a re-run sweep skips the jobs that already finished
            log.info("resume=true: %s already finished (metrics.json); nothing to do", run_dir)
            return done
    with StopRequest(run_dir) as stop:  # SIGTERM / SIGINT: Preempted (exit 75), at a step boundary in training
        with out_of_memory_fails_the_run(stop):
            adopted = take_checkpoint_config(cfg)
            rc, device, task, splits, model, dist = prepare(cfg)
        tracker = make_tracker(rc.logger, enabled=dist.is_main)  # logger=: started once the run is accepted
        try:
            with RunDirLock(run_dir) if dist.is_main else contextlib.nullcontext():
                try:
                    with out_of_memory_fails_the_run(stop):
                        return _train_and_test(rc, device, task, splits, model, dist, run_dir, wall_started, stop,
                                               adopted, tracker)
                except RunFailed as exc:
                    if dist.is_main:  # never a metrics file that looks like a success
                        write_metrics(run_dir, {
                            "status": "failed", "reason": str(exc), **exc.details, "task": rc.task.name,
                            "dataset": rc.dataset.name, "mode": rc.mode, "device": device.kind, "seed": rc.seed,
                            "experiment": rc.experiment}, tracker, FAILED)
                    raise
                except Preempted:  # exit 75: resume=true continues, the tracked run too
                    tracker.finish(KILLED)
                    raise
                except BaseException:
                    tracker.finish(FAILED)
                    raise
        finally:
            distributed.shutdown(dist)


def write_metrics(run_dir: Path, metrics: dict[str, Any], tracker: Trackers, status: str) -> None:
    """Write metrics.json, then hand the result and the run dir's files to the trackers and close their
    runs with ``status``. metrics.json records each chosen tracker's note (``"tracking"``), rewritten
    when a tracker failed while closing."""
    if tracker.chosen:
        metrics["tracking"] = dict(tracker.notes)
    write_json(run_dir / "metrics.json", metrics)
    tracker.finish(status, metrics)
    if tracker.chosen and tracker.notes != metrics["tracking"]:
        metrics["tracking"] = dict(tracker.notes)
        write_json(run_dir / "metrics.json", metrics)


def sweep_dir() -> Optional[Path]:
    """The folder of the multirun this job belongs to (where its MLflow parent run is named), or None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(os.path.abspath(HydraConfig.get().sweep.dir))


def tracking_context(rc: RunConfig, device, model: torch.nn.Module, run_dir: Path, record: dict,
                     resume_state: Optional[dict]) -> RunContext:
    """What the trackers are told of this run: its config, the tags a tracker files it under, its name."""
    tags = {"task": rc.task.name, "dataset": rc.dataset.name, "mode": rc.mode,
            "device": getattr(model, "device_kind", device.kind),
            "device_name": getattr(model, "device_name", device.name),
            "model": rc.model.name, "experiment": str(rc.experiment or "none"), "seed": str(rc.seed),
            "framework": rc.framework}
    sweep = sweep_dir()
    name = run_dir.name if sweep else f"{rc.task.name}/{rc.dataset.name}/{run_dir.name}"
    history = resume_state["result"]["history"] if resume_state else []
    return RunContext(run_dir=Path(os.path.abspath(run_dir)), config=record, tags=tags, run_name=name,
                      resume=bool(rc.resume and rc.mode == "train"), sweep_dir=sweep, history=history)


def _train_and_test(rc: RunConfig, device, task: Task, splits: Splits, model: torch.nn.Module, dist: Dist,
                    run_dir: Path, wall_started: float, stop: StopRequest, adopted: Adopted,
                    tracker: Trackers) -> dict[str, Any]:
    # Under torchrun only process 0's run dir is real; the others read what it writes (resume).
    run_dir = Path(distributed.broadcast(str(run_dir), dist))
    compiled = compile_model(model, device) if rc.trainer.compile else False
    device.reset_peak_memory()

    record = dataclasses.asdict(rc)  # the resolved config (prepare: task.resolve)
    trainer = Trainer(rc.trainer, device, run_dir, rc.seed, record, dist, stop, tracker)
    fit = FitResult()
    resumed_from = None
    resume_state = load_resume_state(run_dir, record) if rc.mode == "train" and rc.resume else None
    if dist.is_main:  # after every check: a refused run (a changed setting on resume too) writes nothing
        write_yaml(run_dir / RUN_CONFIG, record)
        tracker.start(tracking_context(rc, device, model, run_dir, record, resume_state))
    if rc.mode == "train":
        if rc.resume and resume_state is None:
            log.info("resume=true: no %s in %s yet; starting at epoch 1", RESUME_FILE, run_dir)
        resumed_from = resume_state["epoch"] if resume_state else None
        stop.check()  # a signal during set-up whose raise some code swallowed
        fit = trainer.fit(task, model, splits, resume_state)

    stop.phase = "testing"
    stop.check()
    started = time.perf_counter()
    test = trainer.test(task, model, splits)  # under torchrun every process scores its share
    test_seconds = time.perf_counter() - started
    if not dist.is_main:  # process 0 has the merged test and writes the results
        return broadcast_metrics(None, dist)
    missing = [name for name in task.test_metric_names() if name not in test]
    if missing:  # task.metrics names what the task's test does not compute: no half-written result
        raise UserError(f"task.metrics names {', '.join(missing)}, which task {rc.task.name}'s test does not compute "
                        f"(it computes {', '.join(k for k in test if k != 'loss')}); fix task.metrics in its YAML")
    log.info("test: %s (%.1fs)", ", ".join(f"{k} {test[k]:.6f}" for k in task.test_metric_names()), test_seconds)
    coverage = coverage_record(*trainer.eval_coverage(splits.test), task.sample_unit)
    if coverage["test_subset"]:
        log.warning("the test scored a subset: %s, drawn with seed %d (trainer.limit_eval_batches=%d); these metrics "
                    "are not those of the full test set and do not compare with published numbers",
                    subset_phrase(coverage), rc.seed, rc.trainer.limit_eval_batches)

    outputs = task.save_test_outputs(run_dir) or {}

    # The contract's metric names first, then whatever else the task reports (e.g. per-pattern values).
    metrics: dict[str, Any] = {k: test[k] for k in task.test_metric_names()}
    metrics.update({k: v for k, v in test.items() if k != "loss" and k not in metrics})
    metrics.update({
        "task": rc.task.name,
        "dataset": rc.dataset.name,
        "mode": rc.mode,
        "device": getattr(model, "device_kind", device.kind),  # framework=mindspore: where MindSpore computed
        "device_name": getattr(model, "device_name", device.name),
        "framework": rc.framework,
        **getattr(model, "framework_settings", {}),  # e.g. MindSpore's version, mode and Ascend precision
        "epochs_run": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "best_val_loss": fit.best_val_loss if fit.epochs_run else None,
        **({f"best_val_{fit.monitor}": fit.best_value} if fit.epochs_run and fit.monitor != "loss" else {}),
        "monitor": fit.monitor if fit.epochs_run else None,  # which best_val_* early stopping (and a search) used
        "train_seconds": round(fit.train_seconds, 3),
        "test_seconds": round(test_seconds, 3),
        "train_samples_per_second": fit.samples_per_second,
        "peak_memory_mb": round(device.peak_memory_mb(), 1),
        "wall_seconds": round(time.perf_counter() - wall_started, 3),  # this process, set-up included
        "resumed_from_epoch": resumed_from,
        "skipped_batches": fit.skipped_batches,
        "compiled": compiled,
        "allocator": current_allocator(),
        "amp": device.amp,
        "threads": torch.get_num_threads(),
        "seq_len": rc.task.seq_len,
        "pred_len": rc.task.pred_len,
        "model": rc.model.name,
        "experiment": rc.experiment,
        "test_metrics": list(task.test_metric_names()),  # which keys above are this task's test metrics
        **coverage,
        "pretrained": rc.model.pretrained,
        "ckpt": rc.ckpt,
        # mode=test: the dataset the checkpoint was trained on (null: unknown, an official file), and
        # whether the user asked for another one (a transfer evaluation, not comparable with its results).
        "trained_on": adopted.trained_on if rc.mode == "test" else rc.dataset.name,
        "transfer_evaluation": adopted.transfer,
        "seed": rc.seed,
        "world_size": dist.world,
        **outputs,  # what the task wrote beside the metrics (pre-training: its encoder file)
        "status": "completed",
    })
    write_metrics(run_dir, metrics, tracker, FINISHED)
    (run_dir / RESUME_FILE).unlink(missing_ok=True)  # finished: checkpoint.pt keeps the best weights
    _log_table(metrics, task.test_metric_names(), run_dir, task.closing_note(outputs) if outputs else "")
    return broadcast_metrics(metrics, dist)


def broadcast_metrics(metrics: Optional[dict[str, Any]], dist: Dist) -> dict[str, Any]:
    """Process 0's metrics on every process (they all return the same result)."""
    return distributed.broadcast(metrics, dist)


def coverage_record(scored: int, total: int, unit: str) -> dict[str, Any]:
    """metrics.json's record of how much of the test split was scored (always written)."""
    return {"test_samples_scored": scored, "test_samples_total": total, "test_subset": scored < total,
            "test_sample_unit": unit}


def _log_table(metrics: dict[str, Any], names: tuple[str, ...], run_dir: Path, note: str = "") -> None:
    rows = [("task", metrics["task"]), ("dataset", metrics["dataset"]), ("mode", metrics["mode"]),
            ("device", metrics["device_name"]), ("epochs", metrics["epochs_run"])]
    mark = f" (subset: {subset_phrase(metrics)})" if metrics.get("test_subset") else ""
    rows += [(name, f"{metrics[name]:.6f}{mark}") for name in names]
    if metrics["train_samples_per_second"]:
        rows.append(("train samples/s", f"{metrics['train_samples_per_second']:.1f}"))
    rows.append(("peak memory", f"{metrics['peak_memory_mb']:.0f} MB"))
    rows.append(("wall time", f"{metrics['wall_seconds']:.1f} s"))
    rows.append(("run dir", str(run_dir)))
    width = max(len(k) for k, _ in rows)
    lines = ["result", "-" * (width + 30)] + [f"{k:<{width}}  {v}" for k, v in rows]
    show_result(log, "\n".join(lines + ([note] if note else [])))
