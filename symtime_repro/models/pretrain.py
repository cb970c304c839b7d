"""SymTime's pre-training network: the time encoder, a DistilBERT symbol encoder, momentum copies of
both, and the three objectives (official ``models/pretrain_model.py`` and ``layers/sym_encoder.py``,
read for their behaviour; docs/pretraining.md lists each step and quirk).

* MTM (masked time-series modelling): ``time_mask_ratio`` of each window's patches are zeroed, the
  encoder runs every layer, a bias-free linear layer maps each token back to a patch, and the loss
  is the MSE on the zeroed patches.
* MLM: ``sym_mask_ratio`` of the expression's tokens (never [PAD] or [CLS]) are chosen; of those 80 %
  become [MASK], half the rest a random token, the rest stay; DistilBERT's own masked-LM loss.
* Time <-> symbol contrast (ALBEF-style): [CLS] features of both encoders, projected to
  ``embed_dim`` and L2-normalised, against the momentum encoders' features of this batch and a queue
  of past ones, with a learnt temperature and momentum distillation (``alpha``).

``pretrain.attention=official`` reproduces two quirks of the official attention masks (see
:func:`attention_allowed` and :func:`momentum_attention`); ``visible`` is what they were meant to do.

The total loss is ``mtm + mlm + (t2s + s2t) / 2``. Module names follow the official model, so its
state dict and ours name the same tensors; ``time_encoder``'s state dict is the official
``finetuning.pth`` layout, which fine-tuning loads with ``model.pretrained=``.

Random draws follow the official order on the CPU generator (time masks one window at a time, then
the token masks), so that with the same seed and no dropout both codes compute the same losses.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from .symtime import PatchEncoder


def draw_time_mask(batch: int, n_patches: int, ratio: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """Boolean [batch, n_patches], True on the ``int(n_patches * ratio)`` patches zeroed in each window.

    The official draw: per window, ``torch.rand(n)`` and the ``number`` smallest (argsort) are masked.
    One ``rand(batch, n)`` on the CPU draws the same numbers as ``batch`` calls of ``rand(n)`` (a test
    checks it), so the masks are the official ones for the same seed.
    """
    number = int(n_patches * ratio)
    chosen = torch.argsort(torch.rand(batch, n_patches, generator=generator), dim=1)[:, :number]
    hidden = torch.zeros(batch, n_patches, dtype=torch.bool)
    hidden.scatter_(1, chosen, True)
    return hidden


def draw_token_mask(input_ids: Tensor, ratio: float, vocab_size: int, mask_id: int, pad_id: int, cls_id: int,
                    generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """BERT's 80/10/10 masking of ``input_ids`` (on the CPU): (masked ids, labels with -100 where unscored).

    As officially: [PAD] and [CLS] are never chosen ([SEP] may be), and the random replacement draws
    from the whole vocabulary (special tokens included).
    """
    ids = input_ids.clone()
    labels = input_ids.clone()
    chosen = torch.bernoulli(torch.full(ids.shape, ratio), generator=generator).bool()
    chosen &= (ids != pad_id) & (ids != cls_id)
    labels[~chosen] = -100
    replaced = torch.bernoulli(torch.full(ids.shape, 0.8), generator=generator).bool() & chosen
    ids[replaced] = mask_id
    randomised = torch.bernoulli(torch.full(ids.shape, 0.5), generator=generator).bool() & chosen & ~replaced
    random_words = torch.randint(vocab_size, ids.shape, dtype=torch.long, generator=generator)
    ids[randomised] = random_words[randomised]
    return ids, labels


def attention_allowed(hidden: Tensor, mode: str) -> Tensor:
    """Boolean [batch, 1, 1 + n, 1 + n]: True where a token may attend to another ([CLS] first).

    ``official``: the official code builds "visible_i and visible_j" and fills those scores with
    -inf, so a visible token ([CLS] included) attends only to masked ones and a masked token to all.
    ``visible``: every token attends to the visible tokens and [CLS] (what the mask was meant for).
    """
    visible = torch.cat([torch.ones_like(hidden[:, :1]), ~hidden], dim=1)  # [CLS] counts as visible
    if mode == "official":
        allowed = ~(visible[:, :, None] & visible[:, None, :])
    else:
        allowed = visible[:, None, :].expand(-1, visible.shape[1], -1)
    return allowed[:, None]


def momentum_attention(hidden: Tensor, mode: str) -> Tensor:
    """The attention mask of the momentum time encoder.

    ``official``: the official encoder keeps its [CLS] mask as a (frozen) parameter, so the momentum
    update turns it from bool into the float 1.0, and from the first step on the momentum encoder's
    mask is a float: its scores get +1 where both tokens are visible, and nothing is masked. ``visible``:
    the online encoder's mask.
    """
    if mode != "official":
        return attention_allowed(hidden, mode)
    visible = torch.cat([torch.ones_like(hidden[:, :1]), ~hidden], dim=1).float()
    return (visible[:, :, None] * visible[:, None, :])[:, None]


class SymbolEncoder(nn.Module):
    """DistilBERT with its masked-LM head (official ``LLM``): built from ``pretrain.symbol`` with random
    weights, or loaded from ``weights`` (a local folder, or a hub id where the hub is reachable)."""

    def __init__(self, cfg, vocab_size: int, pad_id: int, max_tokens: int) -> None:
        super().__init__()
        from transformers import DistilBertConfig, DistilBertForMaskedLM

        if cfg.weights:
            try:
                self.llm = DistilBertForMaskedLM.from_pretrained(cfg.weights)
            except (OSError, ValueError) as exc:
                raise UserError(f"pretrain.symbol.weights={cfg.weights}: no DistilBERT weights there (a folder "
                                f"with config.json and the weights, or a hub id when the hub is reachable): "
                                f"{str(exc).splitlines()[0][:200]}") from exc
            if self.llm.config.vocab_size != vocab_size:
                raise UserError(f"pretrain.symbol.weights={cfg.weights} has a vocabulary of "
                                f"{self.llm.config.vocab_size} tokens but the tokenizer has {vocab_size}: use that "
                                f"model's own tokenizer (pretrain.symbol.tokenizer=<the same folder>)")
        else:
            config = DistilBertConfig(vocab_size=vocab_size, n_layers=cfg.layers, dim=cfg.hidden, n_heads=cfg.heads,
                                      hidden_dim=cfg.ffn, dropout=cfg.dropout, attention_dropout=cfg.dropout,
                                      max_position_embeddings=max(512, max_tokens), pad_token_id=pad_id)
            self.llm = DistilBertForMaskedLM(config)
        # Official freeze(): every parameter of the first ``frozen_layers`` transformer layers.
        for index in range(cfg.frozen_layers):
            self.llm.distilbert.transformer.layer[index].requires_grad_(False)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(masked-LM loss over the scored tokens, the last layer's [CLS] feature)."""
        out = self.llm(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_hidden_states=True)
        return out.loss, out.hidden_states[-1][:, 0, :]


class SymTimePretraining(nn.Module):
    """The pre-training network. ``forward`` is one official training step's losses (it updates the
    momentum encoders and the queues, as officially); :meth:`evaluation` scores held-out pairs
    without changing anything."""

    def __init__(self, model_cfg, pretrain_cfg, vocab: Optional[dict] = None) -> None:
        super().__init__()
        m, p = model_cfg, pretrain_cfg
        self.patch_len, self.stride = m.patch_len, m.stride
        self.time_mask_ratio, self.sym_mask_ratio = p.time_mask_ratio, p.sym_mask_ratio
        self.momentum, self.alpha, self.queue_size = p.momentum, p.alpha, p.queue_size
        self.attention, self.targets = p.attention, p.contrastive_targets
        self.with_symbols = p.symbols != "none"
        self.layers_run = m.n_layers  # pre-training runs every layer (model.forward_layers is for fine-tuning)
        self.time_encoder = PatchEncoder(m.patch_len, m.n_layers, m.d_model, m.n_heads, m.d_ff, m.norm, m.dropout,
                                         m.attn_dropout, m.activation, m.n_layers)
        self.reconstruct_project = nn.Linear(m.d_model, m.patch_len, bias=False)
        if not self.with_symbols:  # the MTM-only control: no symbol side at all
            return
        if vocab is None:
            raise ValueError("the symbol side needs the tokenizer's vocabulary")
        self.vocab = dict(vocab)  # vocab_size and the special tokens' ids
        self.temp = nn.Parameter(torch.ones([]) * p.temp)
        self.time_proj = nn.Linear(m.d_model, p.embed_dim)
        self.symbolic_encoder = SymbolEncoder(p.symbol, vocab["vocab_size"], vocab["pad_token_id"],
                                              p.symbol.max_tokens)
        self.sym_proj = nn.Linear(self.symbolic_encoder.llm.config.dim, p.embed_dim)
        # Momentum copies: never trained, moved towards the online weights at every step.
        for name in ("time_encoder", "time_proj", "symbolic_encoder", "sym_proj"):
            copied = copy.deepcopy(getattr(self, name)).requires_grad_(False)
            setattr(self, f"{name}_m", copied)
        self.register_buffer("time_queue", F.normalize(torch.randn(p.embed_dim, p.queue_size), dim=0))
        self.register_buffer("sym_queue", F.normalize(torch.randn(p.embed_dim, p.queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        # False until the momentum copies have taken the online weights: set at the first training step,
        # so an encoder loaded after building (model.pretrained=) reaches the copies too.
        self.register_buffer("momentum_ready", torch.zeros((), dtype=torch.bool))

    # -- pieces -----------------------------------------------------------------------------------
    def patches(self, series: Tensor) -> Tensor:
        """[batch, context] -> [batch, n_patches, patch_len]."""
        return series.unfold(-1, self.patch_len, self.stride)

    def _pairs(self):
        return [(getattr(self, name), getattr(self, f"{name}_m"))
                for name in ("time_encoder", "time_proj", "symbolic_encoder", "sym_proj")]

    @torch.no_grad()
    def _momentum_update(self) -> None:
        if not bool(self.momentum_ready):  # official copy_params()
            for online, moving in self._pairs():
                for p, p_m in zip(online.parameters(), moving.parameters()):
                    p_m.copy_(p)
            self.momentum_ready.fill_(True)
        # m * p_m + (1 - m) * p, two products then a sum (the official rounding), for all tensors at once.
        moving = [p_m for _, copy in self._pairs() for p_m in copy.parameters()]
        online = [p.detach() for original, _ in self._pairs() for p in original.parameters()]
        torch._foreach_mul_(moving, self.momentum)
        torch._foreach_add_(moving, torch._foreach_mul(online, 1.0 - self.momentum))

    @torch.no_grad()
    def _enqueue(self, time_features: Tensor, sym_features: Tensor) -> None:
        """Write this batch's momentum features into the queues at the pointer, wrapping around."""
        batch = time_features.shape[0]
        keep = min(batch, self.queue_size)
        ptr = int(self.queue_ptr)
        slots = (ptr + torch.arange(keep, device=self.time_queue.device)) % self.queue_size
        self.time_queue[:, slots] = time_features[-keep:].T.to(self.time_queue.dtype)
        self.sym_queue[:, slots] = sym_features[-keep:].T.to(self.sym_queue.dtype)
        self.queue_ptr[0] = (ptr + batch) % self.queue_size

    def _masked_inputs(self, series: Tensor, input_ids: Optional[Tensor], generator: Optional[torch.Generator]):
        patches = self.patches(series)
        batch, n_patches, _ = patches.shape
        hidden = draw_time_mask(batch, n_patches, self.time_mask_ratio, generator).to(series.device)
        tokens = None
        if self.with_symbols:
            v = self.vocab
            ids, labels = draw_token_mask(input_ids.cpu(), self.sym_mask_ratio, v["vocab_size"], v["mask_token_id"],
                                          v["pad_token_id"], v["cls_token_id"], generator)
            tokens = ids.to(input_ids.device), labels.to(input_ids.device)
        return patches, hidden, tokens

    def _mtm(self, embeddings: Tensor, patches: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """(sum of the per-patch MSE over the zeroed patches, their number)."""
        error = (self.reconstruct_project(embeddings)[:, 1:, :].float() - patches).square().mean(-1)
        return (error * hidden).sum(), hidden.sum()

    # -- training ---------------------------------------------------------------------------------
    def forward(self, series: Tensor, input_ids: Optional[Tensor] = None,
                attention_mask: Optional[Tensor] = None) -> dict[str, Tensor]:
        """One official training step's losses: ``mtm`` (and ``mlm``, ``t2s``, ``s2t``, ``loss``)."""
        patches, hidden, tokens = self._masked_inputs(series, input_ids, None)
        zeroed = patches.masked_fill(hidden[..., None], 0.0)
        allowed = attention_allowed(hidden, self.attention)
        embeddings = self.time_encoder(zeroed, allowed, all_layers=True)
        mtm_sum, mtm_count = self._mtm(embeddings, patches, hidden)
        mtm = mtm_sum / mtm_count
        if not self.with_symbols:
            return {"loss": mtm, "mtm": mtm}
        with torch.no_grad():
            self.temp.clamp_(0.001, 0.5)
        ids, labels = tokens
        mlm, sym_cls = self.symbolic_encoder(ids, attention_mask, labels)
        time_features = F.normalize(self.time_proj(embeddings[:, 0, :]), dim=-1)
        sym_features = F.normalize(self.sym_proj(sym_cls), dim=-1)
        with torch.no_grad():
            self._momentum_update()
            bonus = momentum_attention(hidden, self.attention).to(zeroed.dtype)
            time_m = F.normalize(self.time_proj_m(self.time_encoder_m(zeroed, bonus, all_layers=True)[:, 0, :]),
                                 dim=-1)
            time_all = torch.cat([time_m.t(), self.time_queue.clone().detach()], dim=1)
            _, sym_cls_m = self.symbolic_encoder_m(ids, attention_mask, labels)
            sym_m = F.normalize(self.sym_proj_m(sym_cls_m), dim=-1)
            sym_all = torch.cat([sym_m.t(), self.sym_queue.clone().detach()], dim=1)
            identity = torch.zeros(time_m.shape[0], sym_all.shape[1], device=series.device)
            identity.fill_diagonal_(1)
            t2s_targets = self.alpha * F.softmax(time_m @ sym_all / self.temp, dim=1) + (1 - self.alpha) * identity
            s2t_targets = self.alpha * F.softmax(sym_m @ time_all / self.temp, dim=1) + (1 - self.alpha) * identity
            if self.targets == "official":  # the official code applies softmax to the targets once more
                t2s_targets, s2t_targets = F.softmax(t2s_targets, dim=1), F.softmax(s2t_targets, dim=1)
        t2s = -(F.log_softmax(time_features @ sym_all / self.temp, dim=1) * t2s_targets).sum(1).mean()
        s2t = -(F.log_softmax(sym_features @ time_all / self.temp, dim=1) * s2t_targets).sum(1).mean()
        self._enqueue(time_m, sym_m)
        return {"loss": mtm + mlm + (t2s + s2t) / 2, "mtm": mtm, "mlm": mlm, "t2s": t2s, "s2t": s2t}

    # -- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluation(self, series: Tensor, input_ids: Optional[Tensor], attention_mask: Optional[Tensor],
                   generator: torch.Generator) -> dict[str, float]:
        """Sums and counts over one held-out batch (merged exactly over batches by the caller):
        MTM on ``generator``'s masks, MLM, and in-batch contrast with one-hot targets (no queue, no
        momentum: nothing changes), and how often each series' own expression ranks first."""
        patches, hidden, tokens = self._masked_inputs(series, input_ids, generator)
        zeroed = patches.masked_fill(hidden[..., None], 0.0)
        embeddings = self.time_encoder(zeroed, attention_allowed(hidden, self.attention), all_layers=True)
        mtm_sum, mtm_count = self._mtm(embeddings, patches, hidden)
        out = {"mtm_sum": float(mtm_sum), "mtm_count": float(mtm_count), "samples": float(series.shape[0])}
        if not self.with_symbols:
            return out
        ids, labels = tokens
        mlm, sym_cls = self.symbolic_encoder(ids, attention_mask, labels)
        scored_tokens = float((labels != -100).sum())
        time_features = F.normalize(self.time_proj(embeddings[:, 0, :]), dim=-1).float()
        sym_features = F.normalize(self.sym_proj(sym_cls), dim=-1).float()
        similarity = time_features @ sym_features.T / self.temp.float()
        own = torch.arange(similarity.shape[0], device=similarity.device)
        out.update({
            "mlm_sum": float(mlm) * scored_tokens if scored_tokens else 0.0,
            "mlm_count": scored_tokens,
            "t2s_sum": float(F.cross_entropy(similarity, own, reduction="sum")),
            "s2t_sum": float(F.cross_entropy(similarity.T, own, reduction="sum")),
            "top1_sum": float((similarity.argmax(1) == own).sum()),
        })
        return out
