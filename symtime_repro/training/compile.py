"""``trainer.compile=true``: torch.compile where the platform can, a clear warning where it can't."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from typing import Optional

from torch import nn

from ..device import Device

log = logging.getLogger(__name__)


def compile_unavailable(device: Device) -> Optional[str]:
    """Why torch.compile can't run on this platform, or None if it can."""
    if device.kind == "cpu":
        if not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c):
            return "no C++ compiler (g++, c++ or clang++) is on PATH; inductor's CPU backend needs one"
    elif device.kind == "cuda":
        if importlib.util.find_spec("triton") is None:
            return "Triton is not installed (it comes with the CUDA builds of torch)"
    else:
        return f"torch.compile is not wired for device={device.kind}"
    return None


def compile_model(model: nn.Module, device: Device) -> bool:
    """torch.compile ``model`` in place (its state_dict keys stay as they are); False if skipped."""
    reason = compile_unavailable(device)
    if reason:
        log.warning("trainer.compile=true skipped: %s", reason)
        return False
    model.compile()
    log.info("trainer.compile=true: the model is compiled on its first steps (this takes a while)")
    return True
