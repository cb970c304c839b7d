"""One training step of the MindSpore network, with torch's Adam, in PyNative or graph mode.

Why our own Adam: ``mindspore.mint.optim.Adam`` on CPU runs without error and never changes a weight
(MindSpore 2.10), and ``mindspore.nn.Adam`` adds eps to sqrt(v) *before* the bias correction where
torch adds it after, so every weight element whose gradient is below ~1e-4 takes a visibly different
step (measured: 0.3% of a head's weights after 5 steps, 15% of those elements' movement). The torch
runs are the reference, so this one does torch's arithmetic, in torch's order.

Graph mode (``mindspore.jit``) compiles forward, backward and the optimizer update into one graph.
A compiled graph freezes Python numbers, so the moments are Parameters (updated with ``assign``) and
the step's bias corrections are passed in as tensors, computed on the host each step.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops


class TorchAdam:
    """torch.optim.Adam (no weight decay, no amsgrad) over MindSpore Parameters; call it with the
    gradients in the order of ``parameters``."""

    def __init__(self, parameters: Sequence[Parameter], lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.parameters = list(parameters)
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.exp_avg = [Parameter(ops.zeros_like(p), name=f"exp_avg.{p.name}", requires_grad=False)
                        for p in self.parameters]
        self.exp_avg_sq = [Parameter(ops.zeros_like(p), name=f"exp_avg_sq.{p.name}", requires_grad=False)
                           for p in self.parameters]
        self.steps = 0

    def next_corrections(self) -> tuple[Tensor, Tensor]:
        """Count a step; its step size and sqrt of the second moment's bias correction, as tensors."""
        self.steps += 1
        step_size = self.lr / (1 - self.beta1 ** self.steps)
        correction2_sqrt = math.sqrt(1 - self.beta2 ** self.steps)
        return Tensor(step_size, ms.float32), Tensor(correction2_sqrt, ms.float32)

    def update(self, grads: Sequence[Tensor], step_size: Tensor, correction2_sqrt: Tensor) -> None:
        """The arithmetic of one step (graph-safe: no Python state changes)."""
        for index, grad in enumerate(grads):
            param, exp_avg, exp_avg_sq = self.parameters[index], self.exp_avg[index], self.exp_avg_sq[index]
            m = exp_avg * self.beta1 + grad * (1 - self.beta1)
            v = exp_avg_sq * self.beta2 + grad * grad * (1 - self.beta2)
            ops.assign(exp_avg, m)
            ops.assign(exp_avg_sq, v)
            denom = ops.sqrt(v) / correction2_sqrt + self.eps
            ops.assign(param, param - step_size * m / denom)

    def __call__(self, grads: Sequence[Tensor]) -> None:
        self.update(grads, *self.next_corrections())


def make_optimizer(cell: nn.Cell, lr: float) -> TorchAdam:
    """Adam over the trainable parameters (frozen layers and buffers excluded), torch's betas and eps."""
    return TorchAdam(cell.trainable_params(), lr)


def make_train_step(cell: nn.Cell, loss_fn: Callable[[Tensor, Tensor], Tensor], optimizer: TorchAdam,
                    graph: bool = False, loss_scale: Optional[float] = None) -> Callable[[Tensor, Tensor], Tensor]:
    """A function (x, y) -> loss that runs forward, backward and one optimizer step on ``cell``:
    PyNative (op by op), or ``graph=True`` compiled with ``mindspore.jit`` at its first call.

    ``loss_scale``: float16 mixed precision multiplies the loss before backward (small gradients would
    round to zero in float16) and divides the gradients after; a step whose gradients overflowed is
    skipped and the scale halved, as torch's GradScaler does."""
    scaler = ms.amp.DynamicLossScaler(loss_scale, 2, 1000) if loss_scale else None

    def forward(x: Tensor, y: Tensor) -> Tensor:
        loss = loss_fn(cell(x), y)
        return scaler.scale(loss) if scaler is not None else loss

    grad = ms.value_and_grad(forward, None, optimizer.parameters)

    def step(x: Tensor, y: Tensor, step_size: Tensor, correction2_sqrt: Tensor) -> Tensor:
        loss, grads = grad(x, y)
        if scaler is None:
            optimizer.update(grads, step_size, correction2_sqrt)
            return loss
        loss, grads = scaler.unscale(loss), scaler.unscale(grads)
        finite = ms.amp.all_finite(grads)
        scaler.adjust(finite)
        if finite:
            optimizer.update(grads, step_size, correction2_sqrt)
        return loss

    compiled = ms.jit(step) if graph else step

    def train_step(x: Tensor, y: Tensor) -> Tensor:
        return compiled(x, y, *optimizer.next_corrections())

    return train_step
