"""Classification on the UEA multivariate archive (``task=classification dataset=JapaneseVowels``).

Protocol of the official ``classification.py``: cases zero-padded at the end to the longest case of
TRAIN and TEST (``seq_len`` derived from the data, like ``enc_in`` and ``num_classes``), the
classification head over all channels' patches (optional Conv1d channel projection first),
cross-entropy, RAdam, gradient norm clipped at 4, no learning-rate schedule, accuracy.

Protocol quirks, reproduced by default (``dataset.validation=test``, ``dataset.normalize=per_split``):
the official loop early-stops on the TEST split's accuracy (it has no validation split), and each
split is standardised with its own statistics. ``dataset.validation=holdout`` early-stops on a
stratified 20 % of TRAIN instead, and ``dataset.normalize=train`` uses TRAIN's statistics for all
splits; both are cleaner, and numbers obtained with them don't compare with published ones.
"""

from __future__ import annotations

import logging
from typing import Iterable

import torch
from torch import nn

from ..config import check_patchable
from ..datasets import uea
from ..errors import UserError
from .base import BaseTask, Splits, with_task

log = logging.getLogger(__name__)


class Classification(BaseTask):
    name = "classification"
    monitor = ("accuracy", "max")  # the official loop stops on accuracy, not on the loss

    @staticmethod
    def validates_on_test(cfg) -> bool:
        return cfg.dataset.validation == "test"  # the official protocol; holdout keeps TEST unseen
    sample_unit = "cases"

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        if cfg.dataset.family != "uea":
            raise UserError(f"task=classification runs on the UEA datasets (e.g. dataset=JapaneseVowels), "
                            f"not dataset={cfg.dataset.name}")

    def datasets(self) -> Splits:
        cfg = self.cfg
        data = uea.load(cfg.dataset, cfg.data.root, cfg.seed)
        seq_len = cfg.task.seq_len
        if seq_len is None:
            seq_len = data.seq_len
        elif seq_len < data.seq_len:
            raise UserError(f"task.seq_len={seq_len} is shorter than the longest case ({data.seq_len}) of "
                            f"{cfg.dataset.name}; leave task.seq_len=null to derive it")
        check_patchable(seq_len, cfg.model)
        self.cfg = with_task(cfg, seq_len=seq_len, pred_len=0)
        self.num_classes = len(data.class_names)
        if cfg.dataset.validation == "test":
            log.info("validation = the TEST split (official protocol: early stopping sees the test set)")
        info = {"enc_in": data.enc_in, "num_classes": self.num_classes, "classes": data.class_names,
                **data.info}
        parts = (data.train, data.val, data.test)
        if seq_len > data.seq_len:  # a longer window than the data needs: pad further
            parts = tuple(part.padded_to(seq_len) for part in parts)
        return Splits(*parts, info)

    def build_model(self, splits: Splits) -> nn.Module:
        return self.network(splits.info["enc_in"], num_classes=splits.info["num_classes"])

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(model(batch["x"]).float(), batch["label"])

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        loss_sum = correct = count = None
        for batch in batches:
            logits = model(batch["x"]).float()
            labels = batch["label"]
            batch_loss = nn.functional.cross_entropy(logits, labels, reduction="sum")
            batch_correct = (logits.argmax(-1) == labels).sum()
            loss_sum = batch_loss if loss_sum is None else loss_sum + batch_loss
            correct = batch_correct if correct is None else correct + batch_correct
            count = labels.numel() + (count or 0)
        if not count:
            return {"loss": float("nan"), "accuracy": float("nan")}
        return {"loss": (loss_sum / count).item(), "accuracy": (correct / count).item(), "cases": count}



TASK = Classification
