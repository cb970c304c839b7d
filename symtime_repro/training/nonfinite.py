"""NaN/inf losses and gradients: found on the device, reported with the epoch and step they came at.

A step's finiteness stays a device tensor: reading it would wait for an accelerator, so the loop
reads it only where it reads the loss anyway (or every step with ``trainer.on_nonfinite=skip``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..distributed import Dist
from ..errors import RunFailed


def loss_and_grads_finite(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    """Whether ``loss`` and every gradient of ``params`` are finite, as a boolean device tensor."""
    grads = [p.grad for p in params if p.grad is not None]
    grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) if grads \
        else torch.zeros((), device=loss.device)
    return torch.isfinite(loss.detach()) & torch.isfinite(grad_norm)


def stop_if_nonfinite(first_bad: torch.Tensor, epoch: int, run_dir: Path, dist: Dist) -> None:
    """Raise RunFailed if a step of this epoch (on any process) had a NaN/inf loss or gradient.

    ``first_bad``: this process's first such step of the epoch (0-based), or -1.
    """
    bad = (first_bad >= 0).to(torch.long)
    if dist.enabled:
        torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
    if not bool(bad):
        return
    where = f"epoch {epoch}, step {int(first_bad) + 1}" if int(first_bad) >= 0 else \
        f"epoch {epoch} (in another process)"
    kept = (f"The best checkpoint so far is kept: {run_dir / 'checkpoint.pt'}."
            if (run_dir / "checkpoint.pt").is_file() else "No epoch had finished, so there is no checkpoint.")
    raise RunFailed(f"the training loss or a gradient became NaN/inf at {where}; the weights of that step "
                    f"are unusable, so the run stopped. {kept} "
                    f"Lower trainer.lr, check the data for NaN/inf (python -m symtime_repro.data verify), "
                    f"or set trainer.on_nonfinite=skip to skip such batches", epoch=epoch,
                    step=int(first_bad) + 1 if int(first_bad) >= 0 else None)
