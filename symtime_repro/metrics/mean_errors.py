"""MSE and MAE over a whole split: the test metrics of long-term forecasting and imputation."""

from __future__ import annotations

import torch


class MeanErrors:
    """Running MSE and MAE over every element added, summed in float64 on the device.

    Adding errors batch by batch and dividing once gives the mean over all points, independent of
    the batch size, without moving predictions to the host.
    """

    def __init__(self) -> None:
        self.squared = self.absolute = None
        self.count = 0

    def add(self, error: torch.Tensor) -> None:
        error = error.float()
        squared, absolute = error.square().sum(dtype=torch.float64), error.abs().sum(dtype=torch.float64)
        self.squared = squared if self.squared is None else self.squared + squared
        self.absolute = absolute if self.absolute is None else self.absolute + absolute
        self.count += error.numel()

    def result(self) -> dict[str, float]:
        return self.result_of(self.state())

    def state(self) -> dict[str, float]:
        """The sums and the count, on the host: one share of an evaluation (metrics/merge.py adds them)."""
        if self.count == 0:
            return {"squared": 0.0, "absolute": 0.0, "count": 0}
        return {"squared": self.squared.item(), "absolute": self.absolute.item(), "count": self.count}

    @staticmethod
    def result_of(state: dict[str, float]) -> dict[str, float]:
        """MSE and MAE of a (merged) state."""
        count = state.get("count", 0)
        if count == 0:
            return {"mse": float("nan"), "mae": float("nan")}
        return {"mse": state["squared"] / count, "mae": state["absolute"] / count}
