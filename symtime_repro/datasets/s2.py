"""The S2 cache (``python -m symtime_repro.data generate s2``) read as pre-training pairs.

A pair is a window of one generated response channel and the tokens of that channel's expression:

* **splits by seed**, so an expression (and every window cut from its series) is in one split only:
  seeds with ``seed % 20 == 19`` are test, ``seed % 20 == 18`` validation (5 % each), the rest
  train. The rule depends on the seed alone, so extending the cache (a larger ``--samples``) keeps
  every earlier pair in its split. A cache without such seeds (fewer than 20) takes its last seed
  for test and the one before for validation; fewer than 3 seeds are refused.
* **windows**: each series is cut into non-overlapping windows of ``context`` steps from its start
  (a remainder shorter than ``context`` is dropped), each window z-normalised on its own (mean,
  population std + :data:`EPS`); a window that is constant after cutting is dropped.
* **tokens**: ``[CLS] expression [SEP]`` truncated to ``max_tokens`` (then ending in [SEP]) and
  padded with [PAD]; each distinct expression is encoded once (:mod:`.s2_tokens`).
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data import s2 as cache_format
from ..errors import UserError
from . import resolve_data_file, s2_tokens

log = logging.getLogger(__name__)

EPS = 1e-5  # added to each window's std
SPLIT_EVERY = 20  # of every 20 seeds, the last is test and the one before validation (5 % each)


def required_files(dataset_cfg) -> list[str]:
    return [f"{dataset_cfg.path}/{cache_format.MANIFEST}"]


@dataclass
class Cache:
    path: Path
    manifest: dict[str, Any]
    series: np.ndarray  # float32 [pairs, length]
    expression: np.ndarray  # str [pairs]
    seed: np.ndarray  # int64 [pairs]


def _again(cache: Path, manifest: dict[str, Any]) -> str:
    return cache_format.generate_command(cache.parent, manifest.get("samples_requested", "N"), cache.name)


def load_cache(dataset_cfg, root: str | Path) -> Cache:
    """Every pair of the cache, each shard checked against the manifest's sha256."""
    manifest_path = resolve_data_file(root, required_files(dataset_cfg)[0], dataset_cfg.name,
                                      getattr(dataset_cfg, "source", ""))
    cache = manifest_path.parent
    manifest = cache_format.read_manifest(cache)
    if not manifest["shards"]:
        raise UserError(f"{manifest_path} lists no shard; delete it and run the generate command again: "
                        f"{_again(cache, manifest)}")
    series, expressions, seeds = [], [], []
    for record in manifest["shards"]:
        path = cache / record["file"]
        fix = f"delete it and run the generate command again (it resumes and makes it anew): {_again(cache, manifest)}"
        if not path.is_file():
            raise UserError(f"S2 shard {path} (listed in {manifest_path}) is missing; run the generate command again "
                            f"(it resumes and makes it anew): {_again(cache, manifest)}")
        data = path.read_bytes()
        if cache_format.sha256_bytes(data) != record["sha256"]:
            raise UserError(f"S2 shard {path} is damaged (its sha256 differs from {manifest_path}'s); {fix}")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                shard = {key: stored[key] for key in ("series", "expression", "seed")}
        except Exception as exc:  # noqa: BLE001 - any unreadable member
            raise UserError(f"S2 shard {path} is unreadable ({type(exc).__name__}); {fix}") from None
        if len(shard["series"]) != record["pairs"]:
            raise UserError(f"S2 shard {path} holds {len(shard['series'])} pairs, the manifest says {record['pairs']}; "
                            f"{fix}")
        series.append(shard["series"])
        expressions.append(shard["expression"].astype(str))
        seeds.append(shard["seed"])
    return Cache(cache, manifest, np.concatenate(series).astype(np.float32, copy=False),
                 np.concatenate(expressions), np.concatenate(seeds).astype(np.int64))


def split_seeds(seeds: np.ndarray) -> dict[str, np.ndarray]:
    """The seeds of each split (see the module doc): {"train", "val", "test"} -> sorted seeds."""
    distinct = np.unique(seeds)
    n = len(distinct)
    if n < 3:
        raise UserError(f"the S2 cache holds pairs from {n} seed(s); train, validation and test need at least one "
                        f"seed each: generate more pairs (a larger --samples)")
    test = distinct[distinct % SPLIT_EVERY == SPLIT_EVERY - 1]
    val = distinct[distinct % SPLIT_EVERY == SPLIT_EVERY - 2]
    if not len(test) or not len(val):  # a cache of fewer than SPLIT_EVERY seeds: its last two seeds
        test, val = distinct[-1:], distinct[-2:-1]
    held_out = np.concatenate([val, test])
    return {"train": distinct[~np.isin(distinct, held_out)], "val": val, "test": test}


def cut_windows(series: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """(windows float32 [m, context], the pair each came from int64 [m]): non-overlapping, each
    z-normalised on its own; constant windows dropped."""
    pairs, length = series.shape
    per = length // context
    windows = series[:, :per * context].astype(np.float64).reshape(pairs * per, context)
    owner = np.repeat(np.arange(pairs, dtype=np.int64), per)
    mean = windows.mean(axis=1, keepdims=True)
    std = windows.std(axis=1, keepdims=True)
    keep = (std[:, 0] >= cache_format.CONSTANT_STD * (1.0 + np.abs(mean[:, 0])))
    normalised = ((windows[keep] - mean[keep]) / (std[keep] + EPS)).astype(np.float32)
    return normalised, owner[keep]


class S2Pairs(Dataset):
    """Windows and the tokens of their expressions: items ``{"series": float32 [context],
    "input_ids": int64 [max_tokens], "attention_mask": int64 [max_tokens]}``."""

    def __init__(self, series: np.ndarray, token_row: np.ndarray, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor, seeds: np.ndarray) -> None:
        self.series = torch.from_numpy(np.ascontiguousarray(series))
        self.token_row = torch.from_numpy(np.ascontiguousarray(token_row))
        self.input_ids = input_ids
        self.attention_mask = attention_mask
        self.seeds = seeds  # the seed of each window (for the split checks)

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.token_row[index]
        return {"series": self.series[index], "input_ids": self.input_ids[row],
                "attention_mask": self.attention_mask[row]}


def pair_splits(dataset_cfg, root, context: int, tokenizer: str | None, vocab_size: int,
                max_tokens: int) -> tuple[S2Pairs, S2Pairs, S2Pairs, dict]:
    """Train, validation and test pairs of the S2 cache, and what the task needs to know about them."""
    if context < 1:
        raise UserError(f"the pre-training context must be a positive number of steps, got {context}")
    if max_tokens < 3:
        raise UserError(f"max_tokens must be at least 3 ([CLS], one token, [SEP]), got {max_tokens}")
    cache = load_cache(dataset_cfg, root)
    length = cache.series.shape[1]
    if context > length:
        raise UserError(f"the pre-training context ({context} steps) is longer than the S2 series ({length} steps, "
                        f"{cache.path}); generate a cache with --length {context} or more into another folder "
                        f"(--path, and dataset.path=), or use a context of at most {length}")
    seeds_of = split_seeds(cache.seed)
    split_of_pair = {name: np.isin(cache.seed, seeds) for name, seeds in seeds_of.items()}
    if tokenizer is None:
        encoder = s2_tokens.trained_for_cache(cache.path, cache.manifest, cache.expression[split_of_pair["train"]],
                                              vocab_size)
    else:
        encoder = s2_tokens.named(tokenizer, cache.manifest)
        if encoder.vocab_size != vocab_size:
            log.info("S2 tokenizer %s has %d tokens; the vocab_size asked (%d) applies to a trained tokenizer only",
                     encoder.path, encoder.vocab_size, vocab_size)
    distinct, row_of_pair = np.unique(cache.expression, return_inverse=True)
    ids, mask, lengths = encoder.encode(distinct.tolist(), max_tokens)
    truncated = float((lengths > max_tokens).mean()) if len(lengths) else 0.0
    log.info("S2 expressions: %d distinct, %.1f tokens each on average with [CLS] and [SEP] (max %d); %.1f %% longer "
             "than max_tokens=%d, truncated", len(distinct), lengths.mean(), lengths.max(), 100 * truncated, max_tokens)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # DataLoader workers fork after this: no warning there
    input_ids, attention_mask = torch.from_numpy(ids), torch.from_numpy(mask)

    splits, counts = {}, {}
    for name in ("train", "val", "test"):
        chosen = np.flatnonzero(split_of_pair[name])
        windows, owner = cut_windows(cache.series[chosen], context)
        pairs = chosen[owner]
        splits[name] = S2Pairs(windows, row_of_pair[pairs].astype(np.int64), input_ids, attention_mask,
                               cache.seed[pairs])
        counts[name] = len(windows)
        if not len(windows):
            raise UserError(f"the {name} split of the S2 cache {cache.path} has no window of {context} steps; "
                            f"generate more pairs (a larger --samples)")
    info = {
        "enc_in": 1, "file": str(cache.path), "vocab_size": encoder.vocab_size,
        "pad_token_id": encoder.pad_token_id, "cls_token_id": encoder.cls_token_id,
        "sep_token_id": encoder.sep_token_id, "mask_token_id": encoder.mask_token_id,
        "tokenizer": str(encoder.path), "pairs": counts,
        "seeds": {name: [int(s[0]), int(s[-1]), len(s)] for name, s in seeds_of.items()},
        "manifest": cache.manifest, "truncated": truncated,
        "tokens_per_expression": float(lengths.mean()), "expressions": len(distinct),
        "context": context, "max_tokens": max_tokens,
    }
    log.info("S2 pairs (windows of %d steps): train %d, val %d, test %d, from %d/%d/%d seeds", context,
             counts["train"], counts["val"], counts["test"], *(len(seeds_of[n]) for n in ("train", "val", "test")))
    return splits["train"], splits["val"], splits["test"], info


__all__ = ["pair_splits", "load_cache", "split_seeds", "cut_windows", "S2Pairs", "required_files", "EPS"]
