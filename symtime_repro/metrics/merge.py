"""Merging evaluation states: how the processes' shares of an evaluation become one.

Under torchrun every process evaluates a contiguous run of whole batches of the split and returns
its task's *state* (``Task.evaluation_state``): sums and counts, and arrays of per-sample values.
Process 0 merges the states in rank order with :func:`merge_states`, and the task computes its
metrics once from the merged state. Because the shares are contiguous and taken in rank order,
the merged state is what one process evaluating the whole split would have built, up to the order
in which floating-point sums were added: metrics are exact, never means of means.

The rule, per key:

* a number (int, float, numpy scalar, a 0-d array or tensor) is a sum: the values add (floats in
  float64, ints exactly);
* an array or tensor with a first axis is a sequence of per-sample values: the pieces concatenate
  along axis 0, in rank order (tensors become numpy arrays);
* a dict merges key by key by these same rules;
* anything else (a string, None, a bool) is a fact every share must agree on: the values must be
  equal, else :class:`ValueError`;
* a key some states lack adds nothing (a share that scored no batch, or kept no plot window).
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np
import torch


def merge_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One state from the processes' ``states`` (in rank order); see the module's rule."""
    keys: list[str] = []
    for state in states:
        keys.extend(k for k in state if k not in keys)
    return {key: _merge(key, [state[key] for state in states if key in state]) for key in keys}


def _host(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (numbers.Number, np.number)):
        return True
    return isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"


def _merge(key: str, values: list[Any]) -> Any:
    values = [_host(v) for v in values]
    if all(isinstance(v, dict) for v in values):
        return merge_states(values)
    if all(_is_number(v) for v in values):
        if all(isinstance(v, (numbers.Integral, np.integer)) or (isinstance(v, np.ndarray) and v.dtype.kind in "iu")
               for v in values):
            return sum(int(v) for v in values)
        return float(np.sum(np.asarray([float(v) for v in values], dtype=np.float64)))
    if all(isinstance(v, np.ndarray) and v.ndim >= 1 for v in values):
        return np.concatenate(values, axis=0)
    first = values[0]
    for other in values[1:]:
        if type(other) is not type(first) or other != first:
            raise ValueError(f"evaluation state {key!r}: the processes disagree ({first!r} vs {other!r}), "
                             f"and a value that is neither a number nor an array must be the same on every process")
    return first
