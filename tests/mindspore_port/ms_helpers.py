"""What the MindSpore tests share: real ETTh1 windows, the head configurations, a torch network with
randomised weights (so a missed key or a swapped axis cannot hide behind zeros and ones), and the
relative difference the parity checks report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from conftest import DATA_ROOT, tiny_model_cfg
from symtime_repro.models import build_model

ETTH1 = DATA_ROOT / "ETT-small" / "ETTh1.csv"
SEQ_LEN, PRED_LEN, CLASSES = 96, 24, 3

# name -> (head, model config overrides); every head and switch the network has.
CONFIGS = {
    "forecast": ("forecast", dict(use_avg=True)),
    "forecast-no-decomposition": ("forecast", dict(use_avg=False, n_layers=3, forward_layers=2)),
    "forecast-individual": ("forecast", dict(individual=True, use_avg=True)),
    "reconstruct": ("reconstruct", dict(use_avg=False)),
    "reconstruct-layernorm-relu": ("reconstruct", dict(use_avg=False, norm="LayerNorm", activation="relu")),
    "classify-conv1d": ("classify", dict(conv1d=True, use_avg=False)),
    "classify-no-conv1d": ("classify", dict(conv1d=False, use_avg=True)),
}


def etth1_batch(batch: int = 8, seq_len: int = SEQ_LEN, pred_len: int = PRED_LEN, start: int = 0):
    """Windows of the shipped ETTh1 (7 channels), their next ``pred_len`` steps, and 3 class labels."""
    values = pd.read_csv(ETTH1).iloc[:, 1:].to_numpy(np.float32)
    starts = start + np.arange(batch) * 37
    x = np.stack([values[s: s + seq_len] for s in starts])
    y = np.stack([values[s + seq_len: s + seq_len + pred_len] for s in starts])
    labels = (np.arange(batch) % CLASSES).astype(np.int64)
    return x, y, labels


def model_cfg(name: str, **overrides):
    return tiny_model_cfg(**{**CONFIGS[name][1], **overrides})


def torch_network(name: str, seed: int = 0, **overrides):
    """The torch network of configuration ``name`` with every float tensor moved off its initial value."""
    head = CONFIGS[name][0]
    torch.manual_seed(seed)
    model = build_model(head, 7, SEQ_LEN, PRED_LEN, model_cfg(name, **overrides),
                        num_classes=CLASSES if head == "classify" else None)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.is_floating_point() and "pe.pe" not in key and "scale" not in key:
                tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.05)
    return model


def relative_difference(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12))
