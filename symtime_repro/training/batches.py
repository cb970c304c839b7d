"""Batches on their way to the model: capped by ``trainer.limit_*_batches``, moved to the device."""

from __future__ import annotations

import logging
from itertools import islice
from typing import Iterable, Iterator, Optional

from torch.utils.data import DataLoader

from ..device import Device

log = logging.getLogger(__name__)


def limit_batches(loader: DataLoader, limit: Optional[int], what: str) -> tuple[int, Iterable]:
    """(how many batches, the batches): the loader's own, or its first ``limit`` when that is fewer."""
    total = len(loader)
    if limit is not None and limit < total:
        log.info("trainer.limit_%s_batches=%d: using %d of %d %s batches", what, limit, limit, total, what)
        return limit, islice(loader, limit)
    return total, loader


def to_device(batches: Iterable[dict], device: Device) -> Iterator[dict]:
    """Each batch's tensors on ``device`` (asynchronously from pinned memory, where it is pinned)."""
    non_blocking = device.pin_memory
    for batch in batches:
        yield {k: v.to(device.torch_device, non_blocking=non_blocking) for k, v in batch.items()}


class EvalBatches:
    """An evaluation's batches on the device (iterable again), and where they start in the split:
    ``offset`` (index of the first sample) and ``batch_offset`` (index of the first batch). Under
    torchrun a process's share is a contiguous run of whole batches, so these say where in the
    split its share lies (tasks read them with ``tasks.base.share_start``)."""

    def __init__(self, loader: DataLoader, device: Device, offset: int = 0, batch_offset: int = 0) -> None:
        self.loader, self.device = loader, device
        self.offset, self.batch_offset = offset, batch_offset

    def __iter__(self) -> Iterator[dict]:
        return to_device(self.loader, self.device)

    def __len__(self) -> int:
        return len(self.loader)
