"""`experiment=<task>/<name>` presets: one per fine-tuning run in the official SymTime scripts.

Every preset composes into a valid config with the right task and dataset, the presets hold the
values of the official scripts as tabulated in symtime_repro/reference/ (with the documented
contradictions listed below), and one preset runs end to end through the CLI.
"""

from __future__ import annotations

import csv
import math

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from conftest import read_metrics, REPO, run_cli, TINY
from symtime_repro.config import register_configs, validate

EXPERIMENTS = REPO / "conf" / "experiment"
REFERENCE_CSV = REPO / "symtime_repro" / "reference" / "symtime_finetune_hparams_repo.csv"
EXPECTED_COUNTS = {"long_term": 32, "imputation": 24, "classification": 10, "short_term": 6, "anomaly": 5}
CSV_DATASET = {"traffic": "Traffic", "weather": "Weather"}
EXCHANGE_HORIZONS = [96, 192, 336, 720]  # the script says pred_len 96 four times; taken in order

# CSV column -> config key, for the values the test compares.
COLUMNS = {"seq_len": "task.seq_len", "patch_len": "model.patch_len", "stride": "model.stride",
           "forward_layers": "model.forward_layers", "batch_size": "trainer.batch_size",
           "learning_rate": "trainer.lr", "lradj": "trainer.lradj", "train_epochs": "trainer.epochs",
           "patience": "trainer.patience", "anomaly_ratio": "task.anomaly_ratio",
           "out_channels": "model.out_channels", "seed": "seed"}

# Where a preset deliberately differs from the script (each one is explained in the preset's YAML):
# (preset, key) -> the value the preset holds.
CONTRADICTIONS = {
    ("long_term/Exchange_192", "task.pred_len"): 192,  # script: --pred_len 96 on all four lines
    ("long_term/Exchange_336", "task.pred_len"): 336,
    ("long_term/Exchange_720", "task.pred_len"): 720,
    ("imputation/ETTm1_0.375", "trainer.batch_size"): 64,  # script: --batch_size 0.0003
    ("imputation/ETTm1_0.375", "trainer.lr"): 0.0003,  # script: --learning_rate $lr, $lr undefined
}
# The official classification loop never calls its lr schedule: the scripts' --lradj is inert and
# the presets leave trainer.lradj at the task's `constant`.
INERT = {("classification", "lradj"): "constant"}


def preset_names() -> list[str]:
    """The official fine-tuning presets (pre-training's two presets are tested in test_pretrain.py)."""
    return sorted(p.relative_to(EXPERIMENTS).with_suffix("").as_posix()
                  for p in EXPERIMENTS.rglob("*.yaml") if p.stem != "quickstart" and p.parent.name != "pretrain")


PRESETS = preset_names()


@pytest.fixture(scope="module")
def composed():
    """Compose each preset once (cached) inside one Hydra context."""
    register_configs()
    GlobalHydra.instance().clear()
    cache: dict[str, object] = {}
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        def get(name: str):
            if name not in cache:
                cfg = compose(config_name="config", overrides=[f"experiment={name}"])
                cache[name] = (cfg, validate(cfg))
            return cache[name]
        yield get
    GlobalHydra.instance().clear()


def _flatten(node: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_one_preset_per_official_run():
    counts = {task: sum(1 for n in PRESETS if n.startswith(task + "/")) for task in EXPECTED_COUNTS}
    assert counts == EXPECTED_COUNTS
    assert len(PRESETS) == 77
    for name in ("long_term/ETTh1_96", "long_term/Traffic_720", "long_term/Weather_336", "long_term/Exchange_720",
                 "imputation/ETTh1_0.125", "imputation/Weather_0.5", "short_term/M4_Weekly",
                 "short_term/M4_Hourly", "classification/PEMS-SF", "anomaly/SWaT"):
        assert name in PRESETS, name


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_with_its_values(composed, name):
    task_name, file_name = name.split("/")
    text = (EXPERIMENTS / f"{name}.yaml").read_text()
    assert text.splitlines()[0] == "# @package _global_"
    assert "wwhenxuan/SymTime@24a9386 scripts/" in text
    raw = yaml.safe_load(text)
    dataset = raw["defaults"][1]["override /dataset"]
    assert raw["defaults"][0] == {"override /task": task_name}
    assert file_name.split("_")[0] in (dataset, "M4")

    cfg, run = composed(name)
    assert run.task.name == task_name and run.dataset.name == dataset
    assert run.experiment == name
    assert "lradj" not in raw.get("trainer", {}) or task_name != "classification"
    values = _flatten({k: v for k, v in raw.items() if k != "defaults"})
    assert values, name
    for key, expected in values.items():
        assert OmegaConf.select(cfg, key) == expected, (name, key)
    if task_name == "short_term":
        assert file_name == f"M4_{run.dataset.seasonal_pattern}"
    if task_name == "long_term":
        assert file_name == f"{dataset}_{run.task.pred_len}" and run.task.seq_len == 336
    if task_name == "imputation":
        assert file_name == f"{dataset}_{run.task.mask_ratio:g}"


def _preset_for(row: dict, exchange_seen: list) -> str:
    task, dataset, setting = row["task"], CSV_DATASET.get(row["dataset"], row["dataset"]), row["setting"]
    if task == "long_term":
        horizon = int(setting.split("=")[1])
        if dataset == "Exchange":
            horizon = EXCHANGE_HORIZONS[len(exchange_seen)]
            exchange_seen.append(horizon)
        return f"long_term/{dataset}_{horizon}"
    if task == "imputation":
        return f"imputation/{dataset}_{float(setting.split('=')[1]):g}"
    if task == "short_term":
        return f"short_term/M4_{setting}"
    return f"{task}/{dataset}"


def test_presets_hold_the_official_script_values(composed):
    with open(REFERENCE_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 77
    exchange_seen: list = []
    seen, used = set(), set()
    for row in rows:
        name = _preset_for(row, exchange_seen)
        assert name not in seen, f"two CSV rows map to {name}"
        seen.add(name)
        cfg, run = composed(name)
        if row["setting"].startswith("pred_len="):
            if (name, "task.pred_len") in CONTRADICTIONS:
                used.add((name, "task.pred_len"))
                assert run.task.pred_len == CONTRADICTIONS[(name, "task.pred_len")], name
            else:
                assert run.task.pred_len == int(row["setting"].split("=")[1]), name
        if row["setting"].startswith("mask_ratio="):
            assert run.task.mask_ratio == float(row["setting"].split("=")[1]), name
        for column, key in COLUMNS.items():
            text = row[column].strip()
            if not text:  # not set by the script: the entry default (task YAML) applies
                continue
            actual = OmegaConf.select(cfg, key)
            if (name, key) in CONTRADICTIONS:
                used.add((name, key))
                assert actual == CONTRADICTIONS[(name, key)], (name, key)
                continue
            if (row["task"], column) in INERT:
                assert actual == INERT[(row["task"], column)], (name, key)
                continue
            # "16 (entry-file default)": the task YAML must hold the entry file's default.
            value = text.split()[0]
            if key == "trainer.lradj":
                assert actual == value, (name, key, actual, value)
            else:
                assert math.isclose(actual, float(value), rel_tol=1e-9), (name, key, actual, value)
    assert seen == set(PRESETS)
    assert used == set(CONTRADICTIONS), set(CONTRADICTIONS) - used


def test_cli_runs_a_preset(tmp_path):
    run_dir = tmp_path / "run"
    tiny = [arg for arg in TINY if not arg.startswith("task.pred_len=")]  # keep the preset's horizon
    result = run_cli(["experiment=long_term/ETTh1_96", *tiny, "trainer.epochs=1", "trainer.limit_train_batches=2",
                      "trainer.limit_eval_batches=2", "task.seq_len=96", "trainer.batch_size=16",
                      "trainer.eval_batch_size=64"], run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["task"] == "long_term" and metrics["dataset"] == "ETTh1"
    assert metrics["pred_len"] == 96 and metrics["seq_len"] == 96 and metrics["epochs_run"] == 1
    recorded = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert recorded.experiment == "long_term/ETTh1_96"
    assert recorded.trainer.lr == 0.00025 and recorded.trainer.lradj == "type2" and recorded.model.stride == 4
