"""The merge rule of evaluation states (symtime_repro/metrics/merge.py): sums add, arrays concatenate
in rank order, facts must agree; and an evaluation cut into contiguous shares of whole batches merges
to the metrics of the whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from symtime_repro.metrics.merge import merge_states


def test_numbers_add_arrays_concatenate_in_order_and_facts_must_agree():
    states = [
        {"sum": 0.1, "count": 3, "t": torch.tensor(2.5, dtype=torch.float64), "rows": np.array([0, 1]),
         "f": torch.tensor([[1.0, 2.0]]), "pattern": "Hourly", "nested": {"n": 1, "a": np.array([7])}},
        {"sum": 0.2, "count": 4, "t": torch.tensor(0.5, dtype=torch.float64), "rows": np.array([2]),
         "f": torch.tensor([[3.0, 4.0], [5.0, 6.0]]), "pattern": "Hourly", "nested": {"n": 2, "a": np.array([8, 9])}},
        {"count": 0, "pattern": "Hourly"},  # a share without batches adds nothing
    ]
    merged = merge_states(states)
    assert merged["sum"] == pytest.approx(0.3, rel=1e-15) and merged["count"] == 7 and isinstance(merged["count"], int)
    assert merged["t"] == 3.0
    assert merged["rows"].tolist() == [0, 1, 2]
    assert isinstance(merged["f"], np.ndarray) and merged["f"].tolist() == [[1, 2], [3, 4], [5, 6]]
    assert merged["f"].dtype == np.float32  # concatenation keeps the dtype: the values are exactly the shares'
    assert merged["pattern"] == "Hourly"
    assert merged["nested"]["n"] == 3 and merged["nested"]["a"].tolist() == [7, 8, 9]
    assert merge_states([states[0]])["rows"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="'pattern': the processes disagree"):
        merge_states([{"pattern": "Hourly"}, {"pattern": "Daily"}])


def test_a_long_term_evaluation_in_shares_merges_to_the_whole():
    """Shares of whole batches, each with its offset, give the one-process metrics and plot windows."""
    from types import SimpleNamespace

    from symtime_repro.tasks.base import TestSamples
    from symtime_repro.tasks.long_term import LongTermForecasting

    task = LongTermForecasting(SimpleNamespace(dataset=SimpleNamespace(features="M")))
    model = torch.nn.Linear(8, 4)
    x = torch.randn(10, 3, 8, generator=torch.Generator().manual_seed(0))
    batches = [{"x": x[i:i + 3].transpose(1, 2), "y": torch.randn(len(x[i:i + 3]), 4, 3)} for i in range(0, 10, 3)]
    head = lambda inp: model(inp.transpose(1, 2)).transpose(1, 2)  # noqa: E731  [b, steps, channels]

    class Share(list):
        def __init__(self, items, offset, batch_offset):
            super().__init__(items)
            self.offset, self.batch_offset = offset, batch_offset

    def test_of(shares):
        states = []
        for share in shares:
            task.keeping = TestSamples(10, offset=share.offset)
            states.append(task.evaluation_state(head, share))
        task.keeping = None
        return task.test_metrics(merge_states(states)), task.samples

    whole, whole_samples = test_of([Share(batches, 0, 0)])
    halves, half_samples = test_of([Share(batches[:2], 0, 0), Share(batches[2:], 6, 2), Share([], 10, 4)])
    assert halves == pytest.approx(whole, rel=1e-12)
    assert half_samples.index == whole_samples.index == [0, 2, 5, 7]
    for key, value in whole_samples.arrays.items():
        assert np.array_equal(half_samples.arrays[key], value)
