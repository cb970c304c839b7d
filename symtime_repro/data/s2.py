"""The S2 cache: series-symbol pairs from the official generator (``s2generator``), made once on CPUs.

``python -m symtime_repro.data generate s2 --samples N --root DATA_ROOT`` fills ``<root>/S2/``:

    manifest.json                     what the cache holds (settings, counts, shards + sha256, fingerprint)
    shards/seeds_000000-000015.npz    one chunk of seeds: series float32 [n, length], expression [n],
                                      seed int64 [n], dims int64 [n, 3] (input dim, output dim, channel),
                                      counts int64 [7], settings (json), errors (json)

A pair is one response channel of one generator call and its own expression (``str(symbol)`` joins
the expressions of a multi-output call with `` | ``). Seeds run from ``--seed-start`` in chunks of
``--chunk-seeds``; each seed, as in the official script (SymTime data_provider/s2generator_main.py),
uses one ``RandomState(seed)`` across all (input dim, output dim) combinations in ascending order.
Chunks are taken in ascending seed order until at least N pairs are kept, so the cache is the same
for a seed start and settings whatever the number of workers; the shards are written byte for byte
the same (fixed zip timestamps), so the fingerprint is too.

s2generator draws from more than the RandomState it is given (checked in 0.0.23, see docs/s2_data.md):

* numpy's global RNG: KernelSynth's binary operator choice (``np.random.choice``) and its Gaussian
  process draw (scikit-learn ``sample_y(random_state=None)``), ForecastPFN's start date
  (``scipy.stats.beta.rvs``), the mixed distribution's rotation (``special_ortho_group.rvs``);
  pinned with ``np.random.seed(seed)`` before each seed's calls;
* the clock: ForecastPFN dates series up to *today* (``SeriesParams(end_time=None)``); pinned to
  :data:`EXCITATION_END_DATE`;
* the Generator object itself (cached kernel banks, frequency components): a fresh one per seed.

This module never imports torch; s2generator (and its pandas/scipy/scikit-learn) is imported inside
the functions that generate, so ``list`` and ``--help`` stay fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import queue
import shlex
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import UserError
from ..files import atomic_write_bytes, write_json

log = logging.getLogger("symtime_repro.data")

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARDS = "shards"
DEFAULT_PATH = "S2"  # conf/dataset/S2.yaml's path
S2GENERATOR_VERSION = "0.0.23"  # the version pyproject's pretrain extra pins
EXCITATION_END_DATE = "2025-01-01"  # ForecastPFN's last date; s2generator's default is today's date
INSTALL_HINT = "pip install -e '.[pretrain]'"
CONSTANT_STD = 1e-6  # a channel whose std is below this (relative to 1 + |mean|) carries no shape
COUNT_KEYS = ("calls", "failures", "exceptions", "kept", "dropped_nonfinite", "dropped_constant", "channels")
FLAGS = {"length": "--length", "max_input_dim": "--max-input-dim", "max_output_dim": "--max-output-dim",
         "seed_start": "--seed-start", "chunk_seeds": "--chunk-seeds"}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: the same chunk gives the same bytes


def generate_command(root: str | Path, samples: int | str = "N", path: str = DEFAULT_PATH) -> str:
    where = "" if path == DEFAULT_PATH else f" --path {shlex.quote(path)}"
    return f"python -m symtime_repro.data generate s2 --samples {samples} --root {shlex.quote(str(root))}{where}"


# --- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What decides the pairs: a cache holds pairs of one setting only."""

    length: int = 256
    max_input_dim: int = 2
    max_output_dim: int = 2
    seed_start: int = 0
    chunk_seeds: int = 16

    def as_dict(self) -> dict[str, Any]:
        return {"length": self.length, "max_input_dim": self.max_input_dim, "max_output_dim": self.max_output_dim,
                "seed_start": self.seed_start, "chunk_seeds": self.chunk_seeds,
                "excitation_end_date": EXCITATION_END_DATE, "s2generator": installed_version(),
                "format_version": FORMAT_VERSION}

    def check(self) -> None:
        for key, low in (("length", 16), ("max_input_dim", 1), ("max_output_dim", 1), ("chunk_seeds", 1)):
            if getattr(self, key) < low:
                raise UserError(f"{FLAGS[key]} must be at least {low}, got {getattr(self, key)}")
        if self.seed_start < 0:
            raise UserError(f"--seed-start must be 0 or more, got {self.seed_start}")

    def chunk_seeds_of(self, index: int) -> tuple[int, int]:
        first = self.seed_start + index * self.chunk_seeds
        return first, first + self.chunk_seeds - 1

    def combinations(self) -> list[tuple[int, int]]:
        return [(i, o) for i in range(1, self.max_input_dim + 1) for o in range(1, self.max_output_dim + 1)]


def shard_name(first: int, last: int) -> str:
    return f"{SHARDS}/seeds_{first:06d}-{last:06d}.npz"


def installed_version() -> str:
    """s2generator's version, or a UserError saying how to install it."""
    import importlib.metadata

    try:
        return importlib.metadata.version("s2generator")
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"generate s2 needs the s2generator package, which is not installed: {INSTALL_HINT}") from None


def differing_setting(recorded: dict[str, Any], wanted: dict[str, Any]) -> Optional[str]:
    """The first setting in which ``recorded`` differs from ``wanted``, worded for the user, or None."""
    for key, value in wanted.items():
        if key in recorded and recorded[key] != value or key not in recorded:
            old = recorded.get(key, "nothing")
            if key in FLAGS:
                return f"{FLAGS[key]} {old} (this command asks for {value})"
            if key == "s2generator":
                return f"s2generator {old} (installed: {value})"
            return f"{key} {old} (this version of symtime-repro uses {value})"
    return None


# --- one chunk of seeds -------------------------------------------------------------------------


def _call_generator(generator, rng: np.random.RandomState, length: int, input_dim: int, output_dim: int):
    """One call of the official generator: (symbol, excitation [L, i], response [L, o]) or Nones.
    Tests replace this function to inject faults."""
    return generator.run(rng, seq_length=length, input_dimension=input_dim, output_dimension=output_dim)


def _new_generator():
    try:
        from s2generator.symbol import Generator
        from s2generator.symbol.params import SeriesParams
    except ImportError:
        raise UserError(f"generate s2 needs the s2generator package, which is not installed: {INSTALL_HINT}") from None
    return Generator(series_params=SeriesParams(end_time=EXCITATION_END_DATE))


def channel_problem(values: np.ndarray) -> Optional[str]:
    """``"nonfinite"`` or ``"constant"`` for a response channel (already float32) that is no use, else None."""
    if not np.isfinite(values).all():
        return "nonfinite"
    wide = values.astype(np.float64)
    if wide.std() < CONSTANT_STD * (1.0 + abs(wide.mean())):
        return "constant"
    return None


def generate_chunk(first_seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    """Every seed of one chunk: the kept pairs (arrays) and the counts. Never raises for a generator
    fault: an exception inside one call counts as a failure of that call."""
    length, combos = settings["length"], Settings(**{k: settings[k] for k in FLAGS}).combinations()
    series, expressions, seeds, dims = [], [], [], []
    counts = dict.fromkeys(COUNT_KEYS, 0)
    errors: dict[str, int] = {}
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(1)  # the same BLAS path (and bits) in one process or in K workers
    except ImportError:
        limits = contextlib.nullcontext()
    with limits, np.errstate(all="ignore"), warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):  # the package prints ("Error caught: …")
        warnings.simplefilter("ignore")
        for seed in range(first_seed, first_seed + settings["chunk_seeds"]):
            generator = _new_generator()  # no state carried from another seed
            rng = np.random.RandomState(seed)
            np.random.seed(seed)  # the package's draws from numpy's global RNG
            for input_dim, output_dim in combos:
                counts["calls"] += 1
                try:
                    symbol, _, response = _call_generator(generator, rng, length, input_dim, output_dim)
                except Exception as exc:  # noqa: BLE001 - any fault of one call is that call's failure
                    counts["failures"] += 1
                    counts["exceptions"] += 1
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                if symbol is None or response is None:
                    counts["failures"] += 1
                    continue
                response = np.asarray(response)
                parts = str(symbol).split(" | ")
                if response.ndim != 2 or response.shape != (length, output_dim) or len(parts) != output_dim:
                    counts["failures"] += 1
                    errors["ShapeMismatch"] = errors.get("ShapeMismatch", 0) + 1
                    continue
                for channel in range(output_dim):
                    counts["channels"] += 1
                    values = response[:, channel].astype(np.float32)
                    problem = channel_problem(values)
                    if problem:
                        counts[f"dropped_{problem}"] += 1
                        continue
                    counts["kept"] += 1
                    series.append(values)
                    expressions.append(parts[channel].strip())
                    seeds.append(seed)
                    dims.append((input_dim, output_dim, channel))
    return {"first_seed": first_seed,
            "series": np.stack(series) if series else np.zeros((0, length), np.float32),
            "expression": np.array(expressions, dtype=str) if expressions else np.zeros(0, dtype="<U1"),
            "seed": np.array(seeds, dtype=np.int64),
            "dims": np.array(dims, dtype=np.int64).reshape(-1, 3),
            "counts": counts, "errors": errors}


def _worker_start() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's: it stops the pool


# --- shard files --------------------------------------------------------------------------------


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (np.load reads it) whose bytes depend on the arrays only (np.savez stamps the time)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def shard_arrays(result: dict[str, Any], settings: dict[str, Any]) -> dict[str, np.ndarray]:
    return {"series": result["series"], "expression": result["expression"], "seed": result["seed"],
            "dims": result["dims"], "counts": np.array([result["counts"][k] for k in COUNT_KEYS], dtype=np.int64),
            "settings": np.array(json.dumps(settings, sort_keys=True)),
            "errors": np.array(json.dumps(result["errors"], sort_keys=True))}


@dataclass
class ShardInfo:
    file: str  # relative to the cache folder
    first_seed: int
    last_seed: int
    sha256: str
    counts: dict[str, int]
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return self.counts["kept"]

    def record(self) -> dict[str, Any]:
        return {"file": self.file, "seeds": [self.first_seed, self.last_seed], "pairs": self.pairs,
                "sha256": self.sha256, "counts": self.counts, **({"errors": self.errors} if self.errors else {})}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_shard_header(path: Path) -> tuple[dict[str, Any], dict[str, int], dict[str, int], bytes]:
    """(settings, counts, errors, file bytes) of a shard; raises ValueError when it is not one."""
    data = path.read_bytes()
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            settings = json.loads(str(stored["settings"]))
            counts = dict(zip(COUNT_KEYS, (int(v) for v in stored["counts"])))
            errors = json.loads(str(stored["errors"]))
            for key in ("series", "expression", "seed", "dims"):
                stored[key]  # noqa: B018 - every member must decompress
    except Exception as exc:  # noqa: BLE001 - zip, npy and json errors all mean "not a whole shard"
        raise ValueError(f"not a readable shard ({type(exc).__name__}: {exc})") from None
    return settings, counts, errors, data


def fingerprint(shards: list[dict[str, Any]]) -> str:
    """The cache's content in one hash: sha256 over the shards' sha256 in seed order."""
    return sha256_bytes("\n".join(s["sha256"] for s in shards).encode())


def read_manifest(cache: Path) -> Optional[dict[str, Any]]:
    """The manifest, or None if there is none; a UserError if it is there and unreadable."""
    path = cache / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or "settings" not in manifest or "shards" not in manifest:
            raise ValueError("not an S2 manifest (no settings or shards)")
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is damaged ({exc}); delete it and run the generate command again, which rebuilds it "
                        f"from the shards: {generate_command(cache.parent, 'N', cache.name)}") from None
    return manifest


def describe_cache(cache: Path, verify: bool = False) -> tuple[str, str]:
    """(state, detail) of a cache for ``list`` (the manifest) and ``verify`` (every shard's sha256):
    state is ``present``/``ok``, ``missing`` or ``corrupt``."""
    try:
        manifest = read_manifest(cache)
    except UserError as exc:
        return "corrupt", str(exc)
    if manifest is None:
        return "missing", ""
    s = manifest["settings"]
    what = (f"{manifest.get('pairs', '?')} pairs from seeds {manifest['seeds']['first']}-{manifest['seeds']['last']}, "
            f"length {s.get('length')}, dims up to {s.get('max_input_dim')} in x {s.get('max_output_dim')} out")
    if not verify:
        return "present", what
    for record in manifest["shards"]:
        path = cache / record["file"]
        if not path.is_file():
            return "corrupt", (f"{path} is missing; run the generate command again, which makes it anew: "
                               f"{generate_command(cache.parent, manifest.get('samples_requested', 'N'), cache.name)}")
        if sha256_bytes(path.read_bytes()) != record["sha256"]:
            return "corrupt", (f"{path} differs from the manifest's sha256; delete it and run the generate command "
                               f"again: {generate_command(cache.parent, manifest.get('samples_requested', 'N'), cache.name)}")
    return "ok", f"{what}; {len(manifest['shards'])} shards match the manifest's sha256"


# --- the command --------------------------------------------------------------------------------


@dataclass
class Outcome:
    cache: Path
    manifest: dict[str, Any]
    new_shards: int
    reused_shards: int
    spare_shards: int
    seconds: float
    calls_this_run: int


def _existing_shard(cache: Path, settings: Settings, index: int, recorded: dict[str, str]) -> Optional[ShardInfo]:
    first, last = settings.chunk_seeds_of(index)
    relative = shard_name(first, last)
    path = cache / relative
    if not path.is_file():
        return None
    try:
        stored_settings, counts, errors, data = read_shard_header(path)
    except (OSError, ValueError) as exc:
        log.warning(f"{path}: {exc}; generating it again")
        return None
    wanted = settings.as_dict()
    problem = differing_setting(stored_settings, wanted)
    if problem:
        raise UserError(f"{cache} holds shards generated with {problem}; generate into another folder "
                        f"(--path, and dataset.path= for the run) or delete {cache}")
    digest = sha256_bytes(data)
    if relative in recorded and recorded[relative] != digest:
        log.warning(f"{path}: sha256 {digest[:12]}… differs from the manifest's {recorded[relative][:12]}…; "
                    f"generating it again")
        return None
    return ShardInfo(relative, first, last, digest, counts, errors)


def _write_shard(cache: Path, settings: Settings, result: dict[str, Any]) -> ShardInfo:
    first = result["first_seed"]
    last = first + settings.chunk_seeds - 1
    relative = shard_name(first, last)
    data = npz_bytes(shard_arrays(result, settings.as_dict()))
    atomic_write_bytes(cache / relative, data)
    return ShardInfo(relative, first, last, sha256_bytes(data), result["counts"], result["errors"])


def build_manifest(cache: Path, settings: Settings, shards: list[ShardInfo], samples: int) -> dict[str, Any]:
    records = [s.record() for s in shards]
    counts = {k: sum(s.counts[k] for s in shards) for k in COUNT_KEYS}
    errors: dict[str, int] = {}
    for shard in shards:
        for name, n in shard.errors.items():
            errors[name] = errors.get(name, 0) + n
    values = settings.as_dict()
    return {
        "format": "symtime-repro S2 cache", "format_version": FORMAT_VERSION,
        "s2generator_version": values["s2generator"],
        "settings": values,
        "samples_requested": samples,
        "pairs": counts["kept"],
        "seeds": {"first": shards[0].first_seed, "last": shards[-1].last_seed,
                  "count": shards[-1].last_seed - shards[0].first_seed + 1},
        "counts": counts,
        "errors": errors,
        "pinned": {"numpy_global_rng": "np.random.seed(seed) before each seed's calls",
                   "excitation_end_date": EXCITATION_END_DATE, "generator": "a fresh Generator() per seed",
                   "blas_threads": 1},
        "shards": records,
        "fingerprint": fingerprint(records),
        "command": generate_command(cache.parent, samples, cache.name),
    }


def generate(root: Path, samples: int, settings: Settings, workers: int = 1, path: str = DEFAULT_PATH,
             progress: bool = True, start_method: str = "spawn") -> Outcome:
    """Fill ``root/path`` with at least ``samples`` pairs (resuming, extending); see the module doc."""
    settings.check()
    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    installed_version()
    cache = Path(root) / path
    if cache.exists() and not cache.is_dir():
        raise UserError(f"{cache} is a file; the S2 cache is a folder: choose another --path or --root")
    try:
        manifest = read_manifest(cache)
    except UserError as exc:
        log.warning(f"{exc}; rebuilding it from the shards")
        manifest = None
    wanted = settings.as_dict()
    if manifest is not None:
        problem = differing_setting(manifest["settings"], wanted)
        if problem:
            raise UserError(f"{cache} holds a cache generated with {problem}; generate into another folder "
                            f"(--path, and dataset.path= for the run) or delete {cache}")
        samples = max(samples, int(manifest.get("samples_requested", 0)))
    recorded = {s["file"]: s["sha256"] for s in (manifest or {}).get("shards", [])}

    start = time.perf_counter()
    results: dict[int, ShardInfo] = {}
    state = {"prefix": 0, "pairs": 0}
    reused = new = calls = 0

    def advance() -> None:
        while state["prefix"] in results and state["pairs"] < samples:
            state["pairs"] += results[state["prefix"]].pairs
            state["prefix"] += 1

    from tqdm import tqdm

    bar = tqdm(total=samples, unit="pair", desc="S2 pairs", disable=not progress or None, dynamic_ncols=True)
    totals = dict.fromkeys(COUNT_KEYS, 0)

    def show(info: ShardInfo) -> None:
        for key in COUNT_KEYS:
            totals[key] += info.counts[key]
        bar.update(info.pairs)
        bar.set_postfix(kept=totals["kept"], failures=totals["failures"],
                        dropped=totals["dropped_nonfinite"] + totals["dropped_constant"], refresh=False)

    pool = None
    done: "queue.Queue[tuple[str, Any]]" = queue.Queue()
    inflight: dict[int, Any] = {}
    next_index = 0
    try:
        if workers > 1:
            import multiprocessing

            pool = multiprocessing.get_context(start_method).Pool(workers, initializer=_worker_start)
        while True:
            advance()
            if state["pairs"] >= samples:
                break
            # Plan chunks in ascending order: a finished shard is taken as it is, the rest go to a worker.
            mean = max(totals["kept"] / max(len(results), 1), 1.0)
            while len(inflight) < workers:
                beyond = sum(r.pairs for i, r in results.items() if i >= state["prefix"])
                if inflight and state["pairs"] + beyond + len(inflight) * mean >= samples:
                    break  # what runs is expected to be enough: do not start more than needed
                index = next_index
                next_index += 1
                existing = _existing_shard(cache, settings, index, recorded)
                if existing is not None:
                    results[index] = existing
                    reused += 1
                    show(existing)
                    advance()
                    if state["pairs"] >= samples:
                        break
                    continue
                first, _ = settings.chunk_seeds_of(index)
                if pool is None:
                    result = generate_chunk(first, wanted)
                    done.put(("ok", (index, result)))
                    inflight[index] = None
                    break
                inflight[index] = pool.apply_async(
                    generate_chunk, (first, wanted),
                    callback=lambda result, index=index: done.put(("ok", (index, result))),
                    error_callback=lambda exc, index=index: done.put(("error", (index, exc))))
            if state["pairs"] >= samples:
                break
            if not inflight:
                continue
            while True:
                try:
                    kind, (index, payload) = done.get(timeout=0.5)  # a timeout lets Ctrl-C through
                    break
                except queue.Empty:
                    continue
            inflight.pop(index, None)
            if kind == "error":
                raise RuntimeError(f"generating seeds from {settings.chunk_seeds_of(index)[0]} failed: {payload!r}")
            info = _write_shard(cache, settings, payload)
            results[index] = info
            new += 1
            calls += info.counts["calls"]
            show(info)
            if calls >= 200 and totals["kept"] == 0:
                raise UserError(f"s2generator kept no pair in {calls} calls ({totals['failures']} failures, "
                                f"{totals['dropped_nonfinite']} non-finite and {totals['dropped_constant']} constant "
                                f"channels dropped); check the s2generator installation ({INSTALL_HINT})")
        # Chunks still running when enough pairs were kept finish as spare shards (a larger request uses them).
        if pool is not None:
            pool.close()
            while inflight:
                kind, (index, payload) = done.get()
                inflight.pop(index, None)
                if kind == "ok":
                    _write_shard(cache, settings, payload)
            pool.join()
            pool = None
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()  # Ctrl-C or an error: running chunks are dropped, no shard is half-written
            pool.join()
    shards = [results[i] for i in range(state["prefix"])]
    manifest = build_manifest(cache, settings, shards, samples)
    write_json(cache / MANIFEST, manifest)
    spare = sum(1 for p in (cache / SHARDS).glob("*.npz") if f"{SHARDS}/{p.name}" not in
                {s.file for s in shards})
    return Outcome(cache, manifest, new, reused, spare, time.perf_counter() - start, calls)


def usable_cpus() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


def summary(outcome: Outcome) -> list[str]:
    m = outcome.manifest
    c = m["counts"]
    calls = max(c["calls"], 1)
    channels = max(c["channels"], 1)
    lines = [f"S2 cache {outcome.cache}: {m['pairs']} pairs from seeds {m['seeds']['first']}-{m['seeds']['last']} "
             f"({len(m['shards'])} shards: {outcome.new_shards} new, {outcome.reused_shards} already there)",
             f"  {c['calls']} generator calls: {c['failures']} failed ({100 * c['failures'] / calls:.1f} %, "
             f"{c['exceptions']} by an exception); of {c['channels']} response channels "
             f"{c['dropped_nonfinite']} dropped as non-finite ({100 * c['dropped_nonfinite'] / channels:.1f} %), "
             f"{c['dropped_constant']} as constant ({100 * c['dropped_constant'] / channels:.1f} %)"]
    if outcome.calls_this_run:
        lines.append(f"  this run: {outcome.calls_this_run} calls in {outcome.seconds:.1f} s "
                     f"({outcome.seconds / outcome.calls_this_run:.3f} s per call wall-clock)")
    if outcome.spare_shards:
        lines.append(f"  {outcome.spare_shards} spare shard(s) beyond the manifest (finished while the last chunk "
                     f"ran): a larger --samples uses them")
    lines.append(f"  fingerprint {m['fingerprint'][:16]}…; more pairs later (resumes, extends): "
                 f"{generate_command(outcome.cache.parent, 'N', outcome.cache.name)}")
    return lines


__all__ = ["Settings", "generate", "generate_chunk", "generate_command", "read_manifest", "read_shard_header",
           "fingerprint", "MANIFEST", "DEFAULT_PATH", "INSTALL_HINT", "usable_cpus", "summary"]
