"""Sliding windows over one series, fetched a whole batch at a time.

The series is stored once; a window is never materialised on its own. ``dataset[indices]`` with a
list of window starts gathers the batch in one indexing operation, which is what the DataLoader
asks for when it is given a BatchSampler (see :func:`make_loader`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


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


def contiguous_share(size: int, rank: int, world: int) -> slice:
    """Process ``rank``'s contiguous part of ``size`` items cut into ``world`` parts, as
    ``torch.tensor_split`` cuts them: sizes differ by at most one, the larger ones first."""
    base, extra = divmod(size, world)
    first = rank * base + min(rank, extra)
    return slice(first, first + base + (rank < extra))


class GlobalBatches(Sampler):
    """Batches of ``batch_size`` indices in a fresh shuffled order each epoch; under data
    parallelism each process takes its contiguous share of every batch.

    The order of epoch ``e`` is ``randperm(n)`` from a generator seeded with ``seed + e``: it depends
    on nothing else, so a resumed run and an N-process run see exactly the batches a single
    uninterrupted process sees (the union of the processes' shares is that batch). No batch is
    skipped: a global batch with fewer indices than processes (a tiny last batch) leaves some
    shares empty, and a process with an empty share is handed the batch's first index all the
    same (DDP needs every process in every step) with a true size of 0 (:meth:`share_sizes`),
    which the trainer weights 0, so an epoch under N processes trains what one process trains.
    """

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.rank, self.world = rank, world
        self.epoch = 0
        self.start = 0  # batches of this epoch already done (a run resumed in the middle of an epoch)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def global_sizes(self) -> list[int]:
        """The size of each global batch this epoch still yields (for the loss weighting of shares)."""
        return [min(self.batch_size, self.n - start) for start in range(0, self.n, self.batch_size)][self.start:]

    def share_sizes(self) -> list[int]:
        """How many of each global batch's indices (this epoch, still to come) are this process's
        own: 0 for an empty share, whose one stand-in index must weigh nothing."""
        return [len(range(size)[share]) for size in self.global_sizes() for share in [self._share(size)]]

    def _share(self, size: int) -> slice:
        return contiguous_share(size, self.rank, self.world)

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.n)
        for done, start in enumerate(range(0, self.n, self.batch_size)):
            if done < self.start:  # batches already trained on are not even loaded
                continue
            batch = order[start:start + self.batch_size]
            share = batch[self._share(len(batch))]
            yield (share if len(share) else batch[:1]).tolist()

    def __len__(self) -> int:
        return len(self.global_sizes())


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int = 0,
                pin_memory: bool = False, rank: int = 0, world: int = 1) -> DataLoader:
    """A DataLoader that hands the dataset whole lists of indices (one gather per batch)."""
    return DataLoader(
        dataset,
        sampler=GlobalBatches(len(dataset), batch_size, seed, shuffle, rank, world),
        batch_size=None,  # the sampler already yields batches
        # Its own generator: otherwise every epoch's iterator draws a seed from the global one, and a
        # run resumed inside an epoch would shift the dropout stream by that draw.
        generator=torch.Generator().manual_seed(seed),
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def eval_sample_count(total: int, limit: Optional[int], batch_size: int) -> int:
    """How many of a split's ``total`` samples an evaluation capped at ``limit`` batches scores."""
    return total if limit is None else min(total, limit * batch_size)


def spread_indices(total: int, count: int, seed: int) -> list[int]:
    """``count`` of ``range(total)``, drawn at random with ``seed`` and sorted.

    A capped evaluation scores these instead of the first batches: splits are often ordered (a
    UEA test file lists its cases speaker by speaker, a series runs through its seasons), so the
    first batches can hold one class or one regime only. Same arguments, same indices: validation
    sees the same subset every epoch.
    """
    if count >= total:
        return list(range(total))
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    return sorted(order[:count].tolist())
