"""A new task is one module and one YAML: a toy sixth task, kept outside the package (its module on
PYTHONPATH, its YAML in a folder given by hydra.searchpath), trains, tests and is reported end to
end on the shipped ETTh1 without a change to any file of the repository."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY, assert_user_error, read_metrics, run_cli

# The whole task: reconstruct the input window (the "reconstruct" head), scored by RMSE.
TOY_MODULE = textwrap.dedent('''
    import math

    import torch
    from torch import nn

    from symtime_repro.datasets import csv_series
    from symtime_repro.tasks.base import BaseTask, Splits


    class Backcast(BaseTask):
        name = "backcast"

        def __init__(self, cfg):
            self.cfg = cfg

        def datasets(self):
            windows, info = csv_series.window_splits(self.cfg.dataset, self.cfg.task.seq_len, 0, self.cfg.data.root)
            return Splits(*windows, info)

        def build_model(self, splits):
            return self.network(splits.info["enc_in"])

        def training_loss(self, model, batch):
            return nn.functional.mse_loss(model(batch["x"]).float(), batch["x"])

        @torch.inference_mode()
        def evaluate(self, model, batches):
            squared = count = 0.0
            for batch in batches:
                squared += (model(batch["x"]).float() - batch["x"]).square().sum().item()
                count += batch["x"].numel()
            return {"loss": squared / count, "rmse": math.sqrt(squared / count)}


    TASK = Backcast
''')

TOY_YAML = textwrap.dedent('''
    # @package _global_
    task:
      name: backcast
      module: toy_backcast
      head: reconstruct
      metrics: [rmse]
      derived: []
      seq_len: 96
      pred_len: 0
''')


@pytest.fixture(scope="module")
def toy_task(tmp_path_factory) -> Path:
    """A folder holding the toy task's module and its conf/task/backcast.yaml."""
    folder = tmp_path_factory.mktemp("toy")
    (folder / "toy_backcast.py").write_text(TOY_MODULE)
    (folder / "conf" / "task").mkdir(parents=True)
    (folder / "conf" / "task" / "backcast.yaml").write_text(TOY_YAML)
    return folder


def toy_args(folder: Path) -> list[str]:
    # TINY's task.pred_len=24 is a forecasting horizon; the toy task reconstructs its window.
    tiny = [a for a in TINY if not a.startswith("task.pred_len=")]
    return ["task=backcast", f"hydra.searchpath=[file://{folder / 'conf'}]", *tiny, "trainer.epochs=1"]


def test_a_task_from_one_module_and_one_yaml_runs_end_to_end(toy_task, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(toy_args(toy_task), run_dir, env={"PYTHONPATH": str(toy_task)})
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["task"] == "backcast"
    assert metrics["test_metrics"] == ["rmse"]
    assert math.isfinite(metrics["rmse"]) and 0 < metrics["rmse"] < 10  # scaled ETTh1: a real reconstruction
    assert metrics["test_samples_scored"] == metrics["test_samples_total"] > 0
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())["task"]
    assert (recorded["head"], recorded["metrics"], recorded["module"]) == ("reconstruct", ["rmse"], "toy_backcast")
    assert "rmse" in result.stdout  # the run's result table names the task's own metric

    # The report reads the task's facts from the run's record: the toy metric is its column.
    out = tmp_path / "report"
    report = subprocess.run([sys.executable, "-m", "symtime_repro.report", str(run_dir), "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr[-2000:]
    table = (out / "report.md").read_text()
    assert "backcast" in table and "rmse" in table
    assert f"{metrics['rmse']:.4f}" in table


def test_a_misspelled_task_from_the_search_path_gets_the_closest_name(toy_task, tmp_path):
    args = [a.replace("task=backcast", "task=backcats") for a in toy_args(toy_task)]
    result = run_cli(args, tmp_path / "run", env={"PYTHONPATH": str(toy_task)})
    assert_user_error(result, "task=backcats is not available; did you mean backcast?", tmp_path / "run")


def test_a_task_yaml_whose_metrics_the_task_does_not_compute_is_refused(toy_task, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli([*toy_args(toy_task), "task.metrics=[rmse,mape]", "trainer.limit_train_batches=1",
                      "trainer.limit_eval_batches=1"], run_dir, env={"PYTHONPATH": str(toy_task)})
    assert_user_error(result, "task.metrics names mape, which task backcast's test does not compute (it computes "
                              "rmse)", run_dir)
