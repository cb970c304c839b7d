"""``python -m symtime_repro.bench framework=mindspore``: the MindSpore network timed as the torch one is.

The run's own config, data and weights (``run.prepare`` built the torch model and the adapter); here
MindSpore trains a network of its own with those weights (forward + backward + our TorchAdam), in
graph mode (``mindspore.jit``, the default) or PyNative (``bench.mindspore_mode``), and evaluates
(forward). The fields are the torch bench's, so the two bench.json files compare line by line:

* FLOPs per sample are counted by torch's flop counter on the torch model: the same network, so the
  same work, and one counter for both frameworks;
* MFU is over a matmul peak measured here with MindSpore's own matmul (each framework against what
  it can do on the device);
* peak memory is MindSpore's allocator peak; it reports 0 on CPU, where the process's peak RSS is
  recorded instead (``peak_memory_source``);
* after timing, the outputs and losses of a fixed batch, MindSpore against torch with the same
  weights (evaluation mode: dropout would make two training forwards differ by design).
"""

from __future__ import annotations

import resource
import statistics
import time
from typing import Any, Callable, Iterator

import numpy as np
import mindspore as ms
import torch
from mindspore import Tensor, ops

from ..errors import UserError
from .adapter import TARGETS, mixed_precision
from .convert import load_torch_state
from .network import build_network
from .train import make_optimizer, make_train_step


def synchronize(target: str) -> None:
    # Waits for an accelerator's queue. On CPU MindSpore only logs an ERROR that the CPU is not
    # supported: there each timed function waits for its own result on the host (asnumpy).
    if target != "CPU":
        ms.runtime.synchronize()


def timed(fn: Callable[[], Any], target: str) -> float:
    synchronize(target)
    started = time.perf_counter()
    fn()
    synchronize(target)
    return time.perf_counter() - started


def matmul_peak_flops(dtype, n: int, target: str, repeats: int = 5) -> float:
    """FLOP/s of MindSpore's n x n x n matmul in ``dtype`` on the current device (median of ``repeats``)."""
    rng = np.random.default_rng(0)
    a = Tensor(rng.standard_normal((n, n), dtype=np.float32)).astype(dtype)
    b = Tensor(rng.standard_normal((n, n), dtype=np.float32)).astype(dtype)
    for _ in range(2):
        ops.matmul(a, b)
    # one element to the host waits for the product (the copy of a scalar is noise beside n^3)
    seconds = statistics.median(timed(lambda: ops.matmul(a, b)[0, 0].asnumpy(), target) for _ in range(repeats))
    return 2 * n**3 / seconds


def peak_memory() -> tuple[float, str]:
    """(MB, source): MindSpore's allocator peak, or the process's peak RSS where that reads 0 (CPU)."""
    allocated = ms.runtime.max_memory_allocated()
    if allocated:
        return allocated / 2**20, "mindspore max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss (MindSpore reports 0 on CPU)"


# -- the loss of each head, in both frameworks ---------------------------------------------------------
# The network's cost does not depend on which loss ends it; these are the tasks' losses where they are
# one line (long-term MSE, anomaly reconstruction, classification). Short-term's sMAPE and imputation's
# masked error are timed as MSE: recorded in bench.json as "loss".
LOSSES = {"forecast": "mse against the horizon", "reconstruct": "mse against the input",
          "classify": "cross entropy"}


def ms_loss(head: str) -> Callable[[Tensor, Tensor], Tensor]:
    if head == "classify":
        def loss(out: Tensor, target: Tensor) -> Tensor:
            return ops.cross_entropy(out.astype(ms.float32), target)
    else:
        def loss(out: Tensor, target: Tensor) -> Tensor:
            return ((out.astype(ms.float32) - target) ** 2).mean()
    return loss


def torch_loss(head: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if head == "classify":
        return torch.nn.functional.cross_entropy(out.float(), target)
    return torch.nn.functional.mse_loss(out.float(), target)


TARGETS_OF_HEADS = {"forecast": "y", "reconstruct": "x", "classify": "label"}  # what each head's loss compares with


def target_of(head: str, batch: dict) -> torch.Tensor:
    return batch[TARGETS_OF_HEADS[head]]


def to_ms(value: torch.Tensor) -> Tensor:
    return Tensor(np.ascontiguousarray(value.detach().cpu().numpy()))


def full_batches(loader, size: int | None = None) -> Iterator[dict]:
    """Batches of one size, endlessly: graph mode compiles a graph per input shape, so the smaller
    last batch of an epoch would put a compilation inside the timed steps."""
    while True:
        for batch in loader:
            n = next(iter(batch.values())).shape[0]
            size = size or n
            if n == size:
                yield batch


def failing_kernel(exc: Exception, target: str) -> UserError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    remedies = ("device=cpu, " if target != "CPU" else "") + "device.amp=false or bench.mindspore_mode=pynative"
    return UserError(f"MindSpore failed on {target} ({first}); a missing kernel for this device or precision is "
                     f"the usual cause: try {remedies}")


def build_cell(rc, splits, target: str, torch_model: torch.nn.Module):
    t = rc.task
    cell = build_network(t.head, splits.info["enc_in"], t.seq_len, t.pred_len, rc.model,
                         num_classes=splits.info.get("num_classes"), device_target=target, seed=rc.seed)
    load_torch_state(cell, torch_model.state_dict(), what="the run's weights")
    return cell


def bench_train(cell, head: str, trainer, dataset, mode: str, loss_scale, warmup: int, steps: int,
                lr: float, target: str) -> dict[str, Any]:
    cell.set_train(True)
    step = make_train_step(cell, ms_loss(head), make_optimizer(cell, lr), graph=mode == "graph",
                           loss_scale=loss_scale)
    batches = full_batches(trainer.loader(dataset, train=True))

    def next_batch() -> tuple[Tensor, Tensor]:
        batch = next(batches)
        return to_ms(batch["x"]), to_ms(target_of(head, batch))

    first = None
    for _ in range(max(warmup, 1)):  # the first step compiles the graph: timed apart, never in the median
        x, y = next_batch()
        seconds = timed(lambda: step(x, y).asnumpy(), target)
        first = seconds if first is None else first
    step_seconds, wait_seconds = [], []
    for _ in range(steps):
        started = time.perf_counter()
        x, y = next_batch()
        loaded = time.perf_counter()
        step(x, y).asnumpy()  # the step is done when its loss is on the host
        synchronize(target)
        finished = time.perf_counter()
        step_seconds.append(finished - started)
        wait_seconds.append(loaded - started)
    median = statistics.median(step_seconds)
    size = x.shape[0]
    return {"batch_size": size, "step_seconds": median, "samples_per_second": size / median,
            "first_step_seconds": first, "data_loading_share": sum(wait_seconds) / sum(step_seconds)}


def bench_eval(cell, trainer, dataset, mode: str, warmup: int, steps: int, target: str) -> dict[str, Any]:
    cell.set_train(False)
    forward = ms.jit(cell.construct) if mode == "graph" else cell
    batches = full_batches(trainer.loader(dataset, train=False))
    first = None
    for _ in range(max(warmup, 1)):
        x = to_ms(next(batches)["x"])
        seconds = timed(lambda: forward(x).asnumpy(), target)
        first = seconds if first is None else first
    seconds = []
    for _ in range(steps):
        x = to_ms(next(batches)["x"])
        seconds.append(timed(lambda: forward(x).asnumpy(), target))  # evaluation scores the output on the host
    median = statistics.median(seconds)
    return {"batch_size": x.shape[0], "step_seconds": median, "samples_per_second": x.shape[0] / median,
            "first_step_seconds": first}


def torch_flops(torch_model: torch.nn.Module, head: str, batch: dict) -> tuple[float, float]:
    """FLOPs per sample of a training step (forward + backward) and of a forward, torch's counter."""
    from ..bench import count_flops

    x, target = batch["x"], target_of(head, batch)
    torch_model.train()
    train = count_flops(lambda: torch_loss(head, torch_model(x), target).backward())
    torch_model.zero_grad(set_to_none=True)
    torch_model.eval()
    with torch.no_grad():
        evaluation = count_flops(lambda: torch_model(x))
    return train / x.shape[0], evaluation / x.shape[0]


def parity(rc, splits, target: str, torch_model: torch.nn.Module, head: str, batch: dict, mode: str,
           amp: bool) -> dict[str, float]:
    """Max differences of outputs and losses on one batch: a fresh MindSpore network with the torch
    model's weights, both in evaluation mode, in the precision the bench ran."""
    cell = build_cell(rc, splits, target, torch_model)
    cell, _ = mixed_precision(cell, target, amp)
    cell.set_train(False)
    forward = ms.jit(cell.construct) if mode == "graph" else cell
    x, y = batch["x"], target_of(head, batch)
    out_ms = forward(to_ms(x))
    loss_ms = float(ms_loss(head)(out_ms, to_ms(y)).asnumpy())
    torch_model.eval()
    with torch.no_grad():
        out_torch = torch_model(x)
        loss_torch = float(torch_loss(head, out_torch, y))
    diff = np.abs(out_ms.astype(ms.float32).asnumpy() - out_torch.float().numpy())
    return {"parity_samples": int(x.shape[0]), "output_max_abs_diff": float(diff.max()),
            "output_max_rel_diff": float(diff.max() / max(float(out_torch.abs().max()), 1e-12)),
            "loss_torch": loss_torch, "loss_mindspore": loss_ms, "loss_abs_diff": abs(loss_ms - loss_torch)}


def bench(rc, task, splits, adapter, trainer) -> dict[str, Any]:
    """Every bench.json field for the MindSpore network (bench.py adds the run's description)."""
    torch_model = adapter.torch_source
    target = TARGETS[adapter.device_kind]
    head, b, mode = rc.task.head, rc.bench, rc.bench.mindspore_mode
    if target == "CPU":  # MindSpore's own CPU thread pool: as many threads as torch was given
        ms.set_context(runtime_num_threads=torch.get_num_threads())
    cell = build_cell(rc, splits, target, torch_model)
    cell, amp_dtype = mixed_precision(cell, target, rc.device.amp)
    # float16 needs loss scaling as torch's GradScaler does; bfloat16 (CPU) has float32's range.
    loss_scale = 2.0**16 if amp_dtype == str(ms.float16) else None
    dtype = {None: ms.float32, str(ms.float16): ms.float16, str(ms.bfloat16): ms.bfloat16}[amp_dtype]
    fixed = next(iter(trainer.loader(splits.test, train=False)))
    try:
        peak = matmul_peak_flops(dtype, b.matmul_size, target)
        ms.runtime.reset_peak_memory_stats()
        train = bench_train(cell, head, trainer, splits.train, mode, loss_scale, b.warmup, b.steps,
                            rc.trainer.lr, target)
        evaluation = bench_eval(cell, trainer, splits.test, mode, b.warmup, b.steps, target)
        memory, memory_source = peak_memory()
        same = parity(rc, splits, target, torch_model, head, fixed, mode, rc.device.amp)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise failing_kernel(exc, target) from None
    train_flops, eval_flops = torch_flops(torch_model, head, fixed)
    achieved = train_flops * train["samples_per_second"]
    return {
        **adapter.framework_settings,  # version, Ascend precision mode (its "pynative" is mode=test's)
        "framework": "mindspore", "mindspore_version": ms.__version__, "mindspore_mode": mode,
        "device_name": adapter.device_name, "precision": str(dtype).lower(),
        "compiled": mode == "graph", "loss_scaling": loss_scale is not None, "loss": LOSSES[head],
        "batch_size": train["batch_size"], "eval_batch_size": evaluation["batch_size"],
        "train_step_seconds": train["step_seconds"], "train_samples_per_second": train["samples_per_second"],
        "train_first_step_seconds": train["first_step_seconds"],
        "eval_step_seconds": evaluation["step_seconds"], "eval_samples_per_second": evaluation["samples_per_second"],
        "eval_first_step_seconds": evaluation["first_step_seconds"],
        "flops_per_sample": train_flops, "eval_flops_per_sample": eval_flops,
        "matmul_peak_flops": peak, "achieved_flops": achieved, "mfu": achieved / peak,
        "eval_mfu": eval_flops * evaluation["samples_per_second"] / peak,
        "peak_memory_mb": round(memory, 1), "peak_memory_source": memory_source,
        "data_loading_share": train["data_loading_share"],
        **same,
    }
