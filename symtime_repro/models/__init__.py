"""SymTime network and its checkpoint formats."""

from .checkpoints import load_model_weights, load_pretrained_encoder, read_checkpoint, save_checkpoint
from .symtime import SymTime, build_model, encoder_state_size, patch_count

__all__ = [
    "SymTime",
    "build_model",
    "encoder_state_size",
    "patch_count",
    "load_model_weights",
    "load_pretrained_encoder",
    "read_checkpoint",
    "save_checkpoint",
]
