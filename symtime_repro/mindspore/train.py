"""One training step of the MindSpore network, with torch's Adam.

Why our own Adam: ``mindspore.mint.optim.Adam`` on CPU runs without error and never changes a weight
(MindSpore 2.10), and ``mindspore.nn.Adam`` adds eps to sqrt(v) *before* the bias correction where
torch adds it after, so every weight element whose gradient is below ~1e-4 takes a visibly different
step (measured: 0.3% of a head's weights after 5 steps, 15% of those elements' movement). The torch
runs are the reference, so this one does torch's arithmetic, in torch's order.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops


class TorchAdam:
    """torch.optim.Adam (no weight decay, no amsgrad) over MindSpore Parameters; call it with the
    gradients in the order of ``parameters``."""

    def __init__(self, parameters: Sequence[Parameter], lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.parameters = list(parameters)
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.exp_avg = [ops.zeros_like(p) for p in self.parameters]
        self.exp_avg_sq = [ops.zeros_like(p) for p in self.parameters]
        self.steps = 0

    def __call__(self, grads: Sequence[Tensor]) -> None:
        self.steps += 1
        step_size = self.lr / (1 - self.beta1 ** self.steps)
        correction2_sqrt = math.sqrt(1 - self.beta2 ** self.steps)
        for index, (param, grad) in enumerate(zip(self.parameters, grads)):
            m = self.exp_avg[index] * self.beta1 + grad * (1 - self.beta1)
            v = self.exp_avg_sq[index] * self.beta2 + grad * grad * (1 - self.beta2)
            self.exp_avg[index], self.exp_avg_sq[index] = m, v
            denom = ops.sqrt(v) / correction2_sqrt + self.eps
            ops.assign(param, param - step_size * m / denom)


def make_optimizer(cell: nn.Cell, lr: float) -> TorchAdam:
    """Adam over the trainable parameters (frozen layers and buffers excluded), torch's betas and eps."""
    return TorchAdam(cell.trainable_params(), lr)


def make_train_step(cell: nn.Cell, loss_fn: Callable[[Tensor, Tensor], Tensor],
                    optimizer: TorchAdam) -> Callable[[Tensor, Tensor], Tensor]:
    """A function (x, y) -> loss that runs forward, backward and one optimizer step on ``cell``."""

    def forward(x: Tensor, y: Tensor) -> Tensor:
        return loss_fn(cell(x), y)

    grad = ms.value_and_grad(forward, None, optimizer.parameters)

    def step(x: Tensor, y: Tensor) -> Tensor:
        loss, grads = grad(x, y)
        optimizer(grads)
        return loss

    return step
