"""What one ``fit()`` carries from epoch to epoch (:class:`FitState`) and hands back (:class:`FitResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..preemption import StopRequest
from .early_stopping import EarlyStopping


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


@dataclass
class FitState:
    """The objects and counters that the epochs of one ``fit()`` share, and that ``last.pt`` saves."""

    model: nn.Module  # the weights that are evaluated and saved
    train_model: nn.Module  # what the optimiser steps through: the model itself, or DDP around it
    optimizer: torch.optim.Optimizer
    params: list[nn.Parameter]  # the trainable ones (gradient clipping and finiteness look at these)
    scaler: Optional[Any]  # float16's GradScaler; None in other precisions
    scheduler: Optional[Any]  # trainer.lradj=onecycle's per-batch scheduler; None for the per-epoch ones
    train_loader: DataLoader
    stop: StopRequest  # SIGTERM / SIGINT: asked at each step boundary and after validation
    stopper: EarlyStopping
    result: FitResult
    best_weights: Optional[dict] = None  # a copy of the model's state_dict at the best epoch so far
    in_epoch: Optional[dict] = None  # where an epoch stopped by a signal is taken up again
