"""The official learning-rate schedules (``trainer.lradj``): the fine-tuning ones, applied after each
epoch, and pre-training's OneCycle, stepped after every batch."""

from __future__ import annotations

import math
from typing import Optional

import torch

TYPE2_SCHEDULE = {2: 5e-5, 4: 1e-5, 6: 5e-6, 8: 1e-6, 10: 5e-7, 15: 1e-7, 20: 5e-8}


def scheduled_lr(lradj: str, base_lr: float, epoch: int, total_epochs: int) -> Optional[float]:
    """Learning rate to use after finishing ``epoch`` (1-based), or None to keep the current one.

    The official ``adjust_learning_rate``: type1 halves every epoch, type2 follows a fixed table
    (independent of the base rate), cosine anneals over ``total_epochs``.
    """
    if lradj == "type1":
        return base_lr * 0.5 ** (epoch - 1)
    if lradj == "type2":
        return TYPE2_SCHEDULE.get(epoch)
    if lradj == "cosine":
        return base_lr / 2 * (1 + math.cos(epoch / total_epochs * math.pi))
    return None  # constant and onecycle (stepped per batch by its scheduler)


def per_batch_scheduler(optimizer: torch.optim.Optimizer, cfg, steps_per_epoch: int):
    """``trainer.lradj=onecycle``: the official pre-training schedule (utils/optimizer_interface.py),
    a OneCycleLR over every batch of every epoch; None for the per-epoch schedules.

    The official code sizes it with the batches of the first data chunk only (``loader_len`` of one
    chunk), so with more than one chunk it stops with PyTorch's "Tried to step ... times" error;
    with one chunk, the only case that runs, that is all the batches, as here.
    """
    if cfg.lradj != "onecycle":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=max(1, steps_per_epoch * cfg.epochs),
        pct_start=cfg.warmup_epochs / cfg.epochs, anneal_strategy="cos", cycle_momentum=True,
        base_momentum=0.85, max_momentum=0.95)


def follow_schedule(optimizer: torch.optim.Optimizer, cfg, epoch: int) -> None:
    """Set the learning rate for the epoch after ``epoch``, as ``cfg`` (a TrainerConfig) schedules it."""
    new_lr = scheduled_lr(cfg.lradj, cfg.lr, epoch, cfg.epochs)
    if new_lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = new_lr
