"""``python -m symtime_repro.bench [the runner's overrides]``: how fast a configuration trains and
evaluates on this device, and how close that is to what the device can do.

Same config, data, model and training step as a real run (``run.prepare`` and
``Trainer.train_step``), timed step by step after ``bench.warmup`` untimed steps:

* train / eval samples per second: median step time over ``bench.steps`` steps;
* FLOPs per sample: counted by ``torch.utils.flop_counter`` on one real step (matmuls, convolutions
  and attention: the work that dominates this model);
* MFU: achieved FLOP/s over a matmul peak measured in the same process on the same device, in the
  precision the run uses (``bench.matmul_size`` square matmuls) - a ratio, comparable across machines;
* peak memory (RSS on CPU, allocator peak on CUDA/NPU) and the share of step time spent waiting for
  the next batch (data loading).

Prints a table and writes ``bench.json`` into the run dir (``hydra.run.dir=…``; default
``outputs/bench/<task>/<dataset>/<time>``).
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .allocator import current as current_allocator
from .config import register_configs
from .errors import EXIT_USER_ERROR, UserError
from .files import write_json

log = logging.getLogger("symtime_repro.bench")
register_configs()


def synchronize(device) -> None:
    if device.kind == "cuda":
        torch.cuda.synchronize(device.torch_device)
    elif device.kind == "npu":
        torch.npu.synchronize(device.torch_device)


def timed(fn: Callable[[], Any], device) -> float:
    """Seconds ``fn`` takes, with the device's queue drained before and after."""
    synchronize(device)
    started = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - started


def matmul_peak_flops(device, dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    """FLOP/s of an n x n x n matmul in ``dtype`` on ``device`` (median of ``repeats``)."""
    a = torch.randn(n, n, device=device.torch_device).to(dtype)
    b = torch.randn(n, n, device=device.torch_device).to(dtype)
    for _ in range(2):
        torch.mm(a, b)
    seconds = statistics.median(timed(lambda: torch.mm(a, b), device) for _ in range(repeats))
    return 2 * n**3 / seconds


def count_flops(fn: Callable[[], Any]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def endless(loader) -> Iterator[dict]:
    while True:
        yield from loader


def bench_train(trainer, task, model, dataset, device, warmup: int, steps: int) -> dict[str, Any]:
    """Median step time, data-wait share and FLOPs of real training steps."""
    optimizer, params = trainer.make_optimizer(model)
    scaler = device.grad_scaler()
    batches = endless(trainer.loader(dataset, train=True))
    model.train()

    def next_batch() -> dict:
        batch = next(batches)
        return {k: v.to(device.torch_device, non_blocking=device.pin_memory) for k, v in batch.items()}

    warmup_seconds = []
    for _ in range(warmup):
        batch = next_batch()
        warmup_seconds.append(timed(lambda: trainer.train_step(task, model, batch, optimizer, scaler, params),
                                    device))
    step_seconds, wait_seconds, size = [], [], 0
    for _ in range(steps):
        started = time.perf_counter()
        batch = next_batch()
        loaded = time.perf_counter()
        loss = trainer.train_step(task, model, batch, optimizer, scaler, params)
        loss.item()  # the step is done when its loss is known (syncs an accelerator)
        synchronize(device)
        finished = time.perf_counter()
        step_seconds.append(finished - started)
        wait_seconds.append(loaded - started)
        size = next(iter(batch.values())).shape[0]
    flops = count_flops(lambda: trainer.train_step(task, model, next_batch(), optimizer, scaler, params))
    median = statistics.median(step_seconds)
    return {"batch_size": size, "step_seconds": median, "samples_per_second": size / median,
            "first_step_seconds": (warmup_seconds or step_seconds)[0],
            "flops_per_sample": flops / size, "data_loading_share": sum(wait_seconds) / sum(step_seconds)}


def bench_eval(trainer, task, model, dataset, device, warmup: int, steps: int) -> dict[str, Any]:
    """Median time of evaluation steps (the task's own evaluate on one batch, inference mode)."""
    loader = trainer.loader(dataset, train=False)
    batches = endless(loader)
    model.eval()

    def one(batch: dict) -> None:
        with device.autocast():
            task.evaluate(model, iter([batch]))

    def next_batch() -> dict:
        return {k: v.to(device.torch_device) for k, v in next(batches).items()}

    warmup_seconds = []
    for _ in range(warmup):
        batch = next_batch()
        warmup_seconds.append(timed(lambda: one(batch), device))
    seconds, size = [], 0
    for _ in range(steps):
        batch = next_batch()
        size = next(iter(batch.values())).shape[0]
        seconds.append(timed(lambda: one(batch), device))
    batch = next_batch()
    flops = count_flops(lambda: one(batch))
    median = statistics.median(seconds)
    return {"batch_size": size, "step_seconds": median, "samples_per_second": size / median,
            "first_step_seconds": (warmup_seconds or seconds)[0],
            "flops_per_sample": flops / next(iter(batch.values())).shape[0]}


def pin_npu_float32(device) -> dict[str, Any]:
    """On Ascend, float32 matmuls and convolutions may run in HF32 (conv by default): off, so that a
    float32 bench is float32 as on the other devices and as MindSpore's must_keep_origin_dtype.
    Mixed precision keeps torch_npu's defaults. Returns what to record (empty off the NPU)."""
    if device.kind != "npu":
        return {}
    if not device.amp:
        torch.npu.matmul.allow_hf32 = False
        torch.npu.conv.allow_hf32 = False
    return {"npu_matmul_allow_hf32": bool(torch.npu.matmul.allow_hf32),
            "npu_conv_allow_hf32": bool(torch.npu.conv.allow_hf32)}


def measure_torch(rc, device, task, splits, model, trainer) -> dict[str, Any]:
    """The torch network's fields of bench.json."""
    from .training import compile_model

    pinned = pin_npu_float32(device)
    compiled = compile_model(model, device) if rc.trainer.compile else False
    dtype = device.amp_dtype if device.amp else torch.float32
    peak = matmul_peak_flops(device, dtype, rc.bench.matmul_size)
    device.reset_peak_memory()
    b = rc.bench
    train = bench_train(trainer, task, model, splits.train, device, b.warmup, b.steps)
    evaluation = bench_eval(trainer, task, model, splits.test, device, b.warmup, b.steps)
    achieved = train["flops_per_sample"] * train["samples_per_second"]
    return {
        "framework": "torch", "device_name": device.name,
        "precision": str(dtype).replace("torch.", ""), "compiled": compiled,
        "batch_size": train["batch_size"], "eval_batch_size": evaluation["batch_size"],
        "train_step_seconds": train["step_seconds"],
        "train_samples_per_second": train["samples_per_second"],
        "train_first_step_seconds": train["first_step_seconds"],
        "eval_step_seconds": evaluation["step_seconds"],
        "eval_samples_per_second": evaluation["samples_per_second"],
        "eval_first_step_seconds": evaluation["first_step_seconds"],
        "flops_per_sample": train["flops_per_sample"],
        "eval_flops_per_sample": evaluation["flops_per_sample"],
        "achieved_flops": achieved,
        "matmul_peak_flops": peak,
        "mfu": achieved / peak,
        "eval_mfu": evaluation["flops_per_sample"] * evaluation["samples_per_second"] / peak,
        "peak_memory_mb": round(device.peak_memory_mb(), 1),
        "peak_memory_source": "allocator peak" if device.kind in ("cuda", "npu") else "rss",
        "data_loading_share": train["data_loading_share"],
        **pinned,
    }


def bench(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    from dataclasses import asdict

    from .run import prepare
    from .training import Trainer

    rc, device, task, splits, model, dist = prepare(cfg)
    if dist.enabled:
        raise UserError("the bench times one process; run it without torchrun (once per device type)")
    trainer = Trainer(rc.trainer, device, run_dir, rc.seed, asdict(rc))
    if rc.framework == "mindspore":
        from .mindspore.bench import bench as measure_mindspore  # the port: only in the MindSpore venv

        measured = measure_mindspore(rc, task, splits, model, trainer)
        kind = model.device_kind
    else:
        measured = measure_torch(rc, device, task, splits, model, trainer)
        kind = device.kind
    b = rc.bench
    result = {
        "task": rc.task.name, "dataset": rc.dataset.name, "model": rc.model.name,
        "seq_len": rc.task.seq_len, "pred_len": rc.task.pred_len, "stride": rc.model.stride,
        "d_model": rc.model.d_model, "forward_layers": getattr(model, "layers_run", rc.model.forward_layers),
        "device": kind, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "amp": rc.device.amp,
        "warmup_steps": b.warmup, "timed_steps": b.steps, "matmul_size": b.matmul_size,
        **measured,
        "eval_over_train_throughput": measured["eval_samples_per_second"] / measured["train_samples_per_second"],
        "num_workers": rc.trainer.num_workers,
        "allocator": current_allocator(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LD_PRELOAD") if k in os.environ},
    }
    write_json(run_dir / "bench.json", result)
    log.info("\n%s", table(result, run_dir))
    return result


def table(r: dict[str, Any], run_dir: Path) -> str:
    rows = [
        ("config", f"{r['task']} {r['dataset']} {r['model']} d_model {r['d_model']}, seq_len {r['seq_len']}, "
                   f"stride {r['stride']}, {r['forward_layers']} layers run"),
        ("framework", r["framework"] + (f" {r['mindspore_version']}, {r['mindspore_mode']} mode"
                                        if r["framework"] == "mindspore" else f" {r['torch']}")),
        ("device", f"{r['device_name']}, {r['precision']}{', compiled' if r['compiled'] else ''}, "
                   f"{r['allocator']} allocator"),
        ("train", f"{r['train_samples_per_second']:.2f} samples/s ({r['train_step_seconds']:.3f} s/step of "
                  f"{r['batch_size']})"),
        ("eval", f"{r['eval_samples_per_second']:.2f} samples/s ({r['eval_step_seconds']:.3f} s/step of "
                 f"{r['eval_batch_size']}), {r['eval_over_train_throughput']:.2f}x train"),
        ("first step", f"{r['train_first_step_seconds']:.2f} s train, {r['eval_first_step_seconds']:.2f} s eval "
                       f"(compilation, caches)"),
        ("FLOPs/sample", f"{r['flops_per_sample'] / 1e9:.3f} GFLOP train, {r['eval_flops_per_sample'] / 1e9:.3f} "
                         f"GFLOP eval"),
        ("achieved", f"{r['achieved_flops'] / 1e9:.1f} GFLOP/s"),
        ("matmul peak", f"{r['matmul_peak_flops'] / 1e9:.1f} GFLOP/s ({r['precision']})"),
        ("MFU", f"{r['mfu']:.1%} train, {r['eval_mfu']:.1%} eval"),
        ("peak memory", f"{r['peak_memory_mb']:.0f} MB ({r['peak_memory_source']})"),
        ("data loading", f"{r['data_loading_share']:.1%} of train step time"),
        *([("vs torch", f"outputs differ by {r['output_max_abs_diff']:.2e} at most, losses by "
                        f"{r['loss_abs_diff']:.2e} ({r['parity_samples']} test windows, same weights)")]
          if "output_max_abs_diff" in r else []),
        ("written", str(run_dir / "bench.json")),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(["bench", "-" * (width + 40)] + [f"{k:<{width}}  {v}" for k, v in rows])


@hydra.main(config_path="pkg://symtime_repro.conf", config_name="config", version_base="1.3")
def hydra_bench(cfg: DictConfig) -> None:
    from .__main__ import app_started

    app_started()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        bench(cfg, run_dir)
    except UserError as exc:
        log.error("error: %s", exc)
        sys.exit(EXIT_USER_ERROR)


def main() -> None:
    from .__main__ import exit_before_finalization, launch

    if not any(a.startswith("hydra.run.dir=") for a in sys.argv[1:]):
        sys.argv.append("hydra.run.dir=outputs/bench/${task.name}/${dataset.name}/${now:%Y-%m-%d_%H-%M-%S}")
    exit_before_finalization(lambda: launch(hydra_bench))


if __name__ == "__main__":
    main()
