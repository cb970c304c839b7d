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

import io
import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from ..config import check_patchable
from ..datasets import uea
from ..errors import UserError
from ..files import atomic_write_bytes
from .base import BaseTask, Splits, share_start, with_task

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
        self.class_names: list[str] = []
        # Set by the test: each scored case's true and predicted class, for the confusion matrix.
        self.predictions: dict[str, list[np.ndarray]] | None = None
        self.cases: np.ndarray | None = None
        self.testing: np.ndarray | None = None  # while this process scores its share of TEST: the cases scored
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
        self.class_names = list(data.class_names)
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
    def evaluation_state(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> dict:
        """Summed loss, correct cases and cases of this share; testing, also each case's true and
        predicted class and its index in TEST (for the confusion matrix)."""
        loss_sum = correct = None
        count = 0
        labels_seen, preds_seen = [], []
        for batch in batches:
            logits = model(batch["x"]).float()
            labels = batch["label"]
            batch_loss = nn.functional.cross_entropy(logits, labels, reduction="sum")
            batch_correct = (logits.argmax(-1) == labels).sum()
            loss_sum = batch_loss if loss_sum is None else loss_sum + batch_loss
            correct = batch_correct if correct is None else correct + batch_correct
            count += labels.numel()
            if self.testing is not None:
                labels_seen.append(labels.reshape(-1).cpu().numpy())
                preds_seen.append(logits.argmax(-1).reshape(-1).cpu().numpy())
        state = {"loss_sum": 0.0 if loss_sum is None else float(loss_sum), "correct": 0 if correct is None else
                 int(correct), "count": count}
        if self.testing is not None and labels_seen:
            first = share_start(batches)[0]
            state.update(label=np.concatenate(labels_seen).astype(np.int32),
                         pred=np.concatenate(preds_seen).astype(np.int32), case=self.testing[first:first + count])
        return state

    def metrics_from(self, state: dict) -> dict[str, float]:
        count = state.get("count", 0)
        if not count:
            return {"loss": float("nan"), "accuracy": float("nan")}
        return {"loss": state["loss_sum"] / count, "accuracy": state["correct"] / count, "cases": count}

    def test_state(self, model: nn.Module, splits: Splits, batches_for) -> dict:
        # Which TEST cases are scored: all, or the sample trainer.limit_eval_batches drew (a Subset).
        self.testing = np.asarray(getattr(splits.test, "indices", range(len(splits.test))), dtype=np.int32)
        try:
            return self.evaluation_state(model, batches_for(splits.test))
        finally:
            self.testing = None

    def test_metrics(self, state: dict) -> dict:
        if "label" in state:
            self.predictions = {"label": [state["label"]], "pred": [state["pred"]]}
            self.cases = state["case"]
        return self.metrics_from(state)

    def save_test_outputs(self, run_dir) -> None:
        """test_predictions.npz: ``label`` and ``pred`` (class indices, one per scored TEST case, in
        TEST order), ``case`` (the case's index in TEST) and ``classes`` (index -> the label as the
        .ts file writes it). The report draws the confusion matrix from it; a few kB."""
        if not self.predictions or not self.predictions["label"]:
            return None
        label = np.concatenate(self.predictions["label"]).astype(np.int32)
        pred = np.concatenate(self.predictions["pred"]).astype(np.int32)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, label=label, pred=pred, case=self.cases[:len(label)],
                            classes=np.array(self.class_names, dtype=str))
        atomic_write_bytes(Path(run_dir) / PREDICTIONS_FILE, buffer.getvalue())
        return None


PREDICTIONS_FILE = "test_predictions.npz"



TASK = Classification
