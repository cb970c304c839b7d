"""The SymTime fine-tuning network as a MindSpore Cell: the same computation as our torch network
(symtime_repro/models/symtime.py, whose docstring lists the operations) and the same parameter names.

Every tensor of the torch state dict, buffers included (``pe.pe``, ``sdp_attn.scale``, ``cls_mask``,
BatchNorm's running statistics and ``num_batches_tracked``), is a Parameter here under the same
dotted name, so weights move across with a key-by-key copy (convert.py). Buffers are Parameters with
``requires_grad=False``: ``trainable_params()`` leaves them out, as do the frozen layers beyond
``forward_layers``.

Written with our own small layers instead of MindSpore's nn.Dense / nn.LayerNorm / nn.BatchNorm1d /
nn.Conv1d, whose parameter names (gamma, beta, moving_mean), defaults (LayerNorm eps 1e-7, BatchNorm
momentum 0.9 = 1 - torch's, Conv1d pad_mode 'same' without bias) and weight shapes (Conv1d's is 4-D)
all differ from torch's. Sliding windows (patches, the moving average, the Conv1d taps) are gathers
with precomputed indices: ``Tensor.unfold`` is im2col, not torch's unfold.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from ..errors import UserError
from .kernels import Kernels, dropout, kernels_for, xavier_bound

MAX_TOKENS = 5000  # the official positional table's length (same as the torch network)
HEADS = ("forecast", "reconstruct", "classify")


def patch_count(seq_len: int, patch_len: int, stride: int, padding_patch: bool) -> int:
    return (seq_len - patch_len) // stride + 1 + (1 if padding_patch else 0)


def _param(values: np.ndarray, trainable: bool = True) -> Parameter:
    return Parameter(Tensor(values), requires_grad=trainable)


def _uniform(rng: np.random.Generator, shape: tuple, bound: float) -> np.ndarray:
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def _windows(length: int, size: int, step: int) -> Tensor:
    """Indices [n_windows, size] of the windows of ``size`` every ``step`` over ``length`` positions."""
    starts = np.arange(0, length - size + 1, step)
    return Tensor((starts[:, None] + np.arange(size)[None, :]).astype(np.int32))


def _pad_end_replicate(x: Tensor, count: int, front: int = 0) -> Tensor:
    """Repeat the first value ``front`` times and the last ``count`` times along the last axis."""
    parts = [x]
    if front:
        parts.insert(0, ops.broadcast_to(x[..., :1], x.shape[:-1] + (front,)))
    if count:
        parts.append(ops.broadcast_to(x[..., -1:], x.shape[:-1] + (count,)))
    return ops.concat(parts, axis=-1) if len(parts) > 1 else x


# -- layers ---------------------------------------------------------------------------------------

class Linear(nn.Cell):
    """y = x Wᵀ + b with torch's names and shapes (weight [out, in])."""

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator, xavier: bool = False) -> None:
        super().__init__()
        # torch's defaults: xavier for the encoder (its own init), U(±1/sqrt(in)) for nn.Linear.
        bound = xavier_bound(in_features, out_features) if xavier else 1 / math.sqrt(in_features)
        self.weight = _param(_uniform(rng, (out_features, in_features), bound))
        bias = np.zeros(out_features, np.float32) if xavier else _uniform(rng, (out_features,), 1 / math.sqrt(in_features))
        self.bias = _param(bias)

    def construct(self, x: Tensor) -> Tensor:
        return ops.matmul(x, self.weight.swapaxes(0, 1)) + self.bias


class Placeholder(nn.Cell):
    """An empty slot: keeps torch's Sequential indices (``norm_attn.1``, ``ff.3``) in the names."""

    def construct(self, x: Tensor) -> Tensor:
        return x


class LayerNorm(nn.Cell):
    def __init__(self, size: int, kernels: Kernels) -> None:
        super().__init__()
        self.kernels = kernels
        self.weight = _param(np.ones(size, np.float32))
        self.bias = _param(np.zeros(size, np.float32))

    def construct(self, x: Tensor) -> Tensor:
        return self.kernels.layer_norm(x, self.weight, self.bias)


class BatchNorm(nn.Cell):
    """BatchNorm1d over d_model of [batch, tokens, d_model], torch's names and momentum."""

    def __init__(self, size: int, kernels: Kernels) -> None:
        super().__init__()
        self.kernels = kernels
        self.weight = _param(np.ones(size, np.float32))
        self.bias = _param(np.zeros(size, np.float32))
        self.running_mean = _param(np.zeros(size, np.float32), trainable=False)
        self.running_var = _param(np.ones(size, np.float32), trainable=False)
        self.num_batches_tracked = _param(np.array(0, np.int64), trainable=False)

    def update_running(self, mean: Tensor, unbiased_var: Tensor) -> None:
        m = 0.1  # torch's BatchNorm1d momentum: the new batch's weight
        ops.assign(self.running_mean, self.running_mean * (1 - m) + mean * m)
        ops.assign(self.running_var, self.running_var * (1 - m) + unbiased_var * m)
        self.count_batch()

    def count_batch(self) -> None:
        ops.assign(self.num_batches_tracked, self.num_batches_tracked + 1)

    def construct(self, x: Tensor) -> Tensor:
        return self.kernels.batch_norm(x, self, self.training)


def _norm_layer(norm: str, size: int, kernels: Kernels) -> nn.Cell:
    # torch wraps BatchNorm in Sequential(swap, BatchNorm1d, swap): its keys read "norm_attn.1.weight".
    if norm.lower() == "batchnorm":
        return nn.CellList([Placeholder(), BatchNorm(size, kernels), Placeholder()])
    return LayerNorm(size, kernels)


def _is_wrapped(norm: nn.Cell) -> bool:
    # Decided when the network is built: graph mode (mindspore.jit) sees a CellList as a tuple, so an
    # isinstance test inside construct cannot tell the two layouts apart.
    return isinstance(norm, nn.CellList)


class Dropout(nn.Cell):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def construct(self, x: Tensor) -> Tensor:
        if self.training and self.p > 0:
            return dropout(x, self.p)
        return x


class AttentionScale(nn.Cell):
    """Holds the stored attention temperature (``sdp_attn.scale``)."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.scale = _param(np.array(head_dim ** -0.5, np.float32), trainable=False)


class MultiHeadSelfAttention(nn.Cell):
    def __init__(self, d_model: int, n_heads: int, attn_dropout: float, proj_dropout: float,
                 kernels: Kernels, rng: np.random.Generator) -> None:
        super().__init__()
        self.kernels = kernels
        self.n_heads, self.head_dim, self.attn_dropout = n_heads, d_model // n_heads, float(attn_dropout)
        self.W_Q = Linear(d_model, d_model, rng, xavier=True)
        self.W_K = Linear(d_model, d_model, rng, xavier=True)
        self.W_V = Linear(d_model, d_model, rng, xavier=True)
        self.sdp_attn = AttentionScale(self.head_dim)
        self.to_out = nn.CellList([Linear(d_model, d_model, rng, xavier=True), Dropout(proj_dropout)])

    def construct(self, x: Tensor) -> Tensor:
        batch, tokens, _ = x.shape
        split = (batch, tokens, self.n_heads, self.head_dim)
        q = self.W_Q(x).reshape(split).swapaxes(1, 2) * self.sdp_attn.scale
        k = self.W_K(x).reshape(split).swapaxes(1, 2)
        v = self.W_V(x).reshape(split).swapaxes(1, 2)
        out = self.kernels.attention(q, k, v, self.attn_dropout, self.training)
        out = out.swapaxes(1, 2).reshape(batch, tokens, -1)
        return self.to_out[1](self.to_out[0](out))


class EncoderLayer(nn.Cell):
    """Post-norm Transformer layer: x = norm(x + attn(x)); x = norm(x + ffn(x))."""

    def __init__(self, c, kernels: Kernels, rng: np.random.Generator) -> None:
        super().__init__()
        self.kernels = kernels
        self.gelu = c.activation.lower() == "gelu"
        self.self_attn = MultiHeadSelfAttention(c.d_model, c.n_heads, c.attn_dropout, c.dropout, kernels, rng)
        self.dropout_attn = Dropout(c.dropout)
        self.norm_attn = _norm_layer(c.norm, c.d_model, kernels)
        self.ff = nn.CellList([Linear(c.d_model, c.d_ff, rng, xavier=True), Placeholder(), Dropout(c.dropout),
                               Linear(c.d_ff, c.d_model, rng, xavier=True)])
        self.dropout_ffn = Dropout(c.dropout)
        self.norm_ffn = _norm_layer(c.norm, c.d_model, kernels)
        self.wrapped_norm = _is_wrapped(self.norm_ffn)

    def norm(self, layer: nn.Cell, x: Tensor) -> Tensor:
        if self.wrapped_norm:
            return layer[1](x)
        return layer(x)

    def construct(self, x: Tensor) -> Tensor:
        x = self.norm(self.norm_attn, x + self.dropout_attn(self.self_attn(x)))
        hidden = self.ff[0](x)
        hidden = self.kernels.gelu(hidden) if self.gelu else ops.relu(hidden)
        ff = self.ff[3](self.ff[2](hidden))
        return self.norm(self.norm_ffn, x + self.dropout_ffn(ff))


class SinusoidalPositions(nn.Cell):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        position = np.arange(MAX_TOKENS, dtype=np.float32)[:, None]
        inv_freq = np.exp(np.arange(0, d_model, 2, dtype=np.float32) * -(math.log(10000.0) / d_model))
        table = np.zeros((MAX_TOKENS, d_model), np.float32)
        table[:, 0::2] = np.sin(position * inv_freq)
        table[:, 1::2] = np.cos(position * inv_freq)
        self.pe = _param(table[None], trainable=False)  # a file's values replace these on loading

    def construct(self, x: Tensor) -> Tensor:
        return x + self.pe[:, : x.shape[1]]


class PatchEncoder(nn.Cell):
    """Patch embedding, [CLS] token, positions, the first ``forward_layers`` Transformer layers."""

    def __init__(self, c, kernels: Kernels, rng: np.random.Generator) -> None:
        super().__init__()
        self.forward_layers = c.forward_layers
        self.W_P = Linear(c.patch_len, c.d_model, rng, xavier=True)
        self.pe = SinusoidalPositions(c.d_model)
        self.dropout = Dropout(c.dropout)
        self.cls_token = _param(np.zeros((1, 1, c.d_model), np.float32))
        self.cls_mask = _param(np.ones((1, 1), np.bool_), trainable=False)  # unused; part of the files
        self.layers = nn.CellList([EncoderLayer(c, kernels, rng) for _ in range(c.n_layers)])

    def construct(self, patches: Tensor) -> Tensor:
        x = self.W_P(patches)
        cls = ops.broadcast_to(self.cls_token, (x.shape[0], 1, x.shape[2]))
        x = self.dropout(self.pe(ops.concat([cls, x], axis=1)))
        for index in range(self.forward_layers):
            x = self.layers[index](x)
        return x


class FlattenHead(nn.Cell):
    def __init__(self, individual: bool, n_vars: int, in_features: int, out_len: int, dropout: float,
                 rng: np.random.Generator) -> None:
        super().__init__()
        self.individual = individual
        if individual:
            self.linears = nn.CellList([Linear(in_features, out_len, rng) for _ in range(n_vars)])
            self.dropouts = nn.CellList([Dropout(dropout) for _ in range(n_vars)])
        else:
            self.linear = Linear(in_features, out_len, rng)
            self.dropout = Dropout(dropout)

    def construct(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], x.shape[1], -1)  # token-major, as torch's flatten(-2)
        if self.individual:
            return ops.stack([self.dropouts[i](self.linears[i](x[:, i])) for i in range(len(self.linears))], axis=1)
        return self.dropout(self.linear(x))


class Conv1dSame(nn.Cell):
    """torch's Conv1d(in, out, kernel_size=3, padding=1) with bias: weight [out, in, 3], zero padding."""

    def __init__(self, in_channels: int, out_channels: int, length: int, rng: np.random.Generator) -> None:
        super().__init__()
        bound = 1 / math.sqrt(in_channels * 3)
        self.weight = _param(_uniform(rng, (out_channels, in_channels, 3), bound))
        self.bias = _param(_uniform(rng, (out_channels,), bound))
        self.taps = _windows(length + 2, 3, 1)  # [length, 3]

    def construct(self, x: Tensor) -> Tensor:
        batch, channels, length = x.shape
        padded = ops.pad(x, (1, 1))
        windows = ops.gather(padded, self.taps, 2)  # [batch, in, length, 3]
        windows = windows.swapaxes(1, 2).reshape(batch, length, channels * 3)
        out = ops.matmul(windows, self.weight.reshape(self.weight.shape[0], -1).swapaxes(0, 1)) + self.bias
        return out.swapaxes(1, 2)  # [batch, out, length]


class SymTimeCell(nn.Cell):
    """SymTime with one head. Input [batch, seq_len, channels]; output forecast [batch, pred_len,
    channels], reconstruct [batch, seq_len, channels] or classify [batch, num_classes] logits."""

    def __init__(self, head: str, enc_in: int, seq_len: int, pred_len: int, model_cfg,
                 num_classes: Optional[int] = None, kernels: Optional[Kernels] = None, seed: int = 0) -> None:
        super().__init__()
        out_lengths = {"forecast": pred_len, "reconstruct": seq_len, "classify": None}
        if head not in out_lengths:
            raise UserError(f"task.head={head!r}: the network has the heads {', '.join(HEADS)}")
        c = model_cfg
        kernels = kernels or kernels_for()
        rng = np.random.default_rng(seed)
        self.head, self.seq_len = head, seq_len
        self.kernels_name = kernels.name
        self.patch_len, self.stride, self.padding_patch = c.patch_len, c.stride, c.padding_patch
        self.n_patches = patch_count(seq_len, c.patch_len, c.stride, c.padding_patch)
        if self.n_patches < 1:
            raise UserError(f"task.seq_len={seq_len} is shorter than model.patch_len={c.patch_len}")
        self.time_encoder = PatchEncoder(c, kernels, rng)
        for index in range(c.forward_layers, c.n_layers):  # layers that never run stay frozen
            for param in self.time_encoder.layers[index].get_parameters():
                param.requires_grad = False
        self.kernels = kernels
        out_len = out_lengths[head]
        self.use_avg = c.use_avg and head != "classify"
        if c.use_avg:  # built also for classification (unused), as the official files hold it
            self.moving_avg = c.moving_avg
            self.projection_trend = Linear(seq_len, out_len if out_len is not None else seq_len, rng)
            half = (c.moving_avg - 1) // 2
            self.trend_windows = _windows(seq_len + 2 * half, c.moving_avg, 1)
        padded_len = seq_len + (c.stride if c.padding_patch else 0)
        tokens_per_channel = self.n_patches + 1
        if head == "classify":
            if num_classes is None or num_classes < 2:
                raise UserError("the classify head needs num_classes >= 2 (derived from the data)")
            self.use_conv1d = c.conv1d
            channels = c.out_channels if c.conv1d else enc_in
            tokens = channels * self.n_patches + 1
            if tokens > MAX_TOKENS:
                raise UserError(f"classification would need {tokens} tokens but the encoder has "
                                f"{MAX_TOKENS} positions: raise model.stride or lower model.out_channels")
            if c.conv1d:
                self.conv1d = Conv1dSame(enc_in, c.out_channels, seq_len, rng)
            self.ln_proj = LayerNorm(c.d_model * tokens, kernels)
            self.classifier = Linear(c.d_model * tokens, num_classes, rng)
        else:
            if tokens_per_channel > MAX_TOKENS:
                raise UserError(f"task.seq_len={seq_len} gives {tokens_per_channel} tokens; the encoder has "
                                f"{MAX_TOKENS} positions: raise model.stride")
            self.flatten_head = FlattenHead(c.individual, enc_in, c.d_model * tokens_per_channel, out_len,
                                            c.out_dropout, rng)
        self.patch_windows = _windows(padded_len, c.patch_len, c.stride)

    def _patch(self, x: Tensor) -> Tensor:
        """[batch, channels, seq_len] -> [batch, channels, n_patches, patch_len]."""
        if self.padding_patch:
            x = _pad_end_replicate(x, self.stride)
        return ops.gather(x, self.patch_windows, 2)

    def _trend(self, x: Tensor) -> Tensor:
        half = (self.moving_avg - 1) // 2
        padded = _pad_end_replicate(x, half, front=half)
        return ops.gather(padded, self.trend_windows, 2).mean(axis=-1)

    @staticmethod
    def _normalise(x: Tensor):
        mean = ops.stop_gradient(x.mean(axis=-1, keep_dims=True))
        x = x - mean
        std = ops.sqrt((x * x).mean(axis=-1, keep_dims=True) + 1e-5)
        return x / std, mean, std

    def construct(self, x: Tensor) -> Tensor:
        x = x.swapaxes(1, 2)  # [batch, channels, seq_len]
        if self.head == "classify":
            return self._classify(x)
        return self._sequence_to_sequence(x)

    def _sequence_to_sequence(self, x: Tensor) -> Tensor:
        x, mean, std = self._normalise(x)
        trend_out = None
        if self.use_avg:
            trend = self._trend(x)
            x = x - trend
            trend_out = self.projection_trend(trend)
        batch, channels, _ = x.shape
        patches = self._patch(x).reshape(batch * channels, self.n_patches, self.patch_len)
        tokens = self.time_encoder(patches)
        y = self.flatten_head(tokens.reshape(batch, channels, tokens.shape[1], tokens.shape[2]))
        if trend_out is not None:
            y = y + trend_out
        return (y * std + mean).swapaxes(1, 2)

    def _classify(self, x: Tensor) -> Tensor:
        x, _, _ = self._normalise(x)
        if self.use_conv1d:
            x = self.conv1d(x)
        batch, channels, _ = x.shape
        patches = self._patch(x).reshape(batch, channels * self.n_patches, self.patch_len)
        tokens = self.kernels.gelu(self.time_encoder(patches))
        return self.classifier(self.ln_proj(tokens.reshape(batch, -1)))


def build_network(head: str, enc_in: int, seq_len: int, pred_len: int, model_cfg,
                  num_classes: Optional[int] = None, device_target: Optional[str] = None,
                  seed: int = 0) -> SymTimeCell:
    """The network for ``head`` with the kernels of ``device_target`` (default: the MindSpore context's)."""
    return SymTimeCell(head, enc_in, seq_len, pred_len, model_cfg, num_classes, kernels_for(device_target), seed)


def state_names(cell: nn.Cell) -> dict[str, Parameter]:
    """Every Parameter under its dotted path (the torch state dict's key)."""
    return dict(cell.parameters_and_names())


def forward_numpy(cell: nn.Cell, x: np.ndarray) -> np.ndarray:
    """Run the network on a numpy batch [batch, seq_len, channels] (float32) and return numpy."""
    return cell(Tensor(np.ascontiguousarray(x, dtype=np.float32))).asnumpy()
