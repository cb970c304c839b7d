"""Our training step against the official implementation's, side by side, in pairs of processes.

    .venv/bin/python scripts/bench_official.py --official /path/to/SymTime [--pairs 3] \
        [--ours "" --ours "device.amp=true"] [--official-allocator system|mimalloc] [--out FILE] [-- overrides]

``--official`` is a clone of https://github.com/wwhenxuan/SymTime (its ``models/`` and ``layers/``
are imported from there at run time; nothing of it is copied here). Each pair runs, one after the
other, ``python -m symtime_repro.bench <overrides> <--ours>`` (our runner as a user runs it; once
per ``--ours`` given, e.g. float32 and bfloat16) and a
worker process that builds the official fine-tuning network for the same configuration and times
the official training step (Adam, MSE, ``loss.item()``) on the same real batches, with the same
threads, ``bench.warmup`` untimed and ``bench.steps`` timed steps. Alternating the two in pairs
makes the ratio robust to a machine whose load drifts; the table gives every pair, the medians
and the load average before each process.

The official process runs with the system allocator (as it runs when cloned) unless
``--official-allocator mimalloc`` preloads ours into it too, with our settings
(symtime_repro/allocator.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
# The configuration of docs/performance.md: the base model on ETTh1, seq_len 336, stride 4, batch 32.
DEFAULT = ["task.seq_len=336", "task.pred_len=96", "model.stride=4", "trainer.batch_size=32", "device.threads=2"]


def load() -> float:
    return os.getloadavg()[0]


# -- the official side (a worker process) ---------------------------------------------------------
def official_worker(official: Path, overrides: list[str], out: Path) -> None:
    import torch
    from hydra import compose, initialize_config_module

    from symtime_repro.bench import endless, synchronize
    from symtime_repro.config import register_configs
    from symtime_repro.run import prepare
    from symtime_repro.training.loop import Trainer

    register_configs()
    with initialize_config_module("symtime_repro.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    rc, device, task, splits, _ours, _dist = prepare(cfg)
    if rc.task.name != "long_term" or device.kind not in ("cpu", "cuda"):
        raise SystemExit("the official side is timed for task=long_term, on the CPU or CUDA")
    sys.path.insert(0, str(official))
    import yaml

    try:
        from models.finetune_model import SymTime as OfficialSymTime  # from the clone, at run time
    except ModuleNotFoundError as exc:
        raise SystemExit(f"the official code needs {exc.name}: install its requirements "
                         f"({official / 'requirements.txt'}), e.g. pip install --target DIR {exc.name} "
                         f"and PYTHONPATH=DIR") from None

    m = rc.model
    # The official network always loads a pre-trained encoder: give it ours (the same layout, the
    # same random weights), so both sides start from the same encoder.
    encoder = out.with_suffix(".encoder.pth")
    torch.save(_ours.time_encoder.state_dict(), encoder)
    args = SimpleNamespace(task_name="long_term_forecast", patch_len=m.patch_len, stride=m.stride,
                           padding_patch=m.padding_patch, seq_len=rc.task.seq_len, pred_len=rc.task.pred_len,
                           forward_layers=m.forward_layers, individual=m.individual, pretrain_path=str(encoder),
                           out_dropout=m.out_dropout, use_avg=m.use_avg, moving_avg=m.moving_avg,
                           enc_in=splits.info["enc_in"], conv1d=m.conv1d, out_channels=m.out_channels)
    configs = yaml.safe_load((official / "configs" / "SymTime_base.yaml").read_text())
    configs.update(time_layers=m.n_layers, d_model=m.d_model, n_heads=m.n_heads, d_ff=m.d_ff, norm=m.norm,
                   dropout=m.dropout, attn_dropout=m.attn_dropout, act=m.activation)
    torch.manual_seed(rc.seed)
    model = OfficialSymTime(args, configs).to(device.torch_device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=rc.trainer.lr)
    criterion = torch.nn.MSELoss()
    trainer = Trainer(rc.trainer, device, Path(tempfile.mkdtemp()), rc.seed, {})
    batches = endless(trainer.loader(splits.train, train=True))

    def step() -> float:
        batch = {k: v.to(device.torch_device) for k, v in next(batches).items()}
        synchronize(device)
        started = time.perf_counter()
        optimizer.zero_grad()
        loss = criterion(model(batch["x"]), batch["y"])
        loss.item()  # the official loop reads every loss
        loss.backward()
        optimizer.step()
        synchronize(device)
        return time.perf_counter() - started

    for _ in range(rc.bench.warmup):
        step()
    seconds = [step() for _ in range(rc.bench.steps)]
    size = rc.trainer.batch_size
    encoder.unlink()
    out.write_text(json.dumps({"step_seconds": statistics.median(seconds), "all_step_seconds": seconds,
                               "train_samples_per_second": size / statistics.median(seconds),
                               "threads": torch.get_num_threads(), "torch": torch.__version__,
                               "allocator": os.environ.get("SYMTIME_REPRO_ALLOCATOR", "system")}))


# -- the driver ---------------------------------------------------------------------------------
def run_ours(overrides: list[str], run_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "symtime_repro.bench", *overrides, f"hydra.run.dir={run_dir}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"our bench failed ({shlex.join(cmd)}):\n{done.stderr[-3000:]}")
    return json.loads((run_dir / "bench.json").read_text())


def run_official(official: Path, overrides: list[str], out: Path, allocator: str) -> dict:
    env = {**os.environ, "SYMTIME_REPRO_ALLOCATOR": "system"}
    env.pop("LD_PRELOAD", None)
    if allocator == "mimalloc":
        from symtime_repro.allocator import mimalloc_env, mimalloc_library

        library = mimalloc_library()
        if library is None:
            raise SystemExit("--official-allocator mimalloc: cmeel-mimalloc is not installed")
        env = mimalloc_env(library, env)  # with our runs' mimalloc settings
    cmd = [sys.executable, __file__, "--worker", "--official", str(official), "--out", str(out), "--", *overrides]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the official worker failed ({shlex.join(cmd)}):\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="a clone of wwhenxuan/SymTime")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--ours", action="append", default=None,
                        help="overrides for our side only (e.g. 'device.amp=true'); repeat for several variants")
    parser.add_argument("--official-allocator", choices=("system", "mimalloc"), default="system")
    parser.add_argument("--out", type=Path, default=None, help="JSON with every pair (default: print only)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="runner overrides for both sides (after --)")
    a = parser.parse_args()
    if not (a.official / "models" / "finetune_model.py").is_file():
        raise SystemExit(f"--official {a.official}: no models/finetune_model.py there; give a clone of "
                         f"https://github.com/wwhenxuan/SymTime")
    overrides = a.overrides or DEFAULT
    if a.worker:
        official_worker(a.official.resolve(), overrides, a.out)
        return
    from symtime_repro.compare_frameworks import cpu_model

    variants = a.ours or [""]
    scratch = Path(tempfile.mkdtemp(prefix="bench_official_"))
    pairs = []
    for i in range(a.pairs):
        row = {"ours": {}}
        for j, variant in enumerate(variants):
            before = load()
            ours = run_ours([*overrides, *shlex.split(variant)], scratch / f"ours_{i}_{j}")
            row["ours"][variant] = {"samples_per_second": ours["train_samples_per_second"], "mfu": ours.get("mfu"),
                                    "load_before": before, "threads": ours.get("threads"),
                                    "allocator": ours.get("allocator"), "precision": ours.get("precision")}
        before = load()
        theirs = run_official(a.official.resolve(), overrides, scratch / f"official_{i}.json", a.official_allocator)
        row["official"] = {"samples_per_second": theirs["train_samples_per_second"], "load_before": before,
                           "threads": theirs["threads"], "allocator": theirs["allocator"]}
        for variant, ours in row["ours"].items():
            ours["ratio"] = ours["samples_per_second"] / theirs["train_samples_per_second"]
        pairs.append(row)
        shown = "; ".join(f"ours{' ' + v if v else ''} {o['samples_per_second']:.3f} samples/s (MFU "
                          f"{100 * (o['mfu'] or 0):.1f} %, load {o['load_before']:.2f}) = {o['ratio']:.2f}x"
                          for v, o in row["ours"].items())
        print(f"pair {i + 1}: official {theirs['train_samples_per_second']:.3f} samples/s (load {before:.2f}); "
              f"{shown}", flush=True)
    summary = {"cpu": cpu_model(), "overrides": overrides, "pairs": pairs, "ratios": {}}
    for variant in variants:
        ratios = [row["ours"][variant]["ratio"] for row in pairs]
        summary["ratios"][variant or "default"] = {"median": statistics.median(ratios), "lowest": min(ratios)}
        print(f"{summary['cpu']}, ours{' ' + variant if variant else ''} vs official: median "
              f"{statistics.median(ratios):.2f}x, lowest {min(ratios):.2f}x over {len(pairs)} pairs")
    if a.out:
        a.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
