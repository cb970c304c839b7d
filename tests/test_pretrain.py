"""task=pretrain end to end on a real (tiny) S2 cache: generate, pre-train, fine-tune ETTh1 with the
encoder it wrote; resume, the controls, the official-queue refusal and bad input."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys

import pytest
import torch

from conftest import REPO, TINY, assert_user_error, read_metrics, run_cli
from symtime_repro.models import build_model
from conftest import tiny_model_cfg


def readme_commands() -> list[list[str]]:
    """The three commands of the README's "Pre-training your own encoder", as argument lists
    (without the leading ``$P``): the tests run these, at CI size."""
    section = (REPO / "README.md").read_text().split("## Pre-training your own encoder")[1]
    block = section.split("```bash")[1].split("```")[0].replace("\\\n", " ")
    commands = [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.startswith("$P ")]
    assert len(commands) == 3, block
    return [command[1:] for command in commands]


GENERATE, PRETRAIN_README, FINETUNE_README = readme_commands()
# README command 2 at CI size: a 64-step context (4 patches of 16), a few dozen steps.
PRETRAIN = [*PRETRAIN_README[2:], "task.seq_len=64", "trainer.batch_size=16", "trainer.eval_batch_size=64",
            "trainer.epochs=3", "pretrain.queue_size=64", "device.threads=2", "trainer.progress=false"]


@pytest.fixture(scope="module")
def s2_root(tmp_path_factory):
    """A small real S2 cache (the official generator), made by README command 1 at CI size (argparse
    takes the last value of a repeated option)."""
    root = tmp_path_factory.mktemp("s2data")
    assert GENERATE[:4] == ["-m", "symtime_repro.data", "generate", "s2"]
    made = subprocess.run([sys.executable, *GENERATE, "--samples", "120", "--root", str(root), "--length", "64",
                           "--max-input-dim", "1", "--max-output-dim", "2", "--workers", "2", "--quiet"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    return root


def pretrain_args(root, *extra):
    return [*PRETRAIN, f"data.root={root}", *extra]


@pytest.fixture(scope="module")
def pretrained(s2_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pretrained") / "run"
    result = run_cli(pretrain_args(s2_root), run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def test_pretraining_writes_an_official_layout_encoder_and_prints_its_fine_tuning_command(pretrained):
    run_dir, result = pretrained
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["task"] == "pretrain" and metrics["epochs_run"] == 3
    for name in ("mtm_loss", "mlm_loss", "t2s_loss", "s2t_loss", "retrieval_top1"):
        assert metrics[name] == metrics[name]  # present and not NaN
    encoder = torch.load(metrics["encoder"], weights_only=True)
    # The official finetuning.pth layout: exactly the fine-tuning network's time_encoder state dict.
    finetune = build_model("forecast", 7, 96, 96, tiny_model_cfg(forward_layers=2))
    expected = finetune.time_encoder.state_dict()
    assert encoder.keys() == expected.keys()
    assert all(encoder[k].shape == expected[k].shape for k in expected)
    # The best epoch's weights (checkpoint.pt) are the ones written.
    best = torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(encoder[k], best[f"time_encoder.{k}"]) for k in encoder)
    assert "fine-tune with this encoder:" in result.stdout
    assert metrics["finetune_command"] in result.stdout
    # README command 3 is this command, the encoder's path aside.
    printed = shlex.split(metrics["finetune_command"])
    assert printed[:3] == ["python", "-m", "symtime_repro"]
    assert printed[1:-1] == FINETUNE_README[:-1] and printed[-1] == f"model.pretrained={metrics['encoder']}"
    assert FINETUNE_README[-1].startswith("model.pretrained=outputs/pretrain/S2/")


def test_the_printed_command_fine_tunes_etth1_from_the_encoder(pretrained, tmp_path):
    run_dir, _ = pretrained
    command = shlex.split(read_metrics(run_dir)["finetune_command"])
    assert command[:3] == ["python", "-m", "symtime_repro"]
    finetuned = tmp_path / "finetuned"
    result = run_cli([*command[3:], *TINY[2:], "trainer.epochs=1", "trainer.limit_train_batches=2",
                      "trainer.limit_eval_batches=1"], finetuned)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded the pre-trained encoder from" in result.stderr
    metrics = read_metrics(finetuned)
    assert metrics["pretrained"] == read_metrics(run_dir)["encoder"] and metrics["status"] == "completed"


def test_an_encoder_of_another_size_is_named_by_its_size(pretrained, tmp_path):
    run_dir, _ = pretrained
    result = run_cli(["model=symtime_small", f"model.pretrained={run_dir / 'encoder.pth'}", *TINY[2:]],
                     tmp_path / "run")
    assert_user_error(result, "d_model=32 and 2 layers (d_ff=64, patch_len=16, BatchNorm) (use model=symtime_tiny)",
                      tmp_path / "run")


def test_a_killed_pretraining_resumes_bit_for_bit(s2_root, tmp_path, pretrained):
    whole, _ = pretrained
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "symtime_repro", *pretrain_args(s2_root), f"hydra.run.dir={killed}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "epoch 2/3: step" in line:
            break
    else:
        raise AssertionError("the run ended before epoch 2:\n" + "".join(seen[-20:]))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    result = run_cli([*pretrain_args(s2_root), "resume=true"], killed)
    assert result.returncode == 0, result.stderr[-2000:]
    a, b = read_metrics(whole), read_metrics(killed)
    assert b["resumed_from_epoch"] == 1
    # Weights, optimiser, OneCycle schedule, queues, momentum encoders and random state all restored.
    for name in ("mtm_loss", "mlm_loss", "t2s_loss", "s2t_loss", "retrieval_top1"):
        assert a[name] == b[name], name
    first, second = torch.load(a["encoder"], weights_only=True), torch.load(b["encoder"], weights_only=True)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_the_schedule_is_official_onecycle_over_every_batch(pretrained):
    run_dir, _ = pretrained
    rows = [line.split(",") for line in (run_dir / "history.csv").read_text().splitlines()]
    lr_at_end_of = {int(row[0]): float(row[rows[0].index("lr")]) for row in rows[1:]}
    per_epoch = -(-read_metrics(run_dir)["train_pairs"] // 16)  # batches of 16, the last one partial
    # torch's OneCycleLR over every batch of the 3 epochs, 1 of warm-up (the quick preset), by hand.
    optimizer = torch.optim.AdamW(torch.nn.Linear(1, 1).parameters(), lr=0.001)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.001, total_steps=per_epoch * 3,
                                                   pct_start=1 / 3, anneal_strategy="cos", base_momentum=0.85,
                                                   max_momentum=0.95)
    for epoch in (1, 2, 3):
        for _ in range(per_epoch):
            optimizer.step()
            schedule.step()
        assert lr_at_end_of[epoch] == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-9)
    assert lr_at_end_of[1] == pytest.approx(0.001, rel=0.02)  # about the peak (reached a step before the end of the warm-up)


@pytest.mark.parametrize("symbols", ["none", "shuffled"])
def test_the_controls_run(s2_root, tmp_path, symbols):
    run_dir = tmp_path / symbols
    result = run_cli(pretrain_args(s2_root, f"pretrain.symbols={symbols}", "trainer.epochs=1", "trainer.warmup_epochs=0"), run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = read_metrics(run_dir)
    assert (("mlm_loss" in metrics) is (symbols == "shuffled")) and metrics["mtm_loss"] > 0
    assert (run_dir / "encoder.pth").is_file()


@pytest.mark.parametrize("extra, message", [
    (["pretrain.queue_enqueue=official", "pretrain.queue_size=60"],
     "pretrain.queue_enqueue=official: the official code asserts queue_size % batch == 0, and 60 % 16 = 12"),
    (["pretrain.time_mask_ratio=0.2"], "pretrain.time_mask_ratio=0.2 masks no patch of the 4 in a window"),
    (["dataset=ETTh1"], "task=pretrain trains on series-symbol pairs (dataset=S2"),
    (["pretrain.symbol.tokenizer=/nonexistent/tokenizer"], "/nonexistent/tokenizer"),
    (["symbol_encoder=smal"], "did you mean small"),
])
def test_bad_pretraining_input_is_one_clear_error(s2_root, tmp_path, extra, message):
    result = run_cli(pretrain_args(s2_root, *extra), tmp_path / "run")
    assert_user_error(result, message, tmp_path / "run")


def test_the_readme_pretrains_with_the_quick_preset():
    assert PRETRAIN_README[:4] == ["-m", "symtime_repro", "task=pretrain", "experiment=pretrain/quick"]


def test_a_missing_cache_names_the_generate_command(tmp_path):
    result = run_cli(pretrain_args(tmp_path), tmp_path / "run")
    assert_user_error(result, "python -m symtime_repro.data generate s2", tmp_path / "run")


def test_the_official_preset_is_the_official_script():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from symtime_repro.config import register_configs, validate

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            run = validate(compose(config_name="config", overrides=["task=pretrain", "experiment=pretrain/official"]))
    finally:
        GlobalHydra.instance().clear()
    # scripts/SymTime_pretrain.sh (and pretrain.py / configs/SymTime_base.yaml for what it leaves out)
    t, m, p, s = run.trainer, run.model, run.pretrain, run.pretrain.symbol
    assert (run.dataset.family, run.task.seq_len, m.patch_len, m.stride, m.d_model, m.n_layers, m.d_ff) == (
        "s2", 256, 16, 16, 512, 6, 2048)
    assert (t.batch_size, t.epochs, t.warmup_epochs, t.lr, t.optimizer, t.weight_decay, t.lradj) == (
        128, 256, 32, 1e-5, "adamw", 1e-4, "onecycle")
    assert (p.time_mask_ratio, p.sym_mask_ratio, p.momentum, p.queue_size, p.temp, p.alpha, p.embed_dim) == (
        0.4, 0.15, 0.995, 60000, 0.07, 0.4, 128)
    assert (s.name, s.layers, s.hidden, s.heads, s.ffn, s.frozen_layers) == ("distilbert", 6, 768, 12, 3072, 3)
    assert (p.attention, p.contrastive_targets) == ("official", "official")


def test_the_quick_script_generates_its_cache_and_pretrains(tmp_path):
    """scripts/pretrain.sh --quick: its own small cache under data.root, then the quick preset."""
    run_dir = tmp_path / "run"
    done = subprocess.run(["bash", str(REPO / "scripts" / "pretrain.sh"), "--quick", "--samples", "40", "--workers", "2",
                           f"data.root={tmp_path}", "trainer.epochs=1", "trainer.warmup_epochs=0", "device.threads=2", "trainer.progress=false",
                           f"hydra.run.dir={run_dir}"], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((tmp_path / "S2_quick" / "manifest.json").read_text())
    assert manifest["pairs"] >= 40 and manifest["settings"]["length"] == 128
    metrics = read_metrics(run_dir)
    assert metrics["experiment"] == "pretrain/quick" and metrics["s2_cache"] == str(tmp_path / "S2_quick")
    assert metrics["finetune_command"] in done.stdout


def test_pretraining_runs_under_torchrun(s2_root, tmp_path):
    """The shared trainer's data parallelism carries pre-training too (momentum encoders, queues,
    the learnt temperature): two processes train, process 0 writes one run dir and the encoder."""
    from test_distributed import torchrun

    run_dir = tmp_path / "two"
    args = [a for a in pretrain_args(s2_root, "trainer.epochs=1", "trainer.warmup_epochs=0") if not a.startswith("device.threads=")]
    result = torchrun([*args, "device.threads=1"], run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(run_dir)
    assert metrics["world_size"] == 2 and metrics["status"] == "completed"
    assert torch.load(metrics["encoder"], weights_only=True)["W_P.weight"].shape == (32, 16)


@pytest.mark.parametrize("extra, message", [
    (["trainer.weight_decay=0.01"], "trainer.weight_decay=0.01 is used by trainer.optimizer=adamw only"),
    (["trainer.warmup_epochs=2"], "trainer.warmup_epochs=2.0 is used by trainer.lradj=onecycle only"),
])
def test_a_setting_the_chosen_optimiser_or_schedule_would_ignore_is_refused(tmp_path, extra, message):
    result = run_cli([*TINY, *extra], tmp_path / "run")  # fine-tuning: adam, type1
    assert_user_error(result, message, tmp_path / "run")


def test_the_held_out_evaluation_in_shares_merges_to_the_whole(s2_root, tmp_path):
    """Pre-training's evaluation cut into the shares two torchrun processes score (the real sharing of
    Trainer.eval_batches, in-process), merged, gives the one-process metrics: its seeded masks follow
    the global batch, whoever scores it. (The other tasks: tests/test_shared_evaluation.py, torchrun.)"""
    from dataclasses import asdict

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from symtime_repro.config import register_configs
    from symtime_repro.distributed import Dist
    from symtime_repro.metrics.merge import merge_states
    from symtime_repro.run import prepare
    from symtime_repro.training import Trainer

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=pretrain_args(s2_root, "trainer.eval_batch_size=2"))
    finally:
        GlobalHydra.instance().clear()
    rc, device, task, splits, model, _ = prepare(cfg)
    model.eval()
    trainer = Trainer(rc.trainer, device, tmp_path, rc.seed, asdict(rc))
    whole = task.evaluate(model, trainer.eval_batches(splits.val))
    shares = [Trainer(rc.trainer, device, tmp_path, rc.seed, asdict(rc), Dist(world=2, rank=rank)).eval_batches(
        splits.val, share=True) for rank in (0, 1)]
    assert len(shares[0]) >= 2 and len(shares[1]) >= 1 and shares[1].batch_offset == len(shares[0])
    merged = task.metrics_from(merge_states([task.evaluation_state(model, share) for share in shares]))
    assert set(merged) == set(whole) and {"mtm_loss", "mlm_loss", "retrieval_top1"} <= set(whole)
    assert merged == pytest.approx(whole, rel=1e-6)
