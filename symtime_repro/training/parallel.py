"""Data parallelism under torchrun: the model wrapped in DistributedDataParallel."""

from __future__ import annotations

from torch import nn

from ..device import Device
from ..distributed import Dist


def data_parallel(model: nn.Module, device: Device, dist: Dist) -> nn.Module:
    """The model the optimiser steps through: DDP-wrapped under torchrun, else the model itself.

    Call it after restoring a resumed run's weights: DDP starts every process from process 0's.
    """
    if not dist.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = None
    if device.kind in ("cuda", "npu"):
        ids = [device.torch_device.index]
        # Global-batch statistics, as one process would compute them (in place: the model keeps
        # its state-dict keys). PyTorch has no SyncBatchNorm on CPU; there each process
        # normalises its own share.
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=ids)
