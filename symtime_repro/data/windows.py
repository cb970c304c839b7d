"""Sliding windows over one series, fetched a whole batch at a time.

The series is stored once; a window is never materialised on its own. ``dataset[indices]`` with a
list of window starts gathers the batch in one indexing operation, which is what the DataLoader
asks for when it is given a BatchSampler (see :func:`make_loader`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler


class SlidingWindows(Dataset):
    """Windows of ``input_len`` steps (``x``) followed by ``target_len`` steps (``y``), starting
    every ``step`` steps: ``(T - input_len - target_len) // step + 1`` windows (the official count).

    With ``target_len=0`` only ``x`` is returned (reconstruction tasks). With ``labels`` (one per
    time step) each window also carries the labels of its ``x`` steps (anomaly detection).
    """

    def __init__(self, series: np.ndarray, input_len: int, target_len: int = 0, step: int = 1,
                 labels: Optional[np.ndarray] = None) -> None:
        if series.ndim != 2:
            raise ValueError(f"series must be [time, channels], got shape {tuple(series.shape)}")
        if input_len < 1 or step < 1:
            raise ValueError(f"windows need a length and a step >= 1, got {input_len} and {step}")
        if labels is not None and len(labels) != len(series):
            raise ValueError(f"{len(labels)} labels for a series of {len(series)} steps")
        # from_numpy shares memory with a float32 C-contiguous array: no copy of the series.
        self.series = torch.from_numpy(np.ascontiguousarray(series, dtype=np.float32))
        self.labels = None if labels is None else torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int8))
        self.input_len, self.target_len, self.step = input_len, target_len, step
        self._x_steps = torch.arange(input_len)
        self._y_steps = torch.arange(input_len, input_len + target_len)
        self._length = (series.shape[0] - input_len - target_len) // step + 1
        if series.shape[0] < input_len + target_len:
            raise ValueError(f"series of {series.shape[0]} steps is shorter than one window "
                             f"({input_len} + {target_len})")

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int | Sequence[int]) -> dict[str, torch.Tensor]:
        windows = torch.as_tensor(index, dtype=torch.long).reshape(-1, 1)
        if len(windows) and (int(windows.min()) < 0 or int(windows.max()) >= self._length):
            raise IndexError(f"window index out of range [0, {self._length})")
        starts = windows * self.step
        batch = {"x": self.series[starts + self._x_steps]}
        if self.target_len:
            batch["y"] = self.series[starts + self._y_steps]
        if self.labels is not None:
            batch["labels"] = self.labels[starts + self._x_steps]
        if isinstance(index, (int, np.integer)):
            batch = {k: v[0] for k, v in batch.items()}
        return batch


def loader_generator(loader: DataLoader) -> Optional[torch.Generator]:
    """The generator that shuffles a loader made by :func:`make_loader` (None if it doesn't shuffle)."""
    inner = getattr(getattr(loader, "sampler", None), "sampler", None)
    return getattr(inner, "generator", None)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int = 0,
                pin_memory: bool = False, drop_last: bool = False) -> DataLoader:
    """A DataLoader that hands the dataset whole lists of indices (one gather per batch)."""
    generator: Optional[torch.Generator] = None
    if shuffle:
        generator = torch.Generator().manual_seed(seed)
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        sampler=BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last),
        batch_size=None,  # the sampler already yields batches
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
