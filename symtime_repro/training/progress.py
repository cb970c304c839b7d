"""What a training epoch shows while it runs: a tqdm bar on a terminal, a few log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

import torch

log = logging.getLogger(__name__)


class Progress:
    """A tqdm bar (loss, rate, ETA) on a terminal; a few log lines with ETA otherwise."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.count = total, desc, 0
        self.started = time.perf_counter()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
        self.every = max(1, total // 5)

    def update(self, loss: torch.Tensor) -> None:
        """Count a step; read the loss (a device sync) only when it is shown."""
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)
            if self.count % max(1, self.total // 50) == 0:
                self.bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        elif self.count % self.every == 0 and self.count < self.total:
            elapsed = time.perf_counter() - self.started
            eta = elapsed / self.count * (self.total - self.count)
            log.info("%s: step %d/%d, loss %.6f, %.2f s/step, ETA %.0fs", self.desc, self.count, self.total,
                     loss.item(), elapsed / self.count, eta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
