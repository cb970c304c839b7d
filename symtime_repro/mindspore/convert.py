"""Weights into the MindSpore network: from any file the torch side loads, or from a live torch module.

The files are read with our torch readers (symtime_repro.models.checkpoints), so the three layouts
and their refusals are the torch side's: our ``checkpoint.pt``, the official fine-tuned
``checkpoint.pth`` (whole network) and the official pre-trained ``finetuning.pth`` (encoder only,
loaded into ``time_encoder``). Parameter names are the torch keys, so the copy is key by key; every
key and shape is checked both ways before anything is copied, and a mismatch is one UserError line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn

from ..errors import UserError
from .network import state_names

ENCODER = "time_encoder."


def _as_numpy(value) -> np.ndarray:
    # torch tensors (any device) and numpy arrays alike
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # numpy has no bfloat16; the Parameter's dtype decides below
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def check_state(cell: nn.Cell, state: Mapping[str, object], what: str, prefix: str = "") -> None:
    """Raise UserError naming the first key missing from ``state``, the first one ``cell`` lacks, or the
    first shape that differs. ``prefix``: only the Cell's keys under it are expected (encoder files)."""
    expected = {k[len(prefix):]: p for k, p in state_names(cell).items() if k.startswith(prefix)}
    for key, param in expected.items():
        if key not in state:
            raise UserError(f"{what}: key '{key}' is missing from the file (the MindSpore network has it)")
        got, want = tuple(_as_numpy(state[key]).shape), tuple(param.shape)
        if got != want:
            raise UserError(f"{what}: '{key}' has shape {got} in the file but {want} in the MindSpore network")
    for key in state:
        if key not in expected:
            raise UserError(f"{what}: the file has key '{key}' that the MindSpore network does not")


def _copy(cell: nn.Cell, state: Mapping[str, object], prefix: str = "") -> None:
    params = state_names(cell)
    for key, value in state.items():
        param = params[prefix + key]
        param.set_data(Tensor(_as_numpy(value).astype(ms.dtype_to_nptype(param.dtype), copy=False)))


def load_torch_state(cell: nn.Cell, state_dict: Mapping[str, object], what: str = "torch state dict") -> None:
    """Copy a whole-network torch state dict (tensors or numpy arrays) into ``cell``, every key checked."""
    check_state(cell, state_dict, what)
    _copy(cell, state_dict)


def load_encoder_state(cell: nn.Cell, state_dict: Mapping[str, object], what: str = "encoder state dict") -> None:
    """Copy a pre-trained encoder's state dict into ``cell.time_encoder``; the heads keep their values."""
    check_state(cell, state_dict, what, prefix=ENCODER)
    _copy(cell, state_dict, prefix=ENCODER)


def copy_from_torch(cell: nn.Cell, module) -> None:
    """Make ``cell`` hold the weights, buffers and BatchNorm statistics of the torch network ``module``."""
    load_torch_state(cell, module.state_dict(), f"torch {type(module).__name__}")


def load_weights_file(cell: nn.Cell, path: str | Path) -> str:
    """Load any weights file the torch side loads and return which layout it was: "checkpoint" (ours or
    the official checkpoint.pth, a whole network) or "pretrained" (an official finetuning.pth encoder)."""
    from ..models.checkpoints import read_checkpoint  # torch is needed only here

    # read_checkpoint takes our checkpoint.pt and any flat state dict ("module." prefix removed);
    # a whole network has time_encoder.* keys, a pre-trained encoder file has only the encoder's.
    state, _ = read_checkpoint(path)
    if any(key.startswith(ENCODER) for key in state):
        load_torch_state(cell, state, f"ckpt={path}")
        return "checkpoint"
    load_encoder_state(cell, state, f"model.pretrained={path}")
    return "pretrained"
