#!/usr/bin/env python3
"""Does S2 pre-training help? The experiment of docs/pretraining.md, end to end, on one machine.

    .venv/bin/python scripts/pretrain_benefit.py --root DATA_ROOT --s2 S2 --out outputs/pretrain_benefit [--seeds 5]

Arms, each fine-tuned with the same budget on ETTh1 (long-term, pred_len 96) and JapaneseVowels
(classification), one run per seed:

* ``random``       the encoder from random weights;
* ``s2``           the encoder pre-trained on S2 pairs (``task=pretrain``);
* ``mtm_only``     the control: pre-trained for the same steps without the symbol side
                   (``pretrain.symbols=none``: masked time-series modelling alone);
* ``random_long``  random weights, given extra fine-tuning steps worth the S2 pre-training's wall time
                   (measured here: its train seconds / the random arm's seconds per step).

The two pre-training runs are made once (seed 2025) and shared by the seeds. Results: a table per
dataset of mean ± std over seeds, and the paired difference of each arm against ``random`` per seed
with a 95 % t-interval; a benefit is claimed only when that interval excludes 0. Everything runs
through the normal CLI, so every run dir is a normal run dir (report, resume).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
ARMS = ("random", "s2", "mtm_only", "random_long")
# The fine-tuning budget every arm gets (random_long: plus its extra steps), per dataset.
FINETUNE = {
    "ETTh1": {"args": ["task=long_term", "dataset=ETTh1", "task.seq_len=96", "task.pred_len=96", "trainer.epochs=1",
                       "trainer.batch_size=32", "trainer.eval_batch_size=256", "trainer.limit_eval_batches=4"],
              "metric": "mse", "better": "lower", "budget": ("trainer.limit_train_batches", 30)},
    "JapaneseVowels": {"args": ["task=classification", "dataset=JapaneseVowels", "dataset.validation=holdout",
                                "trainer.batch_size=16", "trainer.patience=100"],
                       "metric": "accuracy", "better": "higher", "budget": ("trainer.epochs", 4)},
}


def cli(args: list[str], run_dir: Path) -> dict:
    """One run through the CLI (skipped when it already completed: the script resumes)."""
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file() and json.loads(metrics_file.read_text()).get("status") == "completed":
        return json.loads(metrics_file.read_text())
    command = [PY, "-m", "symtime_repro", *args, f"hydra.run.dir={run_dir}"]
    started = time.time()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    print(f"  {run_dir.name}: {time.time() - started:.0f} s", flush=True)
    return json.loads(metrics_file.read_text())


def pretrain(common: list[str], out: Path, args) -> dict[str, dict]:
    runs = {}
    for arm, extra in (("s2", []), ("mtm_only", ["pretrain.symbols=none"])):
        runs[arm] = cli(["task=pretrain", f"data.root={args.root}", f"dataset.path={args.s2}", "model=symtime_small",
                         "symbol_encoder=small", f"task.seq_len={args.context}", "trainer.batch_size=32",
                         f"trainer.epochs={args.pretrain_epochs}", "trainer.warmup_epochs=1",
                         f"trainer.lr={args.pretrain_lr}", "pretrain.queue_size=4096", *common, *extra],
                        out / "pretrain" / arm)
    return runs


def finetune(dataset: str, common: list[str], encoders: dict[str, str], pretrain_seconds: float, out: Path,
             seeds: list[int]) -> tuple[dict[str, list[dict]], str]:
    """Every arm on ``dataset`` for every seed; (results per arm, what random_long was given)."""
    spec = FINETUNE[dataset]
    key, budget = spec["budget"]
    batch = int(next(a.split("=")[1] for a in spec["args"] if a.startswith("trainer.batch_size=")))
    base = ["model=symtime_small", *spec["args"], *common]
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    longer = None
    for seed in seeds:
        for arm in ("random", "s2", "mtm_only"):
            weights = [f"model.pretrained={encoders[arm]}"] if arm in encoders else []
            results[arm].append(cli([*base, f"{key}={budget}", f"seed={seed}", *weights],
                                    out / dataset / f"{arm}_seed{seed}"))
        if longer is None:  # sized once, from the first random run's measured seconds per step
            first = results["random"][0]
            steps = first["train_seconds"] * first["train_samples_per_second"] / batch
            extra = pretrain_seconds / (first["train_seconds"] / steps)  # steps worth the pre-training's time
            if key == "trainer.epochs":  # a budget in epochs: the extra steps as whole epochs
                longer = budget + max(1, round(extra / (steps / budget)))
            else:
                longer = budget + max(1, round(extra))
        results["random_long"].append(cli([*base, f"{key}={longer}", f"seed={seed}"],
                                          out / dataset / f"random_long_seed{seed}"))
    return results, f"budget {key}={budget}, random_long {key}={longer}"


def pretraining_seconds(run_dir: Path) -> float:
    """The S2 pre-training's training time, as its fastest epoch times the epochs: on a shared machine
    one contended epoch would otherwise hand random_long extra steps the pre-training did not cost."""
    rows = [line.split(",") for line in (run_dir / "history.csv").read_text().splitlines()]
    seconds = [float(row[rows[0].index("seconds")]) for row in rows[1:]]
    return min(seconds) * len(seconds)


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval of ``values``."""
    from scipy import stats

    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return mean, mean - half, mean + half


def table(dataset: str, results: dict[str, list[dict]], budget_note: str) -> str:
    spec = FINETUNE[dataset]
    metric, better = spec["metric"], spec["better"]
    lines = [f"### {dataset} ({metric}, {better} is better; {budget_note})", "",
             f"| arm | {metric} mean ± std | paired difference vs random (95 % t-interval) | verdict |",
             "|---|---|---|---|"]
    base = [r[metric] for r in results["random"]]
    for arm in ARMS:
        values = [r[metric] for r in results[arm]]
        cell = f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"
        if arm == "random":
            lines.append(f"| {arm} | {cell} | — | — |")
            continue
        mean, low, high = t_interval([a - b for a, b in zip(values, base)])
        helps = (high < 0) if better == "lower" else (low > 0)
        hurts = (low > 0) if better == "lower" else (high < 0)
        verdict = "better" if helps else "worse" if hurts else "within seed noise"
        lines.append(f"| {arm} | {cell} | {mean:+.4f} [{low:+.4f}, {high:+.4f}] | {verdict} |")
    per_seed = " / ".join(f"{a:.4f}" for a in base)
    lines += ["", f"random per seed: {per_seed}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="data root holding ETT-small/, JapaneseVowels/ and the S2 cache")
    parser.add_argument("--s2", default="S2", help="the S2 cache folder under --root (dataset.path)")
    parser.add_argument("--out", default="outputs/pretrain_benefit")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--pretrain-lr", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out).resolve()
    common = [f"device.threads={args.threads}", "trainer.progress=false"]
    started = time.time()
    runs = pretrain(common, out, args)
    encoders = {arm: run["encoder"] for arm, run in runs.items()}
    wall = pretraining_seconds(out / "pretrain" / "s2")
    print(f"pre-training: s2 {runs['s2']['train_seconds']:.0f} s, mtm_only {runs['mtm_only']['train_seconds']:.0f} s "
          f"of training; random_long gets extra steps worth {wall:.0f} s", flush=True)
    seeds = list(range(1, args.seeds + 1))
    finetune_common = [*common, f"data.root={args.root}"]
    sections = []
    for dataset in FINETUNE:
        results, budget_note = finetune(dataset, finetune_common, encoders, wall, out, seeds)
        sections.append(table(dataset, results, budget_note))
    summary = [f"# S2 pre-training: does it help? ({len(seeds)} seeds)", "",
               f"Pre-training (model=symtime_small, symbol_encoder=small, context {args.context}, "
               f"{args.pretrain_epochs} epochs): s2 {runs['s2']['train_seconds']:.0f} s, mtm_only "
               f"{runs['mtm_only']['train_seconds']:.0f} s of training (random_long: extra steps worth {wall:.0f} s, "
               f"the fastest epoch x epochs); held-out test of s2: "
               f"mtm {runs['s2']['mtm_loss']:.4f}, mlm {runs['s2'].get('mlm_loss', float('nan')):.4f}, "
               f"top-1 retrieval {runs['s2'].get('retrieval_top1', float('nan')):.3f}; mtm_only: mtm "
               f"{runs['mtm_only']['mtm_loss']:.4f}.", "", *sections,
               f"Total wall time {time.time() - started:.0f} s."]
    (out / "summary.md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
