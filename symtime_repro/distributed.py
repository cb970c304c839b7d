"""Data-parallel training under ``torchrun``: which process is which, and the little they share.

``torchrun --nproc_per_node=N -m symtime_repro …`` starts N copies of the command with
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set. Each process trains on its slice of every global
batch (the configured ``trainer.batch_size`` stays the batch one optimiser step sees, whatever N is),
gradients are averaged by DistributedDataParallel. Evaluation is shared too: each process scores a
contiguous run of whole batches, process 0 gathers and merges the tasks' states (metrics/merge.py),
computes the metrics, decides early stopping for everyone, and writes the run dir.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch

from .errors import UserError

# The process-group backend per device. Ascend's is HCCL (torch_npu registers it); we name it
# rather than rely on transfer_to_npu rewriting "nccl".
BACKENDS = {"cpu": "gloo", "cuda": "nccl", "npu": "hccl"}


@dataclass(frozen=True)
class Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """This process's place in a torchrun job (a single process when not started by torchrun)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise UserError(f"WORLD_SIZE / RANK / LOCAL_RANK must be integers (torchrun sets them): {exc}") from exc
    return Dist(world, rank, local_rank)


def init(dist: Dist, device_kind: str) -> None:
    """Join the process group (env:// rendezvous from torchrun) with the device's backend."""
    if not dist.enabled or torch.distributed.is_initialized():
        return
    torch.distributed.init_process_group(backend=BACKENDS[device_kind])


def broadcast(value: Any, dist: Dist) -> Any:
    """Process 0's ``value``, on every process."""
    if not dist.enabled:
        return value
    box = [value if dist.is_main else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(value: Any, dist: Dist) -> Optional[list[Any]]:
    """Every process's ``value`` in rank order, on process 0 (None on the others). A gather, not an
    all-gather: large values (anomaly energies) travel to process 0 only."""
    if not dist.enabled:
        return [value]
    gathered = [None] * dist.world if dist.is_main else None
    torch.distributed.gather_object(value, gathered, dst=0)
    return gathered


def share_buffers(module: torch.nn.Module, dist: Dist) -> None:
    """Process 0's buffers (BatchNorm statistics, queues) in ``module`` on every process.

    Under DDP each process's buffers follow its own last training forward (DDP copies process 0's
    only at the start of the next one), and the best weights are copied per process; before a
    shared evaluation every process takes process 0's, the ones process 0 alone would evaluate with.
    """
    if not dist.enabled:
        return
    for buffer in module.buffers():
        torch.distributed.broadcast(buffer, src=0)


def shutdown(dist: Dist) -> None:
    if dist.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
