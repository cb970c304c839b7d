"""Pre-training on synthetic series-symbol pairs (``task=pretrain dataset=S2``).

The official ``pretrain.py`` trains the time encoder with masked time-series modelling, a DistilBERT
symbol encoder with masked language modelling, and aligns the two contrastively
(:mod:`symtime_repro.models.pretrain`). Here it is one more task on the shared trainer, so resume,
preemption, torchrun, AMP and the bench apply unchanged. Its product is ``encoder.pth``, the time
encoder's state dict in the official ``finetuning.pth`` layout, which fine-tuning loads with
``model.pretrained=``; the run ends by printing that fine-tuning command.

The official code has no validation: ours scores held-out pairs (seeds the training split never
saw) each epoch with seeded masks, keeps the best epoch's weights, and tests them on other held-out
seeds (docs/pretraining.md).
"""

from __future__ import annotations

import logging
import shlex
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn
from torch.utils.data import Dataset

from ..datasets import s2
from ..errors import UserError
from ..models import patch_count
from ..models.pretrain import SymTimePretraining
from .base import BaseTask, Splits, eval_generator, share_start

log = logging.getLogger(__name__)

ENCODER_FILE = "encoder.pth"
SYMBOL_METRICS = ("mlm_loss", "t2s_loss", "s2t_loss", "retrieval_top1")
VOCAB_KEYS = ("vocab_size", "pad_token_id", "cls_token_id", "sep_token_id", "mask_token_id")
# The encoder's size settings: a fine-tuning run must repeat them to load the file.
SIZE_KEYS = ("n_layers", "d_model", "n_heads", "d_ff", "norm", "activation", "patch_len")


class ShuffledSymbols(Dataset):
    """The symbol-side control: each series paired with another pair's expression (a fixed
    permutation drawn with the run's seed), so the symbol encoder sees the same expressions but
    they no longer describe the series."""

    def __init__(self, pairs: Dataset, seed: int) -> None:
        self.pairs = pairs
        self.order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index):
        own = self.pairs[index]
        other = self.pairs[self.order[torch.as_tensor(index)].tolist()]
        return {**own, "input_ids": other["input_ids"], "attention_mask": other["attention_mask"]}


class Pretrain(BaseTask):
    name = "pretrain"
    monitor = ("loss", "min")
    sample_unit = "pairs"

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        if cfg.dataset.family != "s2":
            raise UserError(f"task=pretrain trains on series-symbol pairs (dataset=S2, made by python -m "
                            f"symtime_repro.data generate s2), not dataset={cfg.dataset.name}")
        m, p = cfg.model, cfg.pretrain
        n_patches = patch_count(cfg.task.seq_len, m.patch_len, m.stride, padding_patch=False)
        if cfg.task.seq_len < m.patch_len:
            raise UserError(f"task.seq_len={cfg.task.seq_len} (the pre-training context) is shorter than "
                            f"model.patch_len={m.patch_len}")
        if int(n_patches * p.time_mask_ratio) < 1:
            raise UserError(f"pretrain.time_mask_ratio={p.time_mask_ratio} masks no patch of the {n_patches} in a "
                            f"window (task.seq_len={cfg.task.seq_len}, model.patch_len={m.patch_len}, "
                            f"model.stride={m.stride}); the loss would be 0/0: raise the ratio or the context")
        self.model: SymTimePretraining | None = None
        self.info: dict[str, Any] = {}  # the splits' facts, kept by the test for metrics.json

    def datasets(self) -> Splits:
        p, symbol = self.cfg.pretrain, self.cfg.pretrain.symbol
        train, val, test, info = s2.pair_splits(self.cfg.dataset, self.cfg.data.root, context=self.cfg.task.seq_len,
                                                tokenizer=symbol.tokenizer, vocab_size=symbol.vocab_size,
                                                max_tokens=symbol.max_tokens)
        if p.symbols == "shuffled":
            train, val, test = (ShuffledSymbols(split, self.cfg.seed + i) for i, split in enumerate((train, val, test)))
        if p.symbols != "none" and p.queue_enqueue == "official":
            self._check_official_queue(len(train))
        return Splits(train, val, test, {**info, "enc_in": 1})

    def _check_official_queue(self, n_train: int) -> None:
        """The official enqueue asserts that every batch divides the queue: refuse now what it would
        stop on later (the first batch, or the last, partial one of an epoch)."""
        queue, batch = self.cfg.pretrain.queue_size, self.cfg.trainer.batch_size
        last = n_train % batch
        if queue % batch or (last and queue % last):
            size = batch if queue % batch else last
            raise UserError(f"pretrain.queue_enqueue=official: the official code asserts queue_size % batch == 0, "
                            f"and {queue} % {size} = {queue % size} (trainer.batch_size={batch}, {n_train} training "
                            f"pairs); use pretrain.queue_enqueue=ring (the same wherever the official code runs) or "
                            f"sizes that divide")

    def build_model(self, splits: Splits) -> nn.Module:
        vocab = {key: splits.info[key] for key in VOCAB_KEYS}
        log.info("pre-training: every one of the %d time-encoder layers runs (model.forward_layers is a "
                 "fine-tuning setting); symbols: %s", self.cfg.model.n_layers, self.cfg.pretrain.symbols)
        self.model = SymTimePretraining(self.cfg.model, self.cfg.pretrain, vocab)
        return self.model

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["series"], batch["input_ids"], batch["attention_mask"])["loss"]

    @torch.no_grad()
    def evaluation_state(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        # The same masks at every evaluation: batch b's from a generator seeded from (seed, b), as
        # imputation's seeded masks, whichever process scores it.
        first = share_start(batches)[1]
        sums: dict[str, float] = defaultdict(float)
        for b, batch in enumerate(batches, start=first):
            for key, value in model.evaluation(batch["series"], batch["input_ids"], batch["attention_mask"],
                                               eval_generator(self.cfg.seed, b)).items():
                sums[key] += value
        return dict(sums)

    def metrics_from(self, state: dict[str, float]) -> dict[str, float]:
        return summarise(defaultdict(float, state), self.cfg.pretrain.symbols != "none")

    def test_metric_names(self) -> tuple[str, ...]:
        names = tuple(self.cfg.task.metrics)
        return names if self.cfg.pretrain.symbols != "none" else tuple(n for n in names if n not in SYMBOL_METRICS)

    def test_state(self, model: nn.Module, splits: Splits, batches_for) -> dict[str, Any]:
        self.model, self.info = model, splits.info
        return self.evaluation_state(model, batches_for(splits.test))

    def test_metrics(self, state: dict[str, Any]) -> dict[str, Any]:
        info = self.info
        return {**self.metrics_from(state),
                **{f"{name}_pairs": info["pairs"][name] for name in ("train", "val", "test")},
                "s2_cache": info["file"], "tokenizer": info["tokenizer"],
                "tokens_per_expression": info["tokens_per_expression"], "truncated_expressions": info["truncated"]}

    def save_test_outputs(self, run_dir) -> dict[str, Any]:
        """Write ``encoder.pth`` (the best epoch's time encoder, official layout) and say how to use it."""
        import io

        from ..files import atomic_write_bytes

        path = Path(run_dir).resolve() / ENCODER_FILE
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.model.time_encoder.state_dict().items()}, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        command = finetune_command(self.cfg.model, path)
        return {"encoder": str(path), "finetune_command": command}

    def closing_note(self, outputs: dict[str, Any]) -> str:
        return f"fine-tune with this encoder:\n  {outputs['finetune_command']}"


def summarise(sums: dict[str, float], with_symbols: bool) -> dict[str, float]:
    """Metrics from the summed parts of :meth:`SymTimePretraining.evaluation` (exact over batches)."""
    mtm = sums["mtm_sum"] / max(sums["mtm_count"], 1.0)
    metrics = {"mtm_loss": mtm}
    if with_symbols:
        n = max(sums["samples"], 1.0)
        metrics.update({
            "mlm_loss": sums["mlm_sum"] / max(sums["mlm_count"], 1.0),
            "t2s_loss": sums["t2s_sum"] / n,
            "s2t_loss": sums["s2t_sum"] / n,
            "retrieval_top1": sums["top1_sum"] / n,
        })
        metrics["loss"] = mtm + metrics["mlm_loss"] + (metrics["t2s_loss"] + metrics["s2t_loss"]) / 2
    else:
        metrics["loss"] = mtm
    return metrics


def shipped_model_preset(name: str) -> dict[str, Any]:
    """The settings ``conf/model/<name>.yaml`` of the package declares ({} for a size of your own)."""
    import yaml
    from importlib.resources import files

    try:
        return yaml.safe_load((files("symtime_repro.conf") / "model" / f"{name}.yaml").read_text()) or {}
    except (OSError, ValueError):
        return {}


def finetune_command(model_cfg, encoder: Path, task: str = "long_term", dataset: str = "ETTh1") -> str:
    """The fine-tuning command that loads ``encoder``: the model preset it was trained at, plus
    every size setting that differs from that preset (the file's shapes must match)."""
    from ..config import ModelConfig

    preset = shipped_model_preset(model_cfg.name)
    name = model_cfg.name if preset else "symtime"
    preset = preset or shipped_model_preset("symtime")
    schema = ModelConfig()
    parts = ["python -m symtime_repro", f"task={task}", f"dataset={dataset}", f"model={name}"]
    for key in SIZE_KEYS:
        value, expected = getattr(model_cfg, key), preset.get(key, getattr(schema, key))
        if str(value).lower() != str(expected).lower():
            parts.append(f"model.{key}={value}")
    if model_cfg.n_layers < schema.forward_layers:  # the tasks run 3 layers (imputation 6): no more than it has
        parts.append(f"model.forward_layers={model_cfg.n_layers}")
    parts.append(f"model.pretrained={shlex.quote(str(encoder))}")
    return " ".join(parts)


TASK = Pretrain
