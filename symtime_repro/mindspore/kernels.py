"""The handful of operations whose fast MindSpore kernel exists on Ascend only, chosen once per device.

MindSpore 2.10's ``mint`` operations (GELU, LayerNorm, BatchNorm, Dropout, replicate padding,
Conv1d, var) and ``ops.flash_attention_score`` have no CPU kernel: on CPU they fail with "kernel …
unregistered", and in PyNative mode the error may surface at a later operation. So the network
calls these four operations through a ``Kernels`` record:

* ``portable``: written with ``ops`` that have CPU (and GPU/Ascend) kernels. The CPU tests run this
  one, so they cover the whole network structure;
* ``ascend``: the ``mint`` fused kernels and flash attention, selected when the device target is
  Ascend. Written from MindSpore's documentation (torch semantics: BatchNorm momentum 0.1 with the
  update ``new = (1 - momentum) * old + momentum * batch``, LayerNorm eps given explicitly).

Every function here computes exactly what our torch network computes: exact (erf) GELU, LayerNorm
and BatchNorm with eps 1e-5, attention softmax(q kᵀ) v with the temperature already applied to q.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import mindspore as ms
from mindspore import Tensor, ops

EPS = 1e-5  # torch's LayerNorm / BatchNorm eps; MindSpore's nn.LayerNorm default is 1e-7
BATCH_NORM_MOMENTUM = 0.1  # torch's convention (weight of the new batch); nn.BatchNorm1d's 0.9 is 1 - this


@dataclass(frozen=True)
class Kernels:
    name: str
    gelu: Callable[[Tensor], Tensor]
    # (x [..., d], weight [d], bias [d]) -> normalised over the last axis
    layer_norm: Callable[[Tensor, Tensor, Tensor], Tensor]
    # (x [batch, tokens, d], bn cell, training) -> normalised per d over batch and tokens
    batch_norm: Callable[[Tensor, "object", bool], Tensor]
    # (q, k, v [batch, heads, tokens, head_dim], q already scaled, dropout p, training) -> same shape
    attention: Callable[[Tensor, Tensor, Tensor, float, bool], Tensor]


# -- portable: ops with kernels on every device ------------------------------------------------------

def _gelu_erf(x: Tensor) -> Tensor:
    # ops.gelu defaults to the tanh approximation (as does nn.GELU); torch's default is the exact one.
    return ops.gelu(x, approximate="none")


def _layer_norm(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    mean = x.mean(axis=-1, keep_dims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keep_dims=True)  # biased, as torch
    return centred / ops.sqrt(var + EPS) * weight + bias


def _batch_norm(x: Tensor, bn, training: bool) -> Tensor:
    """BatchNorm1d over d_model of [batch, tokens, d]: batch statistics and a running-average update
    in training (torch's: biased variance to normalise, unbiased into running_var), running stats in eval."""
    if training:
        mean = x.mean(axis=(0, 1))
        centred = x - mean
        var = (centred * centred).mean(axis=(0, 1))
        count = x.shape[0] * x.shape[1]
        bn.update_running(ops.stop_gradient(mean), ops.stop_gradient(var * count / max(count - 1, 1)))
        return centred / ops.sqrt(var + EPS) * bn.weight + bn.bias
    return (x - bn.running_mean) / ops.sqrt(bn.running_var + EPS) * bn.weight + bn.bias


def dropout(x: Tensor, p: float) -> Tensor:
    """Inverted dropout as a mask product. ops.dropout's gradient fails to compile in graph mode on CPU
    (MindSpore 2.10: DropoutGrad gets a mask of another rank); a product differentiates everywhere."""
    keep = (ops.rand_like(x) >= p).astype(x.dtype)
    return x * keep / (1.0 - p)


def _attention(q: Tensor, k: Tensor, v: Tensor, p: float, training: bool) -> Tensor:
    weights = ops.softmax(ops.matmul(q, k.swapaxes(-1, -2)), axis=-1)
    if training and p > 0:
        weights = dropout(weights, p)
    return ops.matmul(weights, v)


PORTABLE = Kernels("portable", _gelu_erf, _layer_norm, _batch_norm, _attention)


# -- Ascend: mint's fused kernels and flash attention -------------------------------------------------

def _ascend_kernels() -> Kernels:
    from mindspore import mint  # imported here: CPU runs never need it

    F = mint.nn.functional

    def gelu(x: Tensor) -> Tensor:
        return F.gelu(x, approximate="none")

    def layer_norm(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        return F.layer_norm(x, (x.shape[-1],), weight, bias, EPS)

    def batch_norm(x: Tensor, bn, training: bool) -> Tensor:
        # mint's batch_norm wants channels second, [N, C, *], and updates the running stats in place.
        y = F.batch_norm(x.swapaxes(1, 2), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                         training, BATCH_NORM_MOMENTUM, EPS)
        if training:
            bn.count_batch()
        return y.swapaxes(1, 2)

    def attention(q: Tensor, k: Tensor, v: Tensor, dropout: float, training: bool) -> Tensor:
        # flash_attention_score takes float16/bfloat16 and a head size that is a multiple of 16;
        # anything else (the tiny float32 test model) takes the plain path.
        if q.dtype in (ms.float16, ms.bfloat16) and q.shape[-1] % 16 == 0:
            keep = 1.0 - dropout if training else 1.0
            return ops.flash_attention_score(q, k, v, q.shape[1], keep_prob=keep, scalar_value=1.0,
                                             input_layout="BNSD")
        return _attention(q, k, v, dropout, training)

    return Kernels("ascend", gelu, layer_norm, batch_norm, attention)


def kernels_for(device_target: str | None = None) -> Kernels:
    """The kernels for ``device_target`` (default: MindSpore's current context): Ascend gets mint's
    fused ones, every other target the portable ones."""
    target = device_target or ms.get_context("device_target")
    return _ascend_kernels() if str(target).lower() == "ascend" else PORTABLE


def xavier_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))
