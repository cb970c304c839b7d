"""The SymTime network against hand-checkable facts, the official file layout, and an independent
float64 NumPy implementation of its forward pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import official_layout
from conftest import tiny_model_cfg
from symtime_repro.models import build_model, encoder_state_size, patch_count
from symtime_repro.models.symtime import PatchEncoder

SIZES = {"SymTime_small": (384, 8, 384), "SymTime_base": (512, 8, 2048), "SymTime_large": (768, 12, 3096)}


@pytest.mark.parametrize("seq_len,patch,stride,padding", [(96, 16, 8, True), (336, 16, 4, True),
                                                          (100, 16, 1, True), (29, 16, 8, True),
                                                          (96, 16, 8, False), (16, 16, 16, True)])
def test_patch_count_matches_the_official_formula_and_the_unfold(seq_len, patch, stride, padding):
    official = int((seq_len - patch) / stride + 1) + (1 if padding else 0)
    assert patch_count(seq_len, patch, stride, padding) == official
    model = build_model("forecast", 3, seq_len, 8, tiny_model_cfg(patch_len=patch, stride=stride,
                                                                   padding_patch=padding))
    assert model._patch(torch.zeros(2, 3, seq_len)).shape == (2, 3, official, patch)


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("size", SIZES)
def test_encoder_state_dict_is_the_official_pretrained_layout(size):
    d_model, heads, d_ff = SIZES[size]
    encoder = PatchEncoder(16, 6, d_model, heads, d_ff, "BatchNorm", 0.1, 0.1, "gelu", forward_layers=3)
    assert _shapes(encoder) == official_layout.section(f"Pre-trained encoder file (models/params/finetuning.pth), {size}")


@pytest.mark.parametrize("norm", ["BatchNorm", "LayerNorm"])
@pytest.mark.parametrize("size", SIZES)
def test_encoder_state_size_counts_what_the_encoder_holds(size, norm):
    """The count that refuses a model too big for memory before it is built (run.check_fits_in_memory)."""
    d_model, heads, d_ff = SIZES[size]
    encoder = PatchEncoder(16, 6, d_model, heads, d_ff, norm, 0.1, 0.1, "gelu", forward_layers=3)
    cfg = tiny_model_cfg(n_layers=6, d_model=d_model, n_heads=heads, d_ff=d_ff, norm=norm)
    assert encoder_state_size(cfg) == sum(v.numel() for v in encoder.state_dict().values())


@pytest.mark.parametrize("head,title,kwargs", [
    ("forecast", "task_name=long_term_forecast", dict(enc_in=7, seq_len=96, pred_len=96)),
    ("reconstruct", "task_name=imputation", dict(enc_in=7, seq_len=96, pred_len=96)),
    ("reconstruct", "task_name=anomaly_detection", dict(enc_in=7, seq_len=100, pred_len=96)),
    ("classify", "task_name=classification", dict(enc_in=12, seq_len=29, pred_len=96, num_classes=9)),
])
def test_full_model_state_dict_is_the_official_finetuned_layout(head, title, kwargs):
    base = tiny_model_cfg(n_layers=6, d_model=512, n_heads=8, d_ff=2048, forward_layers=3, stride=8,
                          use_avg=head != "classify", conv1d=False)
    model = build_model(head, model_cfg=base, **kwargs)
    assert _shapes(model) == official_layout.section(f"Fine-tuned full model (checkpoint.pth), {title}")


def test_layers_beyond_forward_layers_are_frozen_and_never_run():
    torch.manual_seed(0)
    model = build_model("forecast", 3, 96, 24, tiny_model_cfg(n_layers=3, forward_layers=2)).eval()
    x = torch.randn(4, 96, 3)
    before = model(x)
    frozen = list(model.time_encoder.layers[2].parameters())
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in model.time_encoder.layers[1].parameters())
    with torch.no_grad():
        for p in frozen:
            p.add_(1.0)
    assert torch.equal(model(x), before)  # layer 2 does not take part
    model.train()
    model(x).square().mean().backward()
    assert all(p.grad is None for p in frozen)
    assert model.time_encoder.layers[1].ff[0].weight.grad is not None


def test_moving_average_decomposition_on_known_series():
    model = build_model("forecast", 1, 96, 24, tiny_model_cfg(moving_avg=25))
    ramp = torch.arange(96, dtype=torch.float64).reshape(1, 1, 96)
    trend = model._trend(ramp)[0, 0]
    # Inside, a centred mean of a straight line is the line itself.
    assert torch.allclose(trend[12:84], ramp[0, 0, 12:84])
    # At the start the first value is repeated 12 times: (12 * 0 + 0 + 1 + ... + 12) / 25.
    assert trend[0].item() == pytest.approx(sum(range(13)) / 25)
    assert trend[-1].item() == pytest.approx((12 * 95 + sum(range(83, 96))) / 25)
    constant = torch.full((2, 3, 96), 4.5)
    assert torch.allclose(model._trend(constant), constant)


def test_forecast_moves_with_the_input_level():
    # Instance normalisation: adding a constant to a window adds it to the forecast.
    torch.manual_seed(1)
    model = build_model("forecast", 3, 96, 24, tiny_model_cfg()).double().eval()
    x = torch.randn(2, 96, 3, dtype=torch.float64)
    shift = torch.tensor([10.0, -3.0, 0.5], dtype=torch.float64)
    assert torch.allclose(model(x + shift), model(x) + shift, atol=1e-9)


# -- an independent NumPy implementation of the forward pass, written from the paper's description
#    and the official operations, to prove the fused/optimised torch code computes the same thing.

def _gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _linear(sd, name, x):
    return x @ sd[name + ".weight"].T + sd[name + ".bias"]


def _batchnorm(sd, name, x):
    mean, var = sd[name + ".running_mean"], sd[name + ".running_var"]
    return (x - mean) / np.sqrt(var + 1e-5) * sd[name + ".weight"] + sd[name + ".bias"]


def _encoder(sd, patches, cfg):
    """patches [N, n, patch_len] -> tokens [N, n + 1, d_model]."""
    x = _linear(sd, "time_encoder.W_P", patches)
    cls = np.broadcast_to(sd["time_encoder.cls_token"], (x.shape[0], 1, x.shape[2]))
    x = np.concatenate([cls, x], axis=1)
    x = x + sd["time_encoder.pe.pe"][:, : x.shape[1]]
    heads, dh = cfg.n_heads, cfg.d_model // cfg.n_heads
    for i in range(cfg.forward_layers):
        p = f"time_encoder.layers.{i}."
        q, k, v = (_linear(sd, p + f"self_attn.W_{n}", x).reshape(*x.shape[:2], heads, dh) for n in "QKV")
        scores = np.einsum("bqhd,bkhd->bhqk", q, k) * sd[p + "self_attn.sdp_attn.scale"]
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        attended = np.einsum("bhqk,bkhd->bqhd", weights, v).reshape(x.shape)
        x = _batchnorm(sd, p + "norm_attn.1", x + _linear(sd, p + "self_attn.to_out.0", attended))
        ff = _linear(sd, p + "ff.3", _gelu(_linear(sd, p + "ff.0", x)))
        x = _batchnorm(sd, p + "norm_ffn.1", x + ff)
    return x


def _normalise(x):
    mean = x.mean(1, keepdims=True)
    std = np.sqrt(((x - mean) ** 2).mean(1, keepdims=True) + 1e-5)
    return (x - mean) / std, mean, std


def _patches(series, cfg):
    """series [..., L] -> [..., n, patch_len], end replicated by `stride` first."""
    padded = np.concatenate([series, np.repeat(series[..., -1:], cfg.stride, axis=-1)], axis=-1)
    n = (padded.shape[-1] - cfg.patch_len) // cfg.stride + 1
    return np.stack([padded[..., i * cfg.stride: i * cfg.stride + cfg.patch_len] for i in range(n)], axis=-2)


def numpy_forecast(sd, x, cfg):
    b, length, c = x.shape
    z, mean, std = _normalise(x)
    half = (cfg.moving_avg - 1) // 2
    padded = np.concatenate([np.repeat(z[:, :1], half, 1), z, np.repeat(z[:, -1:], half, 1)], axis=1)
    trend = np.stack([padded[:, t: t + cfg.moving_avg].mean(1) for t in range(length)], axis=1)
    trend_out = _linear(sd, "projection_trend", (trend).transpose(0, 2, 1))  # [b, c, pred]
    patches = _patches((z - trend).transpose(0, 2, 1), cfg)  # [b, c, n, patch]
    tokens = _encoder(sd, patches.reshape(b * c, *patches.shape[2:]), cfg)
    y = _linear(sd, "flatten_head.linear", tokens.reshape(b, c, -1)) + trend_out
    return (y.transpose(0, 2, 1) * std) + mean


def numpy_classify(sd, x, cfg):
    b = x.shape[0]
    z, _, _ = _normalise(x)
    z = z.transpose(0, 2, 1)
    w, bias = sd["conv1d.weight"], sd["conv1d.bias"]  # [out, in, 3]
    zp = np.pad(z, ((0, 0), (0, 0), (1, 1)))
    z = np.stack([np.einsum("oi,bik->bok", w[:, :, j], zp[:, :, j: j + z.shape[2]]) for j in range(3)]).sum(0)
    z = z + bias[None, :, None]
    patches = _patches(z, cfg)  # [b, channels, n, patch]
    tokens = _gelu(_encoder(sd, patches.reshape(b, -1, cfg.patch_len), cfg)).reshape(b, -1)
    mu, var = tokens.mean(-1, keepdims=True), tokens.var(-1, keepdims=True)
    normed = (tokens - mu) / np.sqrt(var + 1e-5) * sd["ln_proj.weight"] + sd["ln_proj.bias"]
    return _linear(sd, "classifier", normed)


def _randomised(model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen, dtype=tensor.dtype) + 0.5)
            elif name.endswith("running_mean") or (tensor.is_floating_point() and "pe.pe" not in name
                                                   and "scale" not in name):
                tensor.add_(torch.randn(tensor.shape, generator=gen, dtype=tensor.dtype) * 0.1)
    return model.eval()


def test_forecast_forward_equals_independent_numpy_implementation():
    cfg = tiny_model_cfg(n_layers=3, forward_layers=2, stride=8)
    model = _randomised(build_model("forecast", 3, 96, 24, cfg).double(), seed=3)
    x = torch.randn(4, 96, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 2 + 5
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    expected = numpy_forecast(sd, x.numpy(), cfg)
    with torch.no_grad():
        got = model(x).numpy()
    assert np.abs(got - expected).max() < 1e-10
    # In float32, as runs compute, with weights at their initial scale and inputs in scaled space
    # (|y| ~ 1, as on real data), the result stays within 1e-5 of the exact one.
    torch.manual_seed(7)
    model32 = build_model("forecast", 3, 96, 24, cfg).eval()
    sd32 = {k: v.double().numpy() if v.is_floating_point() else v.numpy() for k, v in model32.state_dict().items()}
    x32 = torch.randn(4, 96, 3, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        got32 = model32(x32).double().numpy()
    assert np.abs(got32 - numpy_forecast(sd32, x32.double().numpy(), cfg)).max() < 1e-5


def test_classification_forward_equals_independent_numpy_implementation():
    cfg = tiny_model_cfg(n_layers=2, forward_layers=2, stride=4, use_avg=False, conv1d=True, out_channels=5)
    model = _randomised(build_model("classify", 3, 40, 0, cfg, num_classes=6).double(), seed=5)
    x = torch.randn(3, 40, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    with torch.no_grad():
        got = model(x).numpy()
    assert got.shape == (3, 6)
    assert np.abs(got - numpy_classify(sd, x.numpy(), cfg)).max() < 1e-10


@pytest.mark.parametrize("head,out_len", [("forecast", 18), ("reconstruct", 36)])
def test_every_sequence_head_has_the_official_output_shape(head, out_len):
    model = build_model(head, 2, 36, 18, tiny_model_cfg(stride=4)).eval()
    assert model(torch.randn(5, 36, 2)).shape == (5, out_len, 2)


def test_individual_heads_give_one_linear_per_channel():
    model = build_model("forecast", 4, 96, 24, tiny_model_cfg(individual=True))
    assert len(model.flatten_head.linears) == 4
    assert model(torch.randn(2, 96, 4)).shape == (2, 24, 4)
