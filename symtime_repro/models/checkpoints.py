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


# The model presets (conf/model/*.yaml) by the shapes a file shows: (n_layers, d_model, d_ff).
SIZE_PRESETS = {(6, 384, 384): "model=symtime_small", (6, 512, 2048): "model=symtime",
                (6, 768, 3096): "model=symtime_large", (2, 32, 64): "model=symtime_tiny"}


def encoder_sizes(state: Mapping[str, Tensor], prefix: str = "") -> Optional[dict[str, Any]]:
    """The size settings an encoder state dict was made with, read off its shapes (None if it is not one)."""
    weight = state.get(prefix + "W_P.weight")
    if weight is None or weight.dim() != 2:
        return None
    depth = len(prefix.split(".")) if prefix else 1
    layers = {k.split(".")[depth] for k in state if k.startswith(prefix + "layers.")}
    ff = state.get(prefix + "layers.0.ff.0.weight")
    return {"n_layers": len(layers), "d_model": weight.shape[0], "patch_len": weight.shape[1],
            "d_ff": ff.shape[0] if ff is not None else None,
            "norm": "BatchNorm" if any(k.endswith("running_mean") for k in state) else "LayerNorm"}


def _size_hint(state: Mapping[str, Tensor], prefix: str) -> str:
    """Which size a file holds, as settings, and the preset (or overrides) that builds it."""
    sizes = encoder_sizes(state, prefix)
    if sizes is None:
        return ""
    n, d, d_ff, patch = sizes["n_layers"], sizes["d_model"], sizes["d_ff"], sizes["patch_len"]
    hint = (f" The file holds an encoder with d_model={d} and {n} layers (d_ff={d_ff}, patch_len={patch}, "
            f"{sizes['norm']})")
    preset = SIZE_PRESETS.get((n, d, d_ff))
    if preset:
        extra = f" model.patch_len={patch}" if patch != 16 else ""
        return hint + f" (use {preset}{extra})."
    return hint + (f" (set model.n_layers={n} model.d_model={d} model.d_ff={d_ff} model.patch_len={patch} "
                   f"model.norm={sizes['norm']}, and model.n_heads to a divisor of {d}).")


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
