"""Evaluation shared by the processes under torchrun: each process scores a contiguous run of whole
batches, process 0 merges the states, and the metrics and test files are those of one process
evaluating everything (long_term, imputation, short_term on M4, classification on JapaneseVowels,
anomaly on MSL: one torchrun launch of tests/shared_evaluation_run.py; pre-training: in-process, in
tests/test_pretrain.py)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

SCRIPT = REPO / "tests" / "shared_evaluation_run.py"
WALL_CLOCK = {"scoring_seconds"}  # the one number that is not a metric


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    out = tmp_path_factory.mktemp("shared")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT), str(out)]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 and not (out / "results.json").exists():  # a rendezvous hiccup: once more
        shutil.rmtree(out)
        out.mkdir()
        result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, json.loads((out / "results.json").read_text())


CASES = ["long_term", "long_term_one_batch", "imputation", "short_term", "classification", "anomaly"]


@pytest.mark.parametrize("case", CASES)
def test_shared_evaluation_gives_the_metrics_of_one_process(shared, case):
    out, results = shared
    r = results[case]
    for what in ("val", "test"):
        two, one = r[what]
        assert set(two) == set(one), what
        for key, value in one.items():
            if key in WALL_CLOCK:
                continue
            if isinstance(value, float) and not math.isnan(value):
                assert two[key] == pytest.approx(value, rel=1e-6, abs=1e-12), (what, key)
            else:
                assert two[key] == value or (value != value and two[key] != two[key]), (what, key)
    if case == "anomaly":  # the same energies in the same order: the same threshold, bit for bit
        assert r["test"][0]["threshold"] == r["test"][1]["threshold"]

    # Each process scored only its share: contiguous runs of whole batches, rank 0's first, that
    # together are the batches one process scores (split as torch.tensor_split splits them).
    first, second = r["calls"]
    assert len(first) == len(second) == len(r["whole_calls"])
    for (n0, offset0, b0), (n1, offset1, b1), (n, _, _) in zip(first, second, r["whole_calls"]):
        assert (n0, n1) == ((n + 1) // 2, n // 2)
        assert (offset0, b0, b1) == (0, 0, n0)
        assert offset1 >= 0 and (n1 == 0 or offset1 > 0)

    # The test files process 0 writes hold exactly what one process writes.
    written = sorted(p.name for p in (out / case / "whole").iterdir())
    assert written and written == sorted(p.name for p in (out / case / "shared").iterdir())
    for name in written:
        a, b = out / case / "shared" / name, out / case / "whole" / name
        if name.endswith(".npz"):
            with np.load(a) as x, np.load(b) as y:
                assert sorted(x.files) == sorted(y.files)
                for key in y.files:
                    assert np.array_equal(x[key], y[key]), (name, key)
        else:
            assert a.read_text() == b.read_text(), name


def test_a_share_of_no_batch_and_uneven_shares_are_exercised(shared):
    _, results = shared
    assert [call[0] for call in results["long_term_one_batch"]["calls"][1]] == [0, 0]  # process 1: nothing
    assert [call[0] for call in results["imputation"]["calls"][0]] == [2, 2]  # 3 batches: 2 + 1
