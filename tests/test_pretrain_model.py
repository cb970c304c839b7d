"""The pre-training network's pieces: the official random draws, the attention masks (official
quirks and corrected), the queue, the momentum encoders and the loss switches."""

from __future__ import annotations

import pytest
import torch

from symtime_repro.config import ModelConfig, PretrainConfig, SymbolEncoderConfig
from symtime_repro.models.pretrain import (SymTimePretraining, attention_allowed, draw_time_mask, draw_token_mask,
                                           momentum_attention)

VOCAB = dict(vocab_size=300, pad_token_id=0, cls_token_id=2, sep_token_id=3, mask_token_id=4)
TINY_TIME = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_ff=64, stride=16, dropout=0.0, attn_dropout=0.0)
SMALL_SYMBOL = SymbolEncoderConfig(layers=2, hidden=32, heads=4, ffn=64, frozen_layers=1, dropout=0.0)


def network(**changes) -> SymTimePretraining:
    torch.manual_seed(0)
    return SymTimePretraining(TINY_TIME, PretrainConfig(queue_size=20, embed_dim=8, symbol=SMALL_SYMBOL, **changes),
                              VOCAB)


def batch(n: int = 8, context: int = 64, tokens: int = 12, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB["vocab_size"], (n, tokens), generator=g)
    ids[:, 0], ids[:, tokens - 3], ids[:, tokens - 2:] = 2, 3, 0
    return torch.randn(n, context, generator=g), ids, (ids != 0).long()


def test_time_masks_are_the_official_draw_one_window_at_a_time():
    # The official time_masking(): for each window, argsort(torch.rand(n))[:int(n * ratio)] is zeroed.
    torch.manual_seed(3)
    expected = torch.zeros(16, 16, dtype=torch.bool)
    for row in range(16):
        expected[row, torch.argsort(torch.rand(16))[:int(16 * 0.4)]] = True
    torch.manual_seed(3)
    assert torch.equal(draw_time_mask(16, 16, 0.4), expected)
    assert (expected.sum(1) == 6).all()


def test_token_masks_follow_bert_80_10_10_and_spare_pad_and_cls():
    ids = torch.randint(5, 300, (400, 64))
    ids[:, 0], ids[:, 50:] = 2, 0
    torch.manual_seed(0)
    masked, labels = draw_token_mask(ids, 0.15, 300, mask_id=4, pad_id=0, cls_id=2)
    chosen = labels != -100
    assert not chosen[:, 0].any() and not chosen[:, 50:].any()  # [CLS] and [PAD] are never scored
    assert torch.equal(labels[chosen], ids[chosen])  # the labels are the original tokens
    assert abs(chosen[:, 1:50].float().mean().item() - 0.15) < 0.01
    became_mask = (masked == 4) & chosen
    kept = (masked == ids) & chosen
    assert abs(became_mask.sum().item() / chosen.sum().item() - 0.8) < 0.02
    assert abs(kept.sum().item() / chosen.sum().item() - 0.1) < 0.02  # the 10 % kept (+ random hits of itself)
    assert torch.equal(masked[~chosen], ids[~chosen])  # nothing else changes


def test_official_attention_lets_visible_tokens_see_only_masked_ones():
    hidden = torch.tensor([[False, True, False, True]])  # patches 1 and 3 zeroed
    allowed = attention_allowed(hidden, "official")[0, 0]
    cls_and_visible = [0, 1, 3]  # token positions: [CLS], then patches 0..3 at 1..4
    for query in cls_and_visible:
        assert allowed[query].tolist() == [False, False, True, False, True]
    for query in (2, 4):  # masked patches attend to everything
        assert allowed[query].all()
    corrected = attention_allowed(hidden, "visible")[0, 0]
    assert all(row == [True, True, False, True, False] for row in corrected.tolist())
    # The official momentum encoder's mask is a float bonus (+1 between visible tokens), masking nothing.
    bonus = momentum_attention(hidden, "official")[0, 0]
    assert bonus.dtype == torch.float32 and bonus[0].tolist() == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert torch.equal(momentum_attention(hidden, "visible"), attention_allowed(hidden, "visible"))


def test_queue_wraps_around_with_batches_that_do_not_divide_it():
    net = network()
    features = [torch.nn.functional.normalize(torch.randn(8, 8), dim=-1) for _ in range(3)]
    for f in features:
        net._enqueue(f, f)
    # 24 features into a queue of 20: the third batch's last 4 wrapped to the front.
    assert int(net.queue_ptr) == 4
    assert torch.equal(net.time_queue[:, :4], features[2][4:].T)
    assert torch.equal(net.time_queue[:, 16:20], features[2][:4].T)
    assert torch.equal(net.sym_queue[:, 8:16], features[1].T)


def test_a_training_step_moves_momentum_encoders_and_fills_the_queue():
    net = network()
    series, ids, mask = batch()
    before = net.time_encoder.W_P.weight.detach().clone()
    losses = net(series, ids, mask)
    assert set(losses) == {"loss", "mtm", "mlm", "t2s", "s2t"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert torch.allclose(losses["loss"], losses["mtm"] + losses["mlm"] + (losses["t2s"] + losses["s2t"]) / 2)
    # Copied first, then the first momentum update (m * w + (1 - m) * w: w up to rounding).
    assert bool(net.momentum_ready) and torch.allclose(net.time_encoder_m.W_P.weight, before, rtol=0, atol=1e-6)
    losses["loss"].backward()
    torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.5).step()
    net(series, ids, mask)
    moved = net.time_encoder_m.W_P.weight
    online = net.time_encoder.W_P.weight.detach()
    assert torch.allclose(moved, 0.995 * before + 0.005 * online, atol=1e-6)
    assert int(net.queue_ptr) == 16
    # Frozen symbol layers take no gradient; momentum copies never do.
    assert not any(p.requires_grad for p in net.symbolic_encoder.llm.distilbert.transformer.layer[0].parameters())
    assert all(p.requires_grad for p in net.symbolic_encoder.llm.distilbert.transformer.layer[1].parameters())
    assert not any(p.requires_grad for p in net.symbolic_encoder_m.parameters())


def test_official_targets_are_softmaxed_twice_so_the_loss_differs_from_once():
    series, ids, mask = batch()
    torch.manual_seed(5)
    official = network(contrastive_targets="official")(series, ids, mask)
    torch.manual_seed(5)
    once = network(contrastive_targets="once")(series, ids, mask)
    assert torch.equal(official["mtm"], once["mtm"]) and torch.equal(official["mlm"], once["mlm"])
    # Softmax of targets in [0, 1] is close to uniform over the batch and the queue: a larger loss.
    assert float(official["t2s"]) > float(once["t2s"]) + 0.1


def test_mtm_only_control_has_no_symbol_side():
    torch.manual_seed(0)
    net = SymTimePretraining(TINY_TIME, PretrainConfig(symbols="none"), None)
    assert not hasattr(net, "symbolic_encoder") and not hasattr(net, "time_queue")
    series, _, _ = batch()
    losses = net(series)
    assert set(losses) == {"loss", "mtm"} and torch.equal(losses["loss"], losses["mtm"])


def test_evaluation_changes_nothing_and_repeats_with_its_generator():
    net = network().eval()
    series, ids, mask = batch()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    first = net.evaluation(series, ids, mask, torch.Generator().manual_seed(9))
    second = net.evaluation(series, ids, mask, torch.Generator().manual_seed(9))
    assert first == second
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert first["samples"] == 8 and first["mtm_count"] == 8 * int(4 * 0.4)
    assert 0 <= first["top1_sum"] <= 8


@pytest.mark.parametrize("attention", ["official", "visible"])
def test_encoder_loaded_after_building_reaches_the_momentum_copy(attention):
    net = network(attention=attention)
    new = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in net.time_encoder.state_dict().items()}
    net.time_encoder.load_state_dict(new)  # what model.pretrained= does after the task built the network
    series, ids, mask = batch()
    net(series, ids, mask)
    assert torch.allclose(net.time_encoder_m.W_P.weight, new["W_P.weight"], rtol=0, atol=1e-5)
