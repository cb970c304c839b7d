"""Imputation on the ETT/csv datasets (``task=imputation task.mask_ratio=0.125``).

Protocol of the official ``imputation.py``: windows of ``seq_len`` steps (no horizon), each point
hidden with probability ``mask_ratio`` (masked inputs set to 0), the network reconstructs the
window; loss and test MSE/MAE over the hidden points only (the target channel alone under
``features=MS``).

Masks. Training masks are fresh random draws every batch, as officially. Validation and test masks
officially come from the global RNG, so the test metric changes from run to run and the
validation set changes every epoch. By default (``task.mask_rng=seeded``) the mask of the ``i``-th
window an evaluation scores comes from its own generator seeded from (``seed``, ``i``)
(:func:`~symtime_repro.tasks.base.eval_generator`): the same seed gives the same masks, hence the
same metrics, on every run and device, for any ``trainer.eval_batch_size`` (a checkpoint tested
later with another batch size scores the same masks) and under any number of torchrun processes,
and early stopping compares epochs on the same masks.
``task.mask_rng=global`` reproduces the official behaviour (under torchrun each process then draws
its share's masks from its own global RNG).

The official network also computes a neighbour interpolation of the zeroed points and then
discards it, so it has no effect on the output; we don't compute it.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch import nn

from ..datasets import csv_series
from ..metrics.mean_errors import MeanErrors
from .base import Splits, WindowErrorsTask, eval_generator, share_start


def draw_mask(shape: torch.Size, ratio: float, device: torch.device,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Boolean mask, True where a point is hidden (official: uniform draw <= ratio)."""
    if generator is None:
        return torch.rand(shape, device=device) <= ratio
    return (torch.rand(shape, generator=generator) <= ratio).to(device)


def seeded_masks(shape: torch.Size, ratio: float, device: torch.device, seed: int, first: int) -> torch.Tensor:
    """The masks of a batch of ``shape[0]`` windows, the ``first``-th scored window onwards: window
    ``i``'s from its own generator seeded from (``seed``, ``i``), whatever batch it falls in."""
    return torch.stack([draw_mask(shape[1:], ratio, device, eval_generator(seed, first + j))
                        for j in range(shape[0])])


class Imputation(WindowErrorsTask):
    name = "imputation"

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.ratio = cfg.task.mask_ratio
        self.scored = slice(-1, None) if cfg.dataset.features == "MS" else slice(None)

    def datasets(self) -> Splits:
        windows, info = csv_series.window_splits(self.cfg.dataset, self.cfg.task.seq_len, 0, self.cfg.data.root)
        self.columns = info["columns"]
        return Splits(*windows, info)

    def build_model(self, splits: Splits) -> nn.Module:
        return self.network(splits.info["enc_in"])

    def _hidden_error(self, output: torch.Tensor, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Errors at the hidden (scored) points only."""
        hidden = hidden[..., self.scored]
        return output[..., self.scored].float()[hidden] - x[..., self.scored][hidden]

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["x"]
        hidden = draw_mask(x.shape, self.ratio, x.device)
        return self._hidden_error(model(x.masked_fill(hidden, 0.0)), x, hidden).square().mean()

    @torch.inference_mode()
    def evaluation_state(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> dict:
        seeded = self.cfg.task.mask_rng == "seeded"
        window = share_start(batches)[0]  # the first window this share scores
        errors = MeanErrors()
        for batch in batches:
            x = batch["x"]
            hidden = (seeded_masks(x.shape, self.ratio, x.device, self.cfg.seed, window) if seeded
                      else draw_mask(x.shape, self.ratio, x.device))
            window += x.shape[0]
            output = model(x.masked_fill(hidden, 0.0))
            errors.add(self._hidden_error(output, x, hidden))
            if self.keeping is not None:
                self.keeping.keep(x=x.masked_fill(hidden, 0.0), y=x, pred=output, mask=hidden)
        return {**errors.state(), **self.kept_state()}

    def test_metrics(self, state: dict) -> dict:
        return {**super().test_metrics(state), "mask_ratio": self.ratio}


TASK = Imputation
