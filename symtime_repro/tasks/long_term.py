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

from ..data import csv_series
from ..data.windows import SlidingWindows
from ..errors import UserError
from ..models import build_model
from . import Splits


class LongTermForecasting:
    name = "long_term"

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        # features=MS: all channels in, only the target (moved last) scored.
        self.scored = slice(-1, None) if cfg.dataset.features == "MS" else slice(None)

    def datasets(self) -> Splits:
        t = self.cfg.task
        series = csv_series.load_splits(self.cfg.dataset, t.seq_len, self.cfg.data.root)
        try:
            train, val, test = (SlidingWindows(part, t.seq_len, t.pred_len)
                                for part in (series.train, series.val, series.test))
        except ValueError as exc:
            raise UserError(f"dataset {self.cfg.dataset.name}: task.seq_len={t.seq_len} + task.pred_len="
                            f"{t.pred_len} do not fit in a split ({exc})") from exc
        info = {"enc_in": series.n_channels, "columns": series.columns, "file": str(series.path)}
        return Splits(train, val, test, info)

    def build_model(self, splits: Splits) -> nn.Module:
        t = self.cfg.task
        return build_model(self.name, splits.info["enc_in"], t.seq_len, t.pred_len, self.cfg.model)

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pred = model(batch["x"])[..., self.scored]
        return nn.functional.mse_loss(pred.float(), batch["y"][..., self.scored])

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        squared = absolute = None
        count = 0
        for batch in batches:
            err = model(batch["x"])[..., self.scored].float() - batch["y"][..., self.scored]
            # Sums in float64 so a long test set does not lose precision.
            s, a = err.square().sum(dtype=torch.float64), err.abs().sum(dtype=torch.float64)
            squared = s if squared is None else squared + s
            absolute = a if absolute is None else absolute + a
            count += err.numel()
        if count == 0:
            return {"loss": float("nan"), "mse": float("nan"), "mae": float("nan")}
        mse = (squared / count).item()
        return {"loss": mse, "mse": mse, "mae": (absolute / count).item()}

    def test_metric_names(self) -> tuple[str, ...]:
        return ("mse", "mae")
