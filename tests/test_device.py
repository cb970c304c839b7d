"""Device layer, tested honestly on CPU.

The NPU path runs against a fake ``torch_npu`` served by an import hook in a fresh interpreter: the
hook records every module it is asked for, so the test proves that ``torch_npu`` and then
``torch_npu.contrib.transfer_to_npu`` were really imported, once, and that the CPU path never asks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch

from conftest import REPO
from symtime_repro import device
from symtime_repro.errors import UserError

IMPORT_HOOK = textwrap.dedent('''
    import importlib.abc, importlib.machinery, json, sys, types
    ASKED = []

    class FakeTorchNpu(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """Serves torch_npu, torch_npu.contrib and torch_npu.contrib.transfer_to_npu (when SERVE)."""
        SERVE = {serve}

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] != "torch_npu":
                return None
            ASKED.append(name)
            if not self.SERVE:
                return None
            return importlib.machinery.ModuleSpec(name, self, is_package=not name.endswith("transfer_to_npu"))

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            ASKED.append("exec " + module.__name__)
            if module.__name__ == "torch_npu":
                import torch
                torch.utils.rename_privateuse1_backend("npu")
                torch.npu = types.SimpleNamespace(
                    is_available=lambda: True, device_count=lambda: 2,
                    set_device=lambda i: ASKED.append(f"set_device {{i}}"),
                    get_device_name=lambda i: "Ascend910B (fake)",
                    reset_peak_memory_stats=lambda d=None: None, max_memory_allocated=lambda d=None: 0,
                    set_compile_mode=lambda jit_compile: ASKED.append(f"jit_compile={{jit_compile}}"))

    sys.meta_path.insert(0, FakeTorchNpu())
''')


def _run(body: str, serve: bool) -> dict:
    script = IMPORT_HOOK.format(serve=serve) + textwrap.dedent(body)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_npu_imports_torch_npu_then_transfer_to_npu_exactly_once():
    out = _run('''
        import logging, io
        from types import SimpleNamespace
        stream = io.StringIO()
        logging.basicConfig(level=logging.INFO, stream=stream)
        from symtime_repro import device
        first = device.setup(SimpleNamespace(name="npu", amp=True, index=1))
        second = device.setup(SimpleNamespace(name="npu", amp=False, index=0))
        print(json.dumps({"asked": ASKED, "kind": first.kind, "where": str(first.torch_device),
                          "name": first.name, "amp_dtype": str(first.amp_dtype), "log": stream.getvalue(),
                          "second": str(second.torch_device)}))
    ''', serve=True)
    execs = [a for a in out["asked"] if a.startswith("exec ")]
    assert execs == ["exec torch_npu", "exec torch_npu.contrib", "exec torch_npu.contrib.transfer_to_npu"]
    assert out["asked"].count("set_device 1") == 1 and out["asked"].count("set_device 0") == 1
    assert out["kind"] == "npu" and out["where"] == "npu:1" and out["second"] == "npu:0"
    assert out["name"] == "Ascend910B (fake)" and out["amp_dtype"] == "torch.float16"
    assert "device: Ascend910B (fake) (npu:1)" in out["log"] and "GPU" not in out["log"]


def test_npu_turns_online_compilation_off_unless_asked():
    out = _run('''
        from types import SimpleNamespace
        from symtime_repro import device
        device.setup(SimpleNamespace(name="npu", amp=False, index=0, npu_jit_compile=False))
        device.setup(SimpleNamespace(name="npu", amp=False, index=0, npu_jit_compile=True))
        print(json.dumps({"asked": ASKED}))
    ''', serve=True)
    assert [a for a in out["asked"] if a.startswith("jit_compile")] == ["jit_compile=False", "jit_compile=True"]


def test_auto_prefers_an_installed_npu():
    out = _run('''
        from types import SimpleNamespace
        from symtime_repro import device
        chosen = device.setup(SimpleNamespace(name="auto", amp=False, index=0))
        print(json.dumps({"kind": chosen.kind, "asked": ASKED}))
    ''', serve=True)
    assert out["kind"] == "npu" and "exec torch_npu.contrib.transfer_to_npu" in out["asked"]


def test_cpu_run_never_asks_for_torch_npu():
    out = _run('''
        from types import SimpleNamespace
        import torch
        from symtime_repro import device
        from symtime_repro.models import build_model
        cpu = device.setup(SimpleNamespace(name="cpu", amp=False, index=0))
        cfg = SimpleNamespace(n_layers=1, d_model=16, n_heads=2, d_ff=16, norm="BatchNorm", activation="gelu",
                              dropout=0.0, attn_dropout=0.0, patch_len=16, stride=8, padding_patch=True,
                              forward_layers=1, use_avg=True, moving_avg=25, individual=False, out_dropout=0.0,
                              conv1d=False, out_channels=4)
        build_model("forecast", 2, 32, 8, cfg).to(cpu.torch_device)(torch.randn(2, 32, 2))
        print(json.dumps({"asked": ASKED, "loaded": sorted(m for m in sys.modules if "torch_npu" in m),
                          "kind": cpu.kind}))
    ''', serve=True)
    assert out == {"asked": [], "loaded": [], "kind": "cpu"}


def test_npu_without_torch_npu_says_what_to_install():
    out = _run('''
        from types import SimpleNamespace
        from symtime_repro import device
        from symtime_repro.errors import UserError
        try:
            device.setup(SimpleNamespace(name="npu", amp=False, index=0))
            message = None
        except UserError as exc:
            message = str(exc)
        print(json.dumps({"message": message}))
    ''', serve=False)
    assert out["message"].startswith("device=npu needs the torch_npu package")
    assert "pip install -e '.[npu]'" in out["message"] and "set_env.sh" in out["message"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_says_what_to_install():
    with pytest.raises(UserError, match="device=cuda: this torch .* has no usable CUDA"):
        device.setup(SimpleNamespace(name="cuda", amp=False, index=0))


def test_cpu_amp_runs_in_bfloat16():
    cpu = device.setup(SimpleNamespace(name="cpu", amp=True, index=0))
    layer = torch.nn.Linear(4, 4)
    with cpu.autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    assert cpu.grad_scaler() is None  # bfloat16 needs no loss scaling
    plain = device.setup(SimpleNamespace(name="cpu", amp=False, index=0))
    with plain.autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.float32
