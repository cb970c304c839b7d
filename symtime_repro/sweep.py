"""What the per-task scripts in ``scripts/`` sweep over: the official presets of a task.

    python -m symtime_repro.sweep presets --task long_term [--datasets ETTh1,ETTh2] [--present-only --root data]
    python -m symtime_repro.sweep quick-overrides

``presets`` prints the task's ``experiment=`` names, comma-separated, ready for one Hydra multirun
(``-m experiment=<list>``); ``--present-only`` keeps those whose data is in the root (``--quick``
smoke runs on the shipped slices). ``quick-overrides`` prints the overrides that shrink every run
to seconds on a CPU: the same real pipeline, a tiny model and a few batches.
"""

from __future__ import annotations

import argparse
import re
import importlib.resources
import sys
from pathlib import Path
from typing import Optional, Sequence

import yaml

from .errors import EXIT_USER_ERROR, UserError



def _conf_dir() -> Path:
    """conf/, wherever the install put it (pyproject maps it to the package symtime_repro.conf)."""
    try:
        return Path(str(importlib.resources.files("symtime_repro.conf")))
    except ModuleNotFoundError:  # a source checkout that was never installed
        return Path(__file__).resolve().parents[1] / "conf"


CONF = _conf_dir()

# Smoke-sized runs: every preset's real data path and protocol, the tiny model (conf/model/symtime_tiny.yaml)
# with one fine-tuning layer (presets and tasks ask for up to 6, more than it has), one epoch of two batches.
# Numbers from such runs check the plumbing, not the paper.
QUICK_OVERRIDES = (
    "model=symtime_tiny", "model.forward_layers=1", "trainer.epochs=1", "trainer.limit_train_batches=2",
    "trainer.limit_eval_batches=2", "trainer.progress=false",
)
NOT_OFFICIAL = {"quickstart"}  # presets in conf/experiment/ that are not official runs


def preset_dataset(path: Path) -> tuple[str, Optional[str]]:
    """(dataset name, M4 seasonal pattern or None) a preset YAML selects."""
    text = yaml.safe_load(path.read_text()) or {}
    dataset = None
    for entry in text.get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key.replace("override", "").strip().lstrip("/") == "dataset":
                    dataset = value
    pattern = (text.get("dataset") or {}).get("seasonal_pattern")
    if dataset is None:
        raise UserError(f"{path} does not choose a dataset (defaults: - override /dataset: <Name>)")
    return dataset, pattern


def presets(task: str, datasets: Optional[Sequence[str]] = None, present_in: Optional[Path] = None) -> list[str]:
    """The official ``experiment=`` names of ``task``, optionally only some datasets / data present."""
    folder = CONF / "experiment" / task
    if not folder.is_dir():
        known = sorted(p.name for p in (CONF / "experiment").iterdir() if p.is_dir())
        raise UserError(f"no presets for task {task!r}; tasks with presets: {', '.join(known)}")
    wanted = {d.lower() for d in datasets} if datasets else None
    chosen = []
    for path in sorted(folder.glob("*.yaml"), key=_natural):
        if path.stem in NOT_OFFICIAL:
            continue
        dataset, pattern = preset_dataset(path)
        if wanted is not None and dataset.lower() not in wanted and path.stem.lower() not in wanted:
            continue
        if present_in is not None and not _data_present(dataset, pattern, present_in):
            continue
        chosen.append(f"{task}/{path.stem}")
    if datasets and wanted is not None:
        found = set()
        for name in chosen:
            stem = name.split("/")[1]
            found |= {stem.lower(), preset_dataset(folder / f"{stem}.yaml")[0].lower()}
        missing = sorted(wanted - found)
        if missing and present_in is None:
            raise UserError(f"no {task} preset for dataset(s) {', '.join(missing)}")
    return chosen


def _natural(path: Path) -> list:
    """ETTh1_96 before ETTh1_192; 0.125 before 0.5."""
    return [float(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+(?:\.\d+)?)", path.stem))]


def _data_present(dataset: str, pattern: Optional[str], root: Path) -> bool:
    from .data.catalog import find_dataset
    from .data.inventory import BAD, MISSING, quick_status, read_manifest

    entry = find_dataset(dataset)
    if entry is None:
        return False
    manifest = read_manifest(root)
    files = [f for f in entry.required if not f.part or f.part == pattern]
    return all(quick_status(root, f, manifest).state not in (MISSING, *BAD) for f in files)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m symtime_repro.sweep", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("presets", help="the official experiment= names of a task, comma-separated")
    p.add_argument("--task", required=True)
    p.add_argument("--datasets", help="comma-separated dataset or preset names, e.g. ETTh1 or M4_Hourly (default: all)")
    p.add_argument("--present-only", action="store_true", help="only presets whose data is in --root")
    p.add_argument("--root", default="data")
    sub.add_parser("quick-overrides", help="overrides that shrink each run to a smoke test")
    args = parser.parse_args(argv)
    try:
        if args.command == "quick-overrides":
            print(" ".join(QUICK_OVERRIDES))
            return 0
        datasets = [d for d in (args.datasets or "").split(",") if d]
        names = presets(args.task, datasets or None, Path(args.root) if args.present_only else None)
        if not names:
            where = f" with data in {args.root}" if args.present_only else ""
            raise UserError(f"no {args.task} preset{where}"
                            + (f" for {args.datasets}" if args.datasets else "")
                            + "; see python -m symtime_repro.data list")
        print(",".join(names))
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
