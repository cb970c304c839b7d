"""The SymTime fine-tuning network: patch Transformer encoder plus one of three heads.

Written from the official implementation's *behaviour* (wwhenxuan/SymTime, models/finetune_model.py
and layers/), which we read for the exact operations:

* instance normalisation per window and channel (mean, biased variance + 1e-5), undone at the end;
* optional moving-average decomposition (edge-replicated, kernel 25): the seasonal part goes through
  the encoder, the trend part through one linear layer over time, and the two are added;
* replication padding by ``stride`` at the end, then patches of ``patch_len`` every ``stride``;
* a [CLS] token in front, fixed sinusoidal positions, post-norm Transformer layers with BatchNorm
  over the model dimension; only the first ``forward_layers`` of the ``n_layers`` layers run and the
  rest are frozen (they stay in the state dict so pre-trained files load unchanged);
* a flatten head over all tokens, [CLS] included, shared by the channels (or one per channel).

Module and parameter names are those of the official state dicts (docs/contract.md), so the
official ``finetuning.pth`` and ``checkpoint.pth`` files load without any key translation.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from .dropout import Dropout, chained, dropout, fast_dropout, residual_dropout

MAX_TOKENS = 5000  # length of the official positional table (pe.pe is stored in the files)


def patch_count(seq_len: int, patch_len: int, stride: int, padding_patch: bool) -> int:
    """Number of patches the encoder sees for a window of ``seq_len`` (without the [CLS] token)."""
    return (seq_len - patch_len) // stride + 1 + (1 if padding_patch else 0)


class _SwapTokenAxes(nn.Module):
    """[batch, tokens, d_model] <-> [batch, d_model, tokens], so BatchNorm1d normalises d_model."""

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


class TokenBatchNorm(nn.Sequential):
    """BatchNorm over d_model of [batch, tokens, d_model], statistics over every (batch, token).

    The official layer is ``Sequential(Transpose, BatchNorm1d, Transpose)``, and the Sequential is
    part of the checkpoint format (keys read "norm_attn.1.weight"), so the children stay. The
    forward pass hands BatchNorm1d the same values as rows of a [batch * tokens, d_model] view
    instead: the same normalisation without the two transposed copies per call (and their two in
    the backward pass).
    """

    def __init__(self, d_model: int) -> None:
        super().__init__(_SwapTokenAxes(), nn.BatchNorm1d(d_model), _SwapTokenAxes())

    def forward(self, x: Tensor) -> Tensor:
        return self[1](x.reshape(-1, x.shape[-1])).view(x.shape)


def _norm_layer(norm: str, d_model: int) -> nn.Module:
    return TokenBatchNorm(d_model) if norm.lower() == "batchnorm" else nn.LayerNorm(d_model)


def _activation(name: str) -> nn.Module:
    return nn.GELU() if name.lower() == "gelu" else nn.ReLU()


class SinusoidalPositions(nn.Module):
    """Fixed sin/cos positions added to the tokens (stored as the buffer ``pe``)."""

    def __init__(self, d_model: int, max_len: int = MAX_TOKENS) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * inv_freq)
        table[:, 1::2] = torch.cos(position * inv_freq)
        self.register_buffer("pe", table.unsqueeze(0))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pe[:, : x.size(1)]


class _AttentionScale(nn.Module):
    """Holds the attention temperature; the official files store it as ``sdp_attn.scale``."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(head_dim**-0.5))


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, attn_dropout: float, proj_dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.attn_dropout = attn_dropout
        self.W_Q = nn.Linear(d_model, d_model)
        self.W_K = nn.Linear(d_model, d_model)
        self.W_V = nn.Linear(d_model, d_model)
        self.sdp_attn = _AttentionScale(self.head_dim)
        self.to_out = nn.Sequential(nn.Linear(d_model, d_model), Dropout(proj_dropout))

    def forward(self, x: Tensor, allowed: Optional[Tensor] = None) -> Tensor:
        """``allowed``: None (every token sees every token, as in fine-tuning), a boolean
        [batch, 1, tokens, tokens] mask, True where a query may attend to a key, or a float one added
        to the scores (pre-training)."""
        return self.to_out[1](self.attend(x, allowed))

    def attend(self, x: Tensor, allowed: Optional[Tensor] = None) -> Tensor:
        """The attention output projected by ``to_out``'s linear layer, before its dropout (which
        :class:`EncoderLayer` applies together with the layer's own, see there)."""
        batch, tokens, _ = x.shape
        # Q, K and V in one matmul over the stacked weights (the parameters stay three, as in the
        # official files): one pass over x and a wider, more efficient product.
        weight = torch.cat([self.W_Q.weight, self.W_K.weight, self.W_V.weight])
        bias = torch.cat([self.W_Q.bias, self.W_K.bias, self.W_V.bias])
        qkv = F.linear(x, weight, bias).view(batch, tokens, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # [batch, heads, tokens, head_dim] each
        # The stored scale (not 1/sqrt(d)) is the temperature; applying it to q keeps it a tensor
        # (no host sync) and lets the fused kernel run with scale 1.
        q = q * self.sdp_attn.scale.to(q.dtype)
        p = self.attn_dropout if self.training else 0.0
        if allowed is None and fast_dropout(q, p, self.training):
            # Training with dropout on CPU: scaled_dot_product_attention would fall back to its
            # unfused path and draw the mask with bernoulli_; the same three steps with the cheap mask.
            out = dropout(torch.matmul(q, k.transpose(-2, -1)).softmax(-1), p) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p, scale=1.0)
        return self.to_out[0](out.transpose(1, 2).reshape(batch, tokens, -1))


class EncoderLayer(nn.Module):
    """Post-norm Transformer layer: x = norm(x + attn(x)); x = norm(x + ffn(x)).

    As in the official layer, the attention output passes two dropouts (``to_out``'s, then
    ``dropout_attn``); they are applied as one, with the rate :func:`~.dropout.chained` gives
    (the same distribution, half the masks), fused with the residual addition.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, norm: str, dropout: float,
                 attn_dropout: float, activation: str) -> None:
        super().__init__()
        self.self_attn = MultiHeadSelfAttention(d_model, n_heads, attn_dropout, dropout)
        self.dropout_attn = Dropout(dropout)
        self.norm_attn = _norm_layer(norm, d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, d_ff), _activation(activation), Dropout(dropout), nn.Linear(d_ff, d_model)
        )
        self.dropout_ffn = Dropout(dropout)
        self.norm_ffn = _norm_layer(norm, d_model)

    def forward(self, x: Tensor, allowed: Optional[Tensor] = None) -> Tensor:
        attn_p = chained(self.self_attn.to_out[1].p, self.dropout_attn.p)
        x = self.norm_attn(residual_dropout(x, self.self_attn.attend(x, allowed), attn_p, self.training))
        return self.norm_ffn(residual_dropout(x, self.ff(x), self.dropout_ffn.p, self.training))


class PatchEncoder(nn.Module):
    """Time-series encoder: patch embedding, [CLS] token, positions, Transformer layers.

    Its state dict is exactly the official pre-trained file (``finetuning.pth``).
    """

    def __init__(self, patch_len: int, n_layers: int, d_model: int, n_heads: int, d_ff: int,
                 norm: str, dropout: float, attn_dropout: float, activation: str,
                 forward_layers: int) -> None:
        super().__init__()
        self.forward_layers = forward_layers
        self.W_P = nn.Linear(patch_len, d_model)
        self.pe = SinusoidalPositions(d_model)
        self.dropout = Dropout(dropout)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        # Unused by fine-tuning, but part of the official files (an attention-mask helper).
        self.register_buffer("cls_mask", torch.ones(1, 1, dtype=torch.bool))
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, norm, dropout, attn_dropout, activation)
            for _ in range(n_layers)
        )
        self.apply(_xavier_linear)

    def forward(self, patches: Tensor, allowed: Optional[Tensor] = None, all_layers: bool = False) -> Tensor:
        """[batch, n_patches, patch_len] -> [batch, 1 + n_patches, d_model].

        ``allowed`` (pre-training): boolean [batch, 1, 1 + n_patches, 1 + n_patches], True where a
        token may attend to another ([CLS] first). ``all_layers``: run every layer (pre-training),
        not only the first ``forward_layers`` (fine-tuning).
        """
        x = self.W_P(patches)
        x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)
        x = self.dropout(self.pe(x))
        for layer in (self.layers if all_layers else self.layers[: self.forward_layers]):
            x = layer(x, allowed)
        return x


def encoder_state_size(model_cfg) -> int:
    """Number of values in the encoder's state dict (weights and buffers), from the config alone.

    Lets a run refuse an encoder that cannot fit in memory before building it layer by layer
    (a mistyped model.n_layers=2000000000 would otherwise build for hours, then fail).
    """
    d, d_ff = model_cfg.d_model, model_cfg.d_ff
    batch_norm = model_cfg.norm.lower() == "batchnorm"
    norm = 4 * d + 1 if batch_norm else 2 * d  # weight, bias (+ running mean, var, batch count)
    layer = 4 * (d * d + d) + 1 + (d * d_ff + d_ff) + (d_ff * d + d) + 2 * norm  # + 1: attention scale
    # W_P, positions buffer, [CLS] token, cls_mask, then the layers
    return (model_cfg.patch_len * d + d) + MAX_TOKENS * d + d + 1 + model_cfg.n_layers * layer


def _xavier_linear(module: nn.Module) -> None:
    # The official encoder's initialisation; it matters only when training from scratch.
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class FlattenHead(nn.Module):
    """Flattens [batch, channels, tokens, d_model] per channel and maps it to ``out_len`` steps."""

    def __init__(self, individual: bool, n_vars: int, in_features: int, out_len: int, dropout: float) -> None:
        super().__init__()
        self.individual = individual
        if individual:
            self.linears = nn.ModuleList(nn.Linear(in_features, out_len) for _ in range(n_vars))
            self.dropouts = nn.ModuleList(Dropout(dropout) for _ in range(n_vars))
        else:
            self.linear = nn.Linear(in_features, out_len)
            self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(start_dim=-2)  # token-major: index = token * d_model + feature
        if self.individual:
            return torch.stack([drop(lin(x[:, i])) for i, (lin, drop) in
                                enumerate(zip(self.linears, self.dropouts))], dim=1)
        return self.dropout(self.linear(x))


class SymTime(nn.Module):
    """SymTime with one head. Input ``x``: [batch, seq_len, channels].

    Output by ``head``: forecast [batch, pred_len, channels], reconstruct [batch, seq_len, channels]
    or classify [batch, num_classes] (logits).
    """

    def __init__(self, head: str, enc_in: int, seq_len: int, pred_len: int, model_cfg,
                 num_classes: Optional[int] = None) -> None:
        super().__init__()
        # The heads (symtime_repro/tasks/facts.py): a task names the one it needs, so the network knows
        # heads, not tasks. Output length over time: the horizon, the window itself, or none (logits).
        out_lengths = {"forecast": pred_len, "reconstruct": seq_len, "classify": None}
        if head not in out_lengths:
            raise UserError(f"task.head={head!r}: the network has the heads {', '.join(out_lengths)}")
        c = model_cfg
        self.head = head
        self.seq_len = seq_len
        self.patch_len, self.stride, self.padding_patch = c.patch_len, c.stride, c.padding_patch
        self.n_patches = patch_count(seq_len, c.patch_len, c.stride, c.padding_patch)
        if self.n_patches < 1:
            raise UserError(f"task.seq_len={seq_len} is shorter than model.patch_len={c.patch_len}")
        self.time_encoder = PatchEncoder(
            c.patch_len, c.n_layers, c.d_model, c.n_heads, c.d_ff, c.norm, c.dropout,
            c.attn_dropout, c.activation, c.forward_layers,
        )
        self.layers_run = c.forward_layers
        for index in range(c.forward_layers, c.n_layers):  # layers that never run stay frozen
            self.time_encoder.layers[index].requires_grad_(False)

        out_len = out_lengths[head]
        self.out_len = out_len

        self.use_avg = c.use_avg and head != "classify"
        if c.use_avg:
            # The official network builds the trend projection whenever decomposition is on (also
            # for classification, where it is never used); keep that so its files load.
            self.moving_avg = c.moving_avg
            self.projection_trend = nn.Linear(seq_len, out_len if out_len is not None else seq_len)

        tokens_per_channel = self.n_patches + 1  # [CLS] token included
        if head == "classify":
            if num_classes is None or num_classes < 2:
                raise UserError("the classify head needs num_classes >= 2 (derived from the data)")
            self.use_conv1d = c.conv1d
            channels = c.out_channels if c.conv1d else enc_in
            tokens = channels * self.n_patches + 1  # all channels' patches in one sequence
            if tokens > MAX_TOKENS:  # checked before the projection is built: out_channels may be huge
                raise UserError(f"classification would need {tokens} tokens but the encoder has "
                                f"{MAX_TOKENS} positions: raise model.stride or lower model.out_channels")
            if c.conv1d:
                self.conv1d = nn.Conv1d(enc_in, c.out_channels, kernel_size=3, stride=1, padding=1)
            self.act = nn.GELU()
            self.ln_proj = nn.LayerNorm(c.d_model * tokens)
            self.classifier = nn.Linear(c.d_model * tokens, num_classes)
        else:
            if tokens_per_channel > MAX_TOKENS:
                raise UserError(f"task.seq_len={seq_len} gives {tokens_per_channel} tokens; the encoder has "
                                f"{MAX_TOKENS} positions: raise model.stride")
            self.flatten_head = FlattenHead(c.individual, enc_in, c.d_model * tokens_per_channel,
                                            out_len, c.out_dropout)

    # -- building blocks ------------------------------------------------------------------------
    def _patch(self, x: Tensor) -> Tensor:
        """[batch, channels, seq_len] -> [batch, channels, n_patches, patch_len]."""
        if self.padding_patch:
            x = F.pad(x, (0, self.stride), mode="replicate")
        return x.unfold(-1, self.patch_len, self.stride)

    def _trend(self, x: Tensor) -> Tensor:
        """Moving average over time of [batch, channels, seq_len], ends replicated."""
        half = (self.moving_avg - 1) // 2
        padded = F.pad(x, (half, half), mode="replicate")
        return F.avg_pool1d(padded, kernel_size=self.moving_avg, stride=1)

    @staticmethod
    def _normalise(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-window, per-channel standardisation over time (dim -1)."""
        mean = x.mean(-1, keepdim=True).detach()
        x = x - mean
        std = torch.sqrt(torch.var(x, dim=-1, keepdim=True, unbiased=False) + 1e-5)
        return x / std, mean, std

    # -- forward --------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        x = x.transpose(1, 2)  # [batch, channels, seq_len]
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
        patches = self._patch(x)
        tokens = self.time_encoder(patches.reshape(batch * channels, self.n_patches, self.patch_len))
        y = self.flatten_head(tokens.reshape(batch, channels, tokens.size(1), tokens.size(2)))
        if trend_out is not None:
            y = y + trend_out
        y = y * std + mean
        return y.transpose(1, 2)  # [batch, out_len, channels]

    def _classify(self, x: Tensor) -> Tensor:
        x, _, _ = self._normalise(x)
        if self.use_conv1d:
            x = self.conv1d(x)
        batch, channels, _ = x.shape
        patches = self._patch(x).reshape(batch, channels * self.n_patches, self.patch_len)
        tokens = self.act(self.time_encoder(patches))
        return self.classifier(self.ln_proj(tokens.reshape(batch, -1)))


def build_model(head: str, enc_in: int, seq_len: int, pred_len: int, model_cfg,
                num_classes: Optional[int] = None) -> SymTime:
    return SymTime(head, enc_in, seq_len, pred_len, model_cfg, num_classes)
