"""Long-term forecasting (ETT, ECL, Traffic, Weather, Exchange, ILI).

Protocol of the official ``long_term_forecast.py``: windows of ``seq_len`` steps predict the next
``pred_len`` steps, stride 1; MSE loss; test MSE and MAE in scaled space over every test window.
With ``features=MS`` only the target (last) channel is scored, as in the official code.

The validation loss is the mean squared error over all validation windows. (The official code
averages per-batch means, which weighs the last, smaller batch a little more; the difference
is far below the noise between seeds and makes our value independent of the batch size.)
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..datasets import csv_series
from ..metrics.mean_errors import MeanErrors
from .base import Splits, WindowErrorsTask


class LongTermForecasting(WindowErrorsTask):
    name = "long_term"

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        # features=MS: all channels in, only the target (moved last) scored.
        self.scored = slice(-1, None) if cfg.dataset.features == "MS" else slice(None)

    def datasets(self) -> Splits:
        t = self.cfg.task
        windows, info = csv_series.window_splits(self.cfg.dataset, t.seq_len, t.pred_len, self.cfg.data.root)
        self.columns = info["columns"]
        return Splits(*windows, info)

    def build_model(self, splits: Splits) -> nn.Module:
        return self.network(splits.info["enc_in"])

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pred = model(batch["x"])[..., self.scored]
        return nn.functional.mse_loss(pred.float(), batch["y"][..., self.scored])

    @torch.inference_mode()
    def evaluation_state(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> dict:
        errors = MeanErrors()
        for batch in batches:
            pred = model(batch["x"])
            errors.add(pred[..., self.scored].float() - batch["y"][..., self.scored])
            if self.keeping is not None:
                self.keeping.keep(x=batch["x"], y=batch["y"], pred=pred)
        return {**errors.state(), **self.kept_state()}


TASK = LongTermForecasting
