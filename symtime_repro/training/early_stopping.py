"""Early stopping on the validation metric a task names (``Task.monitor``)."""

from __future__ import annotations

import math
from typing import Optional


class EarlyStopping:
    """Stop once the watched value has gone ``patience`` epochs without improving.

    Only a strictly better value counts, as in the official EarlyStopping: a tie is no improvement.
    A NaN never improves on anything, so a run whose validation is NaN stops after ``patience`` epochs.
    """

    def __init__(self, mode: str, patience: int, best: Optional[float] = None, bad_epochs: int = 0) -> None:
        self.higher_is_better = mode == "max"  # mode: "min" (a loss) or "max" (an accuracy)
        self.patience = patience
        self.best = best if best is not None else (-math.inf if self.higher_is_better else math.inf)
        self.bad_epochs = bad_epochs  # epochs since the last improvement (saved in last.pt)

    def update(self, value: float) -> bool:
        """Count one epoch's validation value; True when it is the best so far."""
        improved = value > self.best if self.higher_is_better else value < self.best
        if improved:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience
