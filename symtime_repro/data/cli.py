"""``python -m symtime_repro.data <command> [--root DATA_ROOT]``: get the data, and know what you have.

    list (status)   every dataset by task: present / partial / missing / corrupt, size, location
    download NAME…  fetch datasets (or --task T, --all) from the published sources, verified
    import PATH     place the files of a folder or zip you already have, in any published layout
    verify [NAME…]  sha256 of every present file against the catalog
    generate s2     series-symbol pairs for pre-training, from the official generator (resumable)
    table           the catalog as a Markdown table (docs/data.md's)

Exit status: 0 when the command did what was asked, 1 when a download failed or ``verify`` found a
damaged file, 2 for a usage error (one ``error:`` line, as the runner's own CLI).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

from ..errors import EXIT_USER_ERROR, UserError
from . import catalog, fetch, fetch_command, importer, inventory
from .catalog import Dataset

log = logging.getLogger("symtime_repro.data")
EXIT_FAILED = 1  # a download failed, verify found a damaged file, an import placed nothing
EXIT_USAGE = EXIT_USER_ERROR


def _size(n: Optional[int]) -> str:
    if not n:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return "-"


def _select(names: Sequence[str], task: Optional[str], everything: bool, command: str) -> list[Dataset]:
    if everything:
        return list(catalog.DATASETS.values())
    if task:
        if task not in catalog.tasks():
            raise UserError(f"--task {task} is not a task; choose one of: {', '.join(catalog.tasks())}")
        return [d for d in catalog.DATASETS.values() if task in d.tasks]
    if not names:
        if command == "download":
            raise UserError("download needs dataset names, --task T or --all; see: python -m symtime_repro.data list")
        return list(catalog.DATASETS.values())
    chosen = []
    for name in names:
        dataset = catalog.find_dataset(name)
        if dataset is None:
            raise UserError(f"unknown dataset {name!r}; known: {', '.join(catalog.DATASETS)}")
        chosen.append(dataset)
    return chosen


def _m4_detail(statuses: list[inventory.FileStatus]) -> str:
    """Which M4 patterns a run can use now."""
    by_pattern: dict[str, list[str]] = {}
    for status in statuses:
        if status.entry.part:
            by_pattern.setdefault(status.entry.part, []).append(status.state)
    ready = [p for p, states in by_pattern.items() if all(s not in (inventory.MISSING, *inventory.BAD) for s in states)]
    return f"patterns present: {', '.join(ready) if ready else 'none'}"


def describe_generated(dataset: Dataset, root: Path, verify: bool = False) -> dict:
    """A generated dataset (the S2 cache): its manifest says what is there."""
    from . import s2

    relative = dataset.files[0].path
    cache = root / relative.rsplit("/", 1)[0]
    state, detail = s2.describe_cache(cache, verify)
    size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) if cache.is_dir() else 0
    notes = [detail] if detail else []
    if state in ("missing", "corrupt") or not verify:
        notes.append(f"generated, not downloaded: {s2.generate_command(root, 'N', cache.name)}")
    return {"dataset": dataset.name, "tasks": list(dataset.tasks), "status": "present" if state == "ok" else state,
            "bytes": size, "location": cache.name + "/", "kind": "generated",
            "files": {relative: {"state": state, "detail": detail, "bytes": size}}, "notes": notes}


def describe(dataset: Dataset, statuses: list[inventory.FileStatus], root: Path) -> dict:
    if dataset.generated:
        return describe_generated(dataset, root)
    state = inventory.dataset_state(statuses)
    notes = [f"{s.entry.path}: {s.detail}" for s in statuses if s.state in inventory.BAD]
    slices = [s for s in statuses if s.state == inventory.SLICE]
    if slices:
        notes.append(f"{len(slices)} file(s) are deliberate slices of the published files ({inventory.MANIFEST})")
    if dataset.name == "M4" and state != "missing":
        notes.insert(0, _m4_detail(statuses))
    missing = [s.entry.path for s in statuses if s.state == inventory.MISSING and not s.entry.optional]
    if state == "partial":
        notes.append(f"missing: {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}")
    if state in ("missing", "partial"):
        for archive in inventory.archives_for(root, dataset):
            notes.append(f"{archive} is there, not unpacked: python -m symtime_repro.data import {archive} "
                         f"--root {root}")
    folders = sorted({s.entry.path.rsplit('/', 1)[0] + "/" for s in statuses})
    return {
        "dataset": dataset.name, "tasks": list(dataset.tasks), "status": state,
        "bytes": sum(s.size or 0 for s in statuses),
        "location": statuses[0].entry.path if len(statuses) == 1 else ", ".join(folders),
        "files": {s.entry.path: {"state": s.state, "detail": s.detail, "bytes": s.size} for s in statuses},
        "notes": notes,
    }


def cmd_list(args) -> int:
    root = Path(args.root)
    _require_root(root)
    rows = [describe(d, [] if d.generated else inventory.dataset_statuses(root, d), root)
            for d in _select(args.names, args.task, False, "list")]
    if args.json:
        print(json.dumps({"root": str(root.resolve()), "datasets": rows}, indent=2))
        return 0
    print(f"data root: {root.resolve()}")
    width = max(len(r["dataset"]) for r in rows)
    for task in [args.task] if args.task else catalog.tasks():  # a dataset shows under each task it serves
        print(f"\n{task}")
        for row in (r for r in rows if task in r["tasks"]):
            print(f"  {row['dataset']:<{width}}  {row['status']:<8} {_size(row['bytes']):>9}  {row['location']}")
            for note in row["notes"]:
                print(f"  {'':<{width}}  {'':<8} {'':>9}  - {note}")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("present", "partial", "missing", "corrupt")}
    print("\n" + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".  Get more: python -m symtime_repro.data "
          f"download NAME --root {args.root}  (or: import PATH)")
    return 0


def _require_root(root: Path) -> None:
    """A data root that is not there is a typo or a missing mount, never "0 files, all fine"."""
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise UserError(f"data root {root} {what}; pass the folder that holds the data (--root, the runner's "
                        f"data.root), or fill it first: python -m symtime_repro.data download NAME --root {root}")


def cmd_verify(args) -> int:
    root = Path(args.root)
    _require_root(root)
    rows, bad = [], 0
    chosen = _select(args.names, args.task, False, "verify")
    for dataset in chosen:
        if dataset.generated:
            row = describe_generated(dataset, root, verify=True)
            for path, status in row["files"].items():
                if status["state"] != "missing":
                    rows.append({"dataset": dataset.name, "file": path, "state": status["state"],
                                 "detail": status["detail"]})
                    bad += status["state"] == "corrupt"
            continue
        statuses = inventory.dataset_statuses(root, dataset, verify=True)
        for status in statuses:
            if status.state == inventory.MISSING:
                continue
            rows.append({"dataset": dataset.name, "file": status.entry.path, "state": status.state,
                         "detail": status.detail})
            bad += status.state in inventory.BAD
    if not rows:
        raise UserError(f"nothing to verify: no file of {', '.join(d.name for d in chosen) if len(chosen) < 6 else 'any dataset'} "
                        f"is in {root}; check --root, or see what is there: python -m symtime_repro.data list --root {root}")
    if args.json:
        print(json.dumps({"root": str(root.resolve()), "files": rows, "bad": bad}, indent=2))
    else:
        print(f"data root: {root.resolve()}")
        width = max((len(r["file"]) for r in rows), default=10)
        for row in rows:
            print(f"  {row['state']:<10} {row['file']:<{width}}  {row['detail']}")
        print(f"\n{len(rows)} files checked: {sum(r['state'] == 'ok' for r in rows)} ok, "
              f"{sum(r['state'] == 'slice' for r in rows)} slices, "
              f"{sum(r['state'] == 'unverified' for r in rows)} unverified (no published hash), {bad} bad.")
    return EXIT_FAILED if bad else 0


def catalog_table() -> str:
    """The catalog as docs/data.md's Markdown table (a test keeps the page equal to it)."""
    lines = ["| dataset | task | size | sources, in the order tried | licence |", "|---|---|---|---|---|"]
    for d in catalog.DATASETS.values():
        known = [f.size for f in d.required]
        size = d.shape + (f"; {_size(sum(known))}" if all(known) else "")
        sources = "generated: `python -m symtime_repro.data generate s2`" if d.generated else ", ".join(d.sources)
        lines.append(f"| {d.name} | {', '.join(d.tasks)} | {size} | {sources} | {d.license} |")
    lines += ["", "| source | what | where |", "|---|---|---|"]
    lines += [f"| {s.name} | {s.description} | {s.page()} |" for s in catalog.SOURCES.values()]
    return "\n".join(lines)


def cmd_table(args) -> int:
    print(catalog_table())
    return 0


def build_m4_caches(root: Path) -> list[str]:
    """Parse every complete M4 pattern once, so the first short-term run starts at once."""
    # The one reader these commands use: imported here, not at the top, so that list, import and
    # verify never load it (it needs numpy only, never torch).
    from ..datasets import m4

    lines = []
    for pattern in m4.PATTERNS:
        if all((root / f"m4/{pattern}-{part}.csv").is_file() for part in ("train", "test")):
            try:
                split = m4.load(root, pattern)
                if (root / "m4" / m4.NAIVE2_FILE).is_file():
                    m4.naive2(root, pattern, split.ids)
                lines.append(f"M4 {pattern}: cache ready ({len(split)} series)")
            except UserError as exc:
                lines.append(f"M4 {pattern}: cache not built: {exc}")
    return lines


def _import_zip(archive: Path, root: Path) -> list[str]:
    report = importer.import_path(archive, root)
    return [dest for _, dest in report.placed]


def cmd_download(args) -> int:
    root = Path(args.root)
    transfer = fetch.Transfer(retries=args.retries, quiet=args.quiet, cookies=args.cookies,
                              refresh_listings=args.refresh)
    datasets = _select(args.names, args.task, args.all, "download")
    generated = [d for d in datasets if d.generated]
    if generated and len(generated) == len(datasets):
        raise UserError(f"{', '.join(d.name for d in generated)} is generated, not downloaded: "
                        f"{'; '.join(fetch_command(d.name, root) for d in generated)}")
    for dataset in generated:
        print(f"{dataset.name}: generated, not downloaded (skipped): {fetch_command(dataset.name, root)}")
    datasets = [d for d in datasets if not d.generated]
    incomplete = []
    given_up: dict[str, str] = {}  # sources that failed as a whole are not asked again in this command
    for dataset in datasets:
        sources = fetch.sources_for(dataset, args.source, args.mirror)
        manifest = inventory.read_manifest(root)
        states = {e.path: inventory.quick_status(root, e, manifest).state for e in dataset.files}

        def is_present(entry, states=states):
            return states[entry.path] in (inventory.PRESENT, inventory.SLICE)

        report = fetch.download_dataset(dataset, root, sources, transfer, _import_zip, args.force, is_present,
                                        given_up)
        for outcome in report.files:
            if outcome.state == "placed":
                print(f"  placed   {outcome.entry.path}  (from {outcome.detail})")
            elif outcome.state == "present" and states[outcome.entry.path] == inventory.SLICE:
                print(f"  kept     {outcome.entry.path}: a shipped slice of the published file; --force replaces it")
            elif outcome.state == "failed" and not outcome.entry.optional:
                fresh = [r for r in outcome.detail.splitlines() if "not asked again" not in r]
                if not fresh:
                    print(f"  FAILED   {outcome.entry.path}: its sources failed above")
                    continue
                print(f"  FAILED   {outcome.entry.path}:")
                for reason in fresh:
                    print(f"             - {reason}")
        if report.ok:
            print(f"{dataset.name}: ready")
        else:
            incomplete.append(dataset.name)
            note = f" {dataset.note}." if dataset.note else ""
            print(f"{dataset.name}: incomplete.{note} With a copy you already have: python -m symtime_repro.data "
                  f"import <folder or zip> --root {args.root}")
    if any(d.name == "M4" for d in datasets):
        for line in build_m4_caches(root):
            print(line)
    print(f"{len(datasets) - len(incomplete)} of {len(datasets)} dataset(s) ready under {root}"
          + (f"; incomplete: {', '.join(incomplete)}" if incomplete else ""))
    return EXIT_FAILED if incomplete else 0


def cmd_import(args) -> int:
    root = Path(args.root)
    root_existed = root.exists()
    report = importer.import_path(Path(args.path), root, overwrite=args.overwrite, allow_mismatch=args.allow_mismatch)
    for found, dest in report.placed:
        print(f"  placed   {dest}  <- {found}")
    for found, dest in report.present:
        print(f"  present  {dest}  (identical to {found})")
    for found, why in report.skipped:
        print(f"  skipped  {found}: {why}")
    if report.junk:
        print(f"  ignored  {report.junk} macOS/Windows metadata entries (__MACOSX/, ._*, .DS_Store)")
    for line in build_m4_caches(root) if any(d.startswith("m4/") for _, d in report.placed) else []:
        print(line)
    if not report.placed and not report.present:
        if not root_existed:
            with contextlib.suppress(OSError):
                root.rmdir()  # created for this import, and still empty
        print(f"error: import: nothing placed from {args.path}: {len(report.skipped)} file(s) looked at, each skipped "
              f"for the reason listed above; give the folder or zip that holds the data (python -m "
              f"symtime_repro.data table lists the datasets)", file=sys.stderr)
        return EXIT_FAILED
    print(f"{len(report.placed)} placed, {len(report.present)} already present, {len(report.skipped)} skipped. "
          f"Now: python -m symtime_repro.data list --root {args.root}")
    return 0


def cmd_generate(args) -> int:
    from . import s2

    settings = s2.Settings(length=args.length, max_input_dim=args.max_input_dim, max_output_dim=args.max_output_dim,
                           seed_start=args.seed_start, chunk_seeds=args.chunk_seeds)
    workers = args.workers if args.workers is not None else s2.usable_cpus()

    def stop(signum, frame):  # SIGTERM (a scheduler, `kill`) stops as Ctrl-C does: the pool first
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
    try:
        outcome = s2.generate(Path(args.root), args.samples, settings, workers=workers, path=args.path,
                              progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"interrupted; the finished chunks are kept in {Path(args.root) / args.path / s2.SHARDS} (no "
              f"shard is half-written) and the same command resumes from them", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for line in s2.summary(outcome):
        print(line)
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default="data", help="data root (the runner's data.root; default: data)")
    top = argparse.ArgumentParser(prog="python -m symtime_repro.data", description=__doc__.split("\n\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", metavar="{list,status,download,import,verify,generate,table}")
    for name in ("list", "status"):
        p = sub.add_parser(name, parents=[common], help="what is present, missing or damaged")
        p.add_argument("names", nargs="*", help="datasets (default: all)")
        p.add_argument("--task", help="only this task's datasets")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=cmd_list)
    p = sub.add_parser("download", parents=[common], help="fetch datasets from their published sources")
    p.add_argument("names", nargs="*", help="datasets to fetch (see list)")
    p.add_argument("--task", help="every dataset of this task")
    p.add_argument("--all", action="store_true", help="every dataset")
    p.add_argument("--source", action="append", help=f"only this source (repeatable): {', '.join(catalog.SOURCES)}, mirror")
    p.add_argument("--mirror", help="a server holding the TSLib layout (<URL>/ETT-small/ETTh1.csv …), tried first")
    p.add_argument("--retries", type=int, default=3, help="retries per file (a broken transfer resumes)")
    p.add_argument("--cookies", help="Netscape cookies.txt for Google Drive (helps against its download limit)")
    p.add_argument("--force", action="store_true", help="fetch again even if present")
    p.add_argument("--refresh", action="store_true", help="list Google Drive folders again (they are cached in "
                                                          "<root>/.downloads)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_download)
    p = sub.add_parser("import", parents=[common], help="place data from a folder or zip you already have")
    p.add_argument("path", help="folder or .zip (any layout: TSLib dataset/, SymTime datasets/, flat, nested zips)")
    p.add_argument("--overwrite", action="store_true", help="replace files in the root that differ")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="place files whose sha256 differs from the published one (recorded as such)")
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("generate", parents=[common], help="generate a dataset that is made, not downloaded "
                                                          "(s2: series-symbol pairs for pre-training)")
    p.add_argument("what", choices=["s2"], help="s2: the S2 cache, <root>/S2 (conf/dataset/S2.yaml)")
    p.add_argument("--samples", type=int, required=True,
                   help="series-symbol pairs wanted (one response channel and its expression each)")
    p.add_argument("--path", default="S2", help="the cache folder under --root (the run's dataset.path; default: S2)")
    p.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--length", type=int, default=256, help="steps per series (default 256)")
    p.add_argument("--max-input-dim", type=int, default=2, help="excitation channels 1..this (default 2; official 6)")
    p.add_argument("--max-output-dim", type=int, default=2, help="response channels 1..this (default 2; official 6)")
    p.add_argument("--workers", type=int, help="processes (default: the usable CPUs)")
    p.add_argument("--chunk-seeds", type=int, default=16, help="seeds per shard file (default 16)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("table", help="the catalog as a Markdown table (datasets, tasks, sizes, sources, licences)")
    p.set_defaults(func=cmd_table)
    p = sub.add_parser("verify", parents=[common], help="sha256 of every present file against the catalog")
    p.add_argument("names", nargs="*", help="datasets (default: all)")
    p.add_argument("--task", help="only this task's datasets")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_verify)
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = parser().parse_args(argv)
    if not getattr(args, "func", None):
        parser().print_help()
        return EXIT_USAGE
    if getattr(args, "retries", 0) < 0:
        print("error: --retries must be 0 or more", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; partial downloads are kept in <root>/.downloads and resume on the next run",
              file=sys.stderr)
        return 130
