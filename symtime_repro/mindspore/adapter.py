"""``framework=mindspore`` in a run: the MindSpore network behind a torch module.

The run keeps everything else as it is: our data pipeline, each task's ``evaluate()`` / ``test()``,
the metrics and the files. Only the network's arithmetic moves: :class:`MindSporeForward` hands
each batch to the MindSpore network (numpy in, numpy out) and gives torch the result, so the two
frameworks are compared on the same windows, the same weights and the same scoring code.

MindSpore computes on the device asked for (``device=npu`` → Ascend, ``cuda`` → GPU, ``cpu``);
torch stays on the CPU and only reads the data and the weights. What decides whether a comparison
is fair is pinned and recorded in metrics.json: on Ascend the operator precision mode is
``must_keep_origin_dtype`` (float32 stays float32) unless ``device.amp=true``, which maps to
MindSpore's own ``auto_mixed_precision`` (float16 on Ascend and GPU, bfloat16 on CPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import UserError

TARGETS = {"cpu": "CPU", "cuda": "GPU", "npu": "Ascend"}  # our device names -> MindSpore's device targets


def choose_target(name: str) -> str:
    """MindSpore's device target for ``device.name`` (``auto``: Ascend, then GPU, then CPU)."""
    if name != "auto":
        return TARGETS[name]
    import mindspore as ms

    for target in ("Ascend", "GPU"):
        try:
            if ms.hal.is_available(target):
                return target
        except Exception:  # a backend that is not built into this MindSpore wheel
            continue
    return "CPU"


def setup_device(device_cfg) -> tuple[str, dict[str, Any]]:
    """Point MindSpore at the device and pin its precision; returns (target, what to record)."""
    import mindspore as ms

    target = choose_target(device_cfg.name)
    try:
        ms.set_device(target, device_cfg.index)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"framework=mindspore cannot use device={device_cfg.name} ({target}): "
                        f"{str(exc).strip().splitlines()[0]}") from None
    # Evaluation runs one forward per batch, and the last batch is smaller: PyNative avoids compiling a
    # graph per shape. (The benchmark times graph mode as well.)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    settings: dict[str, Any] = {"mindspore_version": ms.__version__, "mindspore_mode": "pynative"}
    if target == "Ascend":
        precision = "allow_mix_precision" if device_cfg.amp else "must_keep_origin_dtype"
        ms.device_context.ascend.op_precision.precision_mode(precision)
        settings["ascend_precision_mode"] = precision
    return target, settings


def mixed_precision(cell, target: str, amp: bool):
    """``device.amp=true`` in MindSpore's own mechanism; the dtype it computes in (None: float32)."""
    if not amp:
        return cell, None
    import mindspore as ms

    dtype = ms.bfloat16 if target == "CPU" else ms.float16  # as torch.amp does on each device
    return ms.amp.auto_mixed_precision(cell, amp_level="auto", dtype=dtype), str(dtype)


class MindSporeForward(torch.nn.Module):
    """A torch module whose forward is the MindSpore network's: tasks call it like our own."""

    def __init__(self, cell, target: str, settings: dict[str, Any], source: torch.nn.Module) -> None:
        super().__init__()
        self.cell = cell
        # The torch network the weights came from (the bench counts FLOPs and checks parity on it); set
        # past nn.Module's registration so that it is no submodule: this module has no torch weights.
        object.__setattr__(self, "torch_source", source)
        self.device_kind = {v: k for k, v in TARGETS.items()}[target]
        self.device_name = f"MindSpore {settings['mindspore_version']} on {target}"
        self.framework_settings = settings

    def train(self, mode: bool = True):
        super().train(mode)
        self.cell.set_train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import mindspore as ms

        inputs = ms.Tensor(np.ascontiguousarray(x.detach().cpu().float().numpy()))
        try:
            out = self.cell(inputs).float().asnumpy()  # asnumpy waits for the device: errors surface here
        except (RuntimeError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"MindSpore failed on {self.device_kind} ({first}); a missing kernel for this device "
                            f"or precision is the usual cause: try device=cpu or device.amp=false") from None
        return torch.from_numpy(out)


def on_mindspore(model: torch.nn.Module, rc, splits) -> MindSporeForward:
    """The run's torch ``model`` (weights loaded) as the same network in MindSpore."""
    from .convert import load_torch_state
    from .network import build_network

    target, settings = setup_device(rc.device)
    t = rc.task
    cell = build_network(t.head, splits.info["enc_in"], t.seq_len, t.pred_len, rc.model,
                         num_classes=splits.info.get("num_classes"), device_target=target)
    load_torch_state(cell, model.state_dict(), what="the run's weights")
    cell, amp_dtype = mixed_precision(cell, target, rc.device.amp)
    settings["mindspore_amp"] = amp_dtype
    return MindSporeForward(cell, target, settings, model)
