"""Reading and writing weights: official pre-trained encoders, official fine-tuned models, ours.

Three file layouts (docs/contract.md, "Checkpoint files read"):

* official pre-trained encoder (``finetuning.pth``): a flat state dict of the time encoder;
* official fine-tuned model (``checkpoint.pth``): a flat state dict of the whole network
  (``time_encoder.*`` plus the task head), as the official training loop saves it;
* ours (``checkpoint.pt``): ``{"format": FORMAT, "model": state dict, "optimizer": ...,
  "epoch": ..., "config": ...}``.

Every load checks every key and shape first and names the first mismatch with a likely cause.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..files import atomic_write_bytes

FORMAT = "symtime-repro/checkpoint-v1"
SIZE_PRESETS = {384: "model=symtime_small", 512: "model=symtime", 768: "model=symtime_large"}


def _read(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]})") from exc


def _strip_data_parallel(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    # Official runs with --use_multi_gpu wrap the model in nn.DataParallel ("module." prefix).
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _size_hint(state: Mapping[str, Tensor], prefix: str) -> str:
    """Guess which model preset a file was made with, from its patch-embedding width."""
    weight = state.get(prefix + "W_P.weight")
    if weight is None or weight.dim() != 2:
        return ""
    d_model = weight.shape[0]
    layers = {k.split(".")[len(prefix.split(".")) if prefix else 1] for k in state if k.startswith(prefix + "layers.")}
    preset = SIZE_PRESETS.get(d_model)
    hint = f" The file holds an encoder with d_model={d_model} and {len(layers)} layers"
    return hint + (f" (use {preset})." if preset else " (set model.d_model / model.n_layers to match).")


def check_state_dict(model: nn.Module, state: Mapping[str, Tensor], what: str,
                     prefix_hint: str = "") -> None:
    """Raise UserError naming the first missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise UserError(f"{what}: key '{key}' is missing from the file.{_size_hint(state, prefix_hint)}"
                            f"{_layout_hint(key)}")
        got = tuple(state[key].shape)
        if got != tuple(tensor.shape):
            raise UserError(f"{what}: '{key}' has shape {got} in the file but {tuple(tensor.shape)} in the "
                            f"model.{_shape_hint(key)}{_size_hint(state, prefix_hint)}")
    for key in state:
        if key not in expected:
            raise UserError(f"{what}: the file has key '{key}' that this model does not.{_layout_hint(key)}")


def _layout_hint(key: str) -> str:
    if "projection_trend" in key:
        return " The trend projection exists only with decomposition on: check model.use_avg."
    if "linears." in key or "flatten_head.linear." in key:
        return " Shared vs per-channel head: check model.individual."
    if "conv1d" in key:
        return " Check model.conv1d."
    return ""


def _shape_hint(key: str) -> str:
    if "flatten_head" in key or "ln_proj" in key or "classifier" in key:
        return (" The head's size follows task.seq_len, task.pred_len, model.patch_len, model.stride,"
                " model.padding_patch and the number of channels/classes: use the run's values.")
    if "projection_trend" in key:
        return " The trend projection maps task.seq_len to task.pred_len: use the run's values."
    if "conv1d" in key:
        return " Check model.out_channels and the dataset's channel count."
    return ""


def load_pretrained_encoder(model: nn.Module, path: str | Path) -> None:
    """Load an official pre-trained encoder file into ``model.time_encoder``."""
    state = _read(path)
    if isinstance(state, dict) and state.get("format") == FORMAT:
        raise UserError(f"{path} is a symtime-repro checkpoint, not a pre-trained encoder: pass it as ckpt=")
    if not isinstance(state, dict):
        raise UserError(f"{path} does not hold a state dict")
    state = _strip_data_parallel(state)
    if any(k.startswith("time_encoder.") for k in state):
        # A full fine-tuned model given as pre-trained: take its encoder part.
        state = {k[len("time_encoder."):]: v for k, v in state.items() if k.startswith("time_encoder.")}
    check_state_dict(model.time_encoder, state, f"model.pretrained={path}")
    model.time_encoder.load_state_dict(state)


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], Optional[dict]]:
    """Return (model state dict, our saved config or None for an official file)."""
    blob = _read(path)
    if not isinstance(blob, dict):
        raise UserError(f"{path} does not hold a state dict or a symtime-repro checkpoint")
    if blob.get("format") == FORMAT:
        return blob["model"], blob.get("config")
    if any(isinstance(v, Tensor) for v in blob.values()):
        return _strip_data_parallel(blob), None
    raise UserError(f"{path} is neither an official SymTime checkpoint.pth nor a symtime-repro checkpoint.pt")


def load_model_weights(model: nn.Module, state: Mapping[str, Tensor], path: str | Path) -> None:
    check_state_dict(model, state, f"ckpt={path}", prefix_hint="time_encoder.")
    model.load_state_dict(state)


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: Optional[torch.optim.Optimizer],
                    epoch: int, config: dict, extra: Optional[dict] = None) -> None:
    """Write our checkpoint atomically: a crash never leaves a half-written file."""
    import io

    blob = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": epoch,
        "config": config,
        **(extra or {}),
    }
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
