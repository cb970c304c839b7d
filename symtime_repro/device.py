"""Devices: one function per kind, each returning a :class:`Device` that knows its real name.

``npu`` imports ``torch_npu`` and then ``torch_npu.contrib.transfer_to_npu`` exactly once per
process, before any model or tensor is placed. That patch is process-wide and irreversible
(``torch.cuda.*`` becomes the NPU, nccl becomes hccl), which is why nothing here imports
``torch_npu`` unless ``device=npu`` (or ``device=auto`` finds it installed).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import platform
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import torch

if TYPE_CHECKING:
    from .distributed import Dist

from .cpus import set_threads
from .errors import UserError

log = logging.getLogger(__name__)

NPU_INSTALL_HINT = (
    "install torch_npu of the same version as torch ({torch}) with `pip install -e '.[npu]'` "
    "(or Huawei's wheel for your CANN), and load the CANN toolkit first: "
    "`source /usr/local/Ascend/ascend-toolkit/set_env.sh`"
)
CUDA_INSTALL_HINT = (
    "this torch ({torch}) has no usable CUDA: install a CUDA build into .venv, e.g. "
    "`.venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cu124`, "
    "and check `nvidia-smi`; or run with device=cpu"
)

_transfer_to_npu_done = False


@dataclass
class Device:
    kind: str  # cpu | cuda | npu
    torch_device: torch.device
    name: str  # what the hardware is, for logs and metrics.json
    amp: bool = False

    @property
    def amp_dtype(self) -> torch.dtype:
        # bfloat16 is what CPUs accelerate; float16 is the fast path on CUDA and Ascend.
        return torch.bfloat16 if self.kind == "cpu" else torch.float16

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.amp.autocast(device_type=self.kind, dtype=self.amp_dtype)

    def grad_scaler(self) -> Optional["torch.amp.GradScaler"]:
        """Loss scaling for float16 autocast; None when not needed."""
        if not self.amp or self.amp_dtype != torch.float16:
            return None
        return torch.amp.GradScaler(self.kind)

    def reset_peak_memory(self) -> None:
        if self.kind == "cuda":
            torch.cuda.reset_peak_memory_stats(self.torch_device)
        elif self.kind == "npu":
            torch.npu.reset_peak_memory_stats(self.torch_device)

    def peak_memory_mb(self) -> float:
        """Allocator peak on an accelerator; peak resident memory of the process on CPU."""
        if self.kind == "cuda":
            return torch.cuda.max_memory_allocated(self.torch_device) / 2**20
        if self.kind == "npu":
            return torch.npu.max_memory_allocated(self.torch_device) / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

    @property
    def pin_memory(self) -> bool:
        return self.kind in ("cuda", "npu")


CGROUP_MEMORY_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")  # v2, v1


def host_memory_bytes() -> Optional[int]:
    """Memory this process may use (models are built there before moving to a device), or None: the
    machine's physical memory, or its cgroup's limit where that is lower (a SLURM --mem, a container)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None
    for path in CGROUP_MEMORY_LIMITS:
        try:
            limit = int(Path(path).read_text().strip())  # "max" (no limit) is not a number
        except (OSError, ValueError):
            continue
        memory = min(memory, limit)
    return memory


def setup(cfg, dist: Optional["Dist"] = None) -> Device:
    """The device ``cfg.name`` asks for (``auto``: npu, then cuda, then cpu), ready to use.

    Under torchrun each process takes the accelerator of its ``LOCAL_RANK`` (``device.index`` is
    then not used), among those ``CUDA_VISIBLE_DEVICES`` / ``ASCEND_RT_VISIBLE_DEVICES`` leave visible.
    """
    if dist is not None and dist.enabled:
        cfg = _with_index(cfg, dist.local_rank)
    set_threads(getattr(cfg, "threads", None))  # host threads matter on every device (data, the CPU side)
    builders = {"cpu": _cpu, "cuda": _cuda, "npu": _npu}
    if cfg.name == "auto":
        device = _auto(cfg)
    elif cfg.name in builders:
        if _transfer_to_npu_done and cfg.name != "npu":
            raise UserError(f"device={cfg.name}: an earlier job of this process ran on the NPU, and "
                            f"transfer_to_npu's patch of torch cannot be undone; run jobs of other devices in "
                            f"their own process (a separate command, or hydra/launcher=submitit_local)")
        device = builders[cfg.name](cfg)
    else:
        raise UserError(f"device={cfg.name} is not known: use cpu, cuda, npu or auto")
    from .allocator import current as current_allocator

    log.info("device: %s (%s)%s, %s memory allocator", device.name, device.torch_device,
             f", mixed precision {str(device.amp_dtype).replace('torch.', '')}" if device.amp else "",
             current_allocator())
    return device


def _with_index(cfg, index: int):
    from types import SimpleNamespace

    return SimpleNamespace(name=cfg.name, amp=cfg.amp, index=index, distributed=True,
                           npu_jit_compile=getattr(cfg, "npu_jit_compile", False), threads=getattr(cfg, "threads", None))


def _check_index(cfg, kind: str, count: int, visible_env: str) -> None:
    if cfg.index < count:
        return
    if getattr(cfg, "distributed", False):  # the index is LOCAL_RANK
        raise UserError(f"LOCAL_RANK={cfg.index} but only {count} {kind} device(s) are visible on this node "
                        f"({visible_env}={os.environ.get(visible_env, 'unset')}): start at most {count} process(es) "
                        f"per node (torchrun --nproc_per_node={count})")
    raise UserError(f"device.index={cfg.index} but only {count} {kind} device(s) are visible "
                    f"({visible_env}={os.environ.get(visible_env, 'unset')})")


def _cpu(cfg) -> Device:
    threads = torch.get_num_threads()
    name = f"CPU {platform.machine()} ({threads} thread{'s' if threads != 1 else ''})"
    return Device("cpu", torch.device("cpu"), name, amp=cfg.amp)


def _cuda(cfg) -> Device:
    if not torch.cuda.is_available():
        raise UserError("device=cuda: " + CUDA_INSTALL_HINT.format(torch=torch.__version__))
    _check_index(cfg, "CUDA", torch.cuda.device_count(), "CUDA_VISIBLE_DEVICES")
    torch.cuda.set_device(cfg.index)
    return Device("cuda", torch.device("cuda", cfg.index), torch.cuda.get_device_name(cfg.index), amp=cfg.amp)


def import_torch_npu() -> None:
    """Import torch_npu and apply transfer_to_npu once per process (idempotent)."""
    global _transfer_to_npu_done
    if _transfer_to_npu_done:
        return
    hint = NPU_INSTALL_HINT.format(torch=torch.__version__)
    try:
        importlib.import_module("torch_npu")
    except ImportError as exc:
        raise UserError(f"device=npu needs the torch_npu package ({exc}): {hint}") from exc
    except Exception as exc:  # torch_npu present but CANN missing or mismatched
        raise UserError(f"device=npu: importing torch_npu failed ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]}): {hint}") from exc
    importlib.import_module("torch_npu.contrib.transfer_to_npu")
    _transfer_to_npu_done = True


def _npu(cfg) -> Device:
    import_torch_npu()
    npu = getattr(torch, "npu", None)
    if npu is None or not npu.is_available():
        raise UserError("device=npu: torch_npu imported but no NPU is visible; check `npu-smi info` and "
                        f"ASCEND_RT_VISIBLE_DEVICES={os.environ.get('ASCEND_RT_VISIBLE_DEVICES', 'unset')}")
    _check_index(cfg, "NPU", npu.device_count(), "ASCEND_RT_VISIBLE_DEVICES")
    npu.set_device(cfg.index)
    # Online operator compilation stalls the first steps of a model whose shapes vary (the last,
    # smaller batch; evaluation batches); Huawei advises it off for training.
    if hasattr(npu, "set_compile_mode"):
        npu.set_compile_mode(jit_compile=bool(getattr(cfg, "npu_jit_compile", False)))
    return Device("npu", torch.device("npu", cfg.index), npu.get_device_name(cfg.index), amp=cfg.amp)


def _auto(cfg) -> Device:
    if importlib.util.find_spec("torch_npu") is not None:
        try:
            return _npu(cfg)
        except UserError as exc:
            log.warning("device=auto: torch_npu is installed but unusable, trying CUDA (%s)", exc)
    if torch.cuda.is_available():
        return _cuda(cfg)
    return _cpu(cfg)
