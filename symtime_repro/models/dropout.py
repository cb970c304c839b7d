"""Dropout whose masks cost what they should on CPU.

``nn.Dropout`` on CPU draws its mask with ``bernoulli_`` from torch's Mersenne Twister, about
7 ns per element, and then divides the mask by ``1 - p``: for the base model that was 28 % of a
float32 training step (17 masks, up to 38 M elements each), none of it FLOPs. Here the random
bits come from NumPy's SFC64 generator (about 1 ns per 32-bit word), the 0/1 mask is one
comparison written straight into the input's dtype, and the mask, the 1 / (1 - p) scaling and a
following residual addition are one ``addcmul`` pass: 3-4x cheaper than ``bernoulli_``.

What is kept of ``nn.Dropout``:

* the statistics: each element is kept with probability ``1 - p`` (to within 2**-33: a uniform
  32-bit word below ``round((1 - p) * 2**32)``; torch's own float draw resolves 2**-24) and
  scaled by ``1 / (1 - p)``, independently of every other element and of every other call;
* the seeding: each mask's SFC64 stream is seeded by one 63-bit number drawn from torch's
  default CPU generator, so ``torch.manual_seed`` (``seed=``) fixes every mask, and a run resumed
  from ``last.pt`` (which saves torch's random state) continues with the same masks it would have
  drawn uninterrupted;
* the interface: :class:`Dropout` subclasses ``nn.Dropout`` (no parameters, so state dicts are
  unchanged), and does what ``nn.Dropout`` does in evaluation mode, for ``p = 0``, and off the CPU
  (CUDA and Ascend draw their masks inside a fused kernel already) or under ``torch.compile``
  (which generates its own fused random numbers).

What is not kept: the random bits themselves. No two devices or frameworks share them (the
official code's masks on a GPU are not its masks on a CPU), and fidelity is checked in
evaluation, where dropout is off.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

_WORDS = 2**32
_INT32_MIN = -(2**31)


def keep_threshold(p: float) -> int:
    """Signed 32-bit threshold: a uniform int32 word below it is kept (probability ``1 - p``)."""
    return _INT32_MIN + round((1.0 - p) * _WORDS)


def random_words(numel: int) -> Tensor:
    """``numel`` uniform int32 words from SFC64, seeded from torch's default generator."""
    seed = int(torch.empty((), dtype=torch.int64).random_())  # advances torch's stream: seed= fixes it
    raw = np.random.SFC64(seed).random_raw((numel + 1) // 2)  # two 32-bit words per 64-bit draw
    return torch.from_numpy(raw).view(torch.int32)[:numel]


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype) -> Tensor:
    """A 0/1 mask of ``shape`` in ``dtype``, 1 with probability ``1 - p`` (the 1 / (1 - p) scaling
    is applied where the mask is: one pass fewer)."""
    numel = int(np.prod(shape, dtype=np.int64))
    mask = torch.empty(numel, dtype=dtype)
    torch.lt(random_words(numel), keep_threshold(p), out=mask)  # compare and convert in one pass
    return mask.view(shape)


class _Masked(torch.autograd.Function):
    """``residual + x * mask * scale`` (``residual`` may be a 0-d zero) in one ``addcmul`` pass,
    saving only the mask for the backward pass (as ``nn.Dropout`` saves its own)."""

    @staticmethod
    def forward(ctx, residual: Tensor, x: Tensor, mask: Tensor, scale: float) -> Tensor:
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return torch.addcmul(residual, x, mask, value=scale)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (mask,) = ctx.saved_tensors
        grad_x = torch.addcmul(grad.new_zeros(()), grad, mask, value=ctx.scale)
        return grad if ctx.needs_input_grad[0] else None, grad_x, None, None


def fast_dropout(x: Tensor, p: float, training: bool) -> bool:
    """Whether :func:`dropout` draws its own cheap mask here (training, 0 < p < 1, CPU, eager)."""
    return training and 0.0 < p < 1.0 and x.device.type == "cpu" and not torch.compiler.is_compiling()


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``F.dropout(x, p, training)`` with a cheap mask on CPU (same distribution, other bits)."""
    if not fast_dropout(x, p, training):
        return F.dropout(x, p, training)
    return _Masked.apply(x.new_zeros(()), x, keep_mask(x.shape, p, x.dtype), 1.0 / (1.0 - p))


def residual_dropout(residual: Tensor, x: Tensor, p: float, training: bool = True) -> Tensor:
    """``residual + dropout(x, p)``, one pass instead of two on CPU."""
    if not fast_dropout(x, p, training):
        return residual + F.dropout(x, p, training)
    if residual.shape != x.shape or residual.dtype != x.dtype:  # not a plain residual: no fusion
        return residual + dropout(x, p, training)
    return _Masked.apply(residual, x, keep_mask(x.shape, p, x.dtype), 1.0 / (1.0 - p))


def chained(*ps: float) -> float:
    """The one dropout rate equal in distribution to dropouts ``ps`` applied one after the other:
    an element survives all with probability prod(1 - p) and is scaled by 1 / prod(1 - p)."""
    keep = 1.0
    for p in ps:
        keep *= 1.0 - p
    return 1.0 - keep


class Dropout(nn.Dropout):
    """``nn.Dropout`` with :func:`dropout`'s cheap CPU masks."""

    def forward(self, x: Tensor) -> Tensor:
        if self.inplace:  # not used by our networks; keep nn.Dropout's exact behaviour
            return super().forward(x)
        return dropout(x, self.p, self.training)
