"""The cheap CPU dropout (symtime_repro/models/dropout.py): the statistics of nn.Dropout, seeded by
torch's generator (so seed= and resume work as before), other random bits."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from symtime_repro.config import ModelConfig
from symtime_repro.models import build_model
from symtime_repro.models.dropout import Dropout, chained, dropout, keep_threshold, residual_dropout

N = 1 << 21  # 2 M elements: the kept share is measured to ±0.0003 (1 sigma at p = 0.5)


def sigmas(observed: float, expected: float, n: int) -> float:
    """How many binomial standard deviations ``observed`` (a share of ``n``) is from ``expected``."""
    return abs(observed - expected) / math.sqrt(expected * (1 - expected) / n)


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.5, 0.9])
def test_each_element_is_kept_with_probability_1_minus_p_and_scaled_by_its_inverse(p):
    torch.manual_seed(1)
    x = torch.rand(N) + 0.5  # no zeros of its own
    y = dropout(x, p)
    kept = y != 0
    assert sigmas(kept.float().mean().item(), 1 - p, N) < 5
    assert torch.equal(y[kept], x[kept] * torch.tensor(1 / (1 - p)))  # nn.Dropout's scaling, bit for bit
    assert torch.equal(y[~kept], torch.zeros_like(y[~kept]))
    # Independence of neighbours (a 64-bit draw gives two adjacent 32-bit words): pairs kept together
    # as often as (1 - p)^2, and as often at odd as at even offsets.
    both = (kept[:-1] & kept[1:]).float()
    assert sigmas(both[0::2].mean().item(), (1 - p) ** 2, N // 2) < 5
    assert sigmas(both[1::2].mean().item(), (1 - p) ** 2, N // 2) < 5
    # The expectation is kept: E[dropout(x)] = x.
    ones = dropout(torch.ones(N), p)
    assert abs(ones.mean().item() - 1) < 5 * math.sqrt(p / (1 - p) / N)


def test_the_threshold_is_exact_to_32_bits():
    for p in (0.1, 0.25, 1 / 3):
        assert (keep_threshold(p) + 2**31) / 2**32 == pytest.approx(1 - p, abs=2**-33)


def test_the_gradient_is_the_mask_times_the_scale_and_the_residual_passes_through():
    torch.manual_seed(2)
    x = torch.randn(4096, 64, requires_grad=True)
    residual = torch.randn(4096, 64, requires_grad=True)
    y = residual_dropout(residual, x, 0.2)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    mask = (y - residual.detach()) != 0
    assert torch.equal(residual.grad, upstream)
    assert torch.equal(x.grad, torch.where(mask, upstream * torch.tensor(1 / 0.8), torch.zeros(())))
    assert sigmas(mask.float().mean().item(), 0.8, mask.numel()) < 5


def test_masks_follow_torch_seed_and_random_state_and_differ_between_calls():
    torch.manual_seed(3)
    a, b = dropout(torch.ones(10_000), 0.5), dropout(torch.ones(10_000), 0.5)
    torch.manual_seed(3)
    assert torch.equal(dropout(torch.ones(10_000), 0.5), a)  # seed= fixes every mask
    assert not torch.equal(a, b)  # each call draws anew
    state = torch.get_rng_state()  # what last.pt saves: a resumed run continues the same masks
    c = dropout(torch.ones(10_000), 0.5)
    torch.set_rng_state(state)
    assert torch.equal(dropout(torch.ones(10_000), 0.5), c)
    torch.manual_seed(4)
    assert not torch.equal(dropout(torch.ones(10_000), 0.5), a)


def test_evaluation_zero_rate_and_the_module_behave_as_nn_dropout():
    x = torch.randn(1000)
    assert torch.equal(dropout(x, 0.3, training=False), x)
    assert torch.equal(dropout(x, 0.0), x)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    module = Dropout(0.3)
    assert isinstance(module, nn.Dropout) and module.state_dict() == {}
    assert torch.equal(module.eval()(x), x)
    assert (module.train()(torch.ones(N)) == 0).float().mean().item() == pytest.approx(0.3, abs=0.002)


def test_two_dropouts_in_a_row_equal_one_at_the_chained_rate():
    """The attention output passes to_out's dropout and the layer's (official); applied as one."""
    torch.manual_seed(5)
    one, two = nn.Dropout(0.1), nn.Dropout(0.2)
    reference = two(one(torch.ones(N)))
    merged = dropout(torch.ones(N), chained(0.1, 0.2))
    assert chained(0.1, 0.2) == pytest.approx(1 - 0.9 * 0.8)
    for y in (reference, merged):  # the same two values, to float rounding
        assert sorted(y.unique().tolist()) == pytest.approx([0.0, 1 / 0.72], rel=1e-6)
    for y in (reference, merged):
        assert sigmas((y != 0).float().mean().item(), 0.72, N) < 5


def test_the_network_uses_the_cheap_masks_at_the_official_rates_and_evaluates_deterministically():
    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_ff=64, forward_layers=2, dropout=0.3,
                      attn_dropout=0.3, out_dropout=0.3)
    model = build_model("forecast", 3, 96, 24, cfg)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(isinstance(m, Dropout) for m in drops)
    x = torch.randn(8, 96, 3)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    first = model(x)
    torch.manual_seed(0)
    assert torch.equal(model(x), first)  # the same seed, the same masks
    assert not torch.equal(model(x), first)
