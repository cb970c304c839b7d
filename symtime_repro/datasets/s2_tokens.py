"""The expression tokenizer of the S2 pairs: [CLS] expression [SEP], truncated, padded with [PAD].

Two kinds, one interface (:class:`ExpressionTokenizer`):

* ``tokenizer=None``: a WordPiece tokenizer (the ``tokenizers`` library) trained on the distinct
  expressions of the cache's TRAIN split, with BERT's special tokens [PAD] [UNK] [CLS] [SEP] [MASK],
  saved beside the cache in ``<cache>/tokenizer-<vocab_size>/`` (``tokenizer.json`` and a
  ``tokenizer_config.json`` that ``transformers.AutoTokenizer`` also reads, and :data:`RECORD`, which
  records the cache's fingerprint). Trained once and reused while the fingerprint matches; retrained
  (and logged) when the cache grew or was generated again.
* ``tokenizer=<folder>``: any tokenizer ``transformers.AutoTokenizer`` loads from a local folder
  (DistilBERT's own vocab.txt + config, or one saved here). If the folder records the fingerprint of
  another cache, it is refused: a tokenizer named on purpose is never replaced.

Pre-tokenisation (what WordPiece then splits into pieces): a number with its sign (``-0.092``,
``73.5``, ``8``), a name (``x_0``, ``sqrt``, ``mul``, ``euler_gamma``), ``**``, each parenthesis, and
any other character on its own. The expressions spell operators as words (``add``, ``mul``) and
print their numbers with three significant digits, so WordPiece learns the frequent numbers and
number prefixes as whole pieces and spends the rest of the vocabulary on function names.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..errors import UserError
from ..files import atomic_write_bytes, write_json

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PRE_TOKENS = r"\*\*|[()]|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|\S"
RECORD = "s2_tokenizer.json"  # what the tokenizer in this folder was trained on
MIN_VOCAB = 32


def folder_for(cache: Path, vocab_size: int) -> Path:
    return Path(cache) / f"tokenizer-{vocab_size}"


@dataclass
class ExpressionTokenizer:
    """What the pairs need from a tokenizer, whichever library holds it."""

    path: Path
    vocab_size: int
    pad_token_id: int
    cls_token_id: int
    sep_token_id: int
    mask_token_id: int
    _encode: Callable[[list[str]], list[list[int]]]  # [CLS] … [SEP], untruncated

    def encode(self, expressions: Sequence[str], max_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(input_ids int64 [n, max_tokens], attention_mask int64 [n, max_tokens], untruncated lengths [n]).
        A longer expression keeps its first ``max_tokens - 1`` tokens and ends with [SEP]."""
        if max_tokens < 3:
            raise UserError(f"max_tokens must be at least 3 ([CLS], one token, [SEP]), got {max_tokens}")
        encoded = self._encode(list(expressions))
        ids = np.full((len(encoded), max_tokens), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(encoded), max_tokens), dtype=np.int64)
        lengths = np.array([len(e) for e in encoded], dtype=np.int64)
        for row, tokens in enumerate(encoded):
            if len(tokens) > max_tokens:
                tokens = [*tokens[:max_tokens - 1], self.sep_token_id]
            ids[row, :len(tokens)] = tokens
            mask[row, :len(tokens)] = 1
        return ids, mask, lengths


# --- training our own --------------------------------------------------------------------------


def train(expressions: Sequence[str], vocab_size: int):
    """A WordPiece ``tokenizers.Tokenizer`` trained on ``expressions`` (in the order given)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(PRE_TOKENS), behavior="isolated")])
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                        min_frequency=2, show_progress=False)
    tokenizer.train_from_iterator(list(expressions), trainer, length=len(expressions))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tokenizer


def save(folder: Path, tokenizer, record: dict[str, Any]) -> None:
    """tokenizer.json, a tokenizer_config.json for transformers, and the record last (it marks a whole folder)."""
    atomic_write_bytes(folder / "tokenizer.json", tokenizer.to_str().encode())
    write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1_000_000,
        "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
        "mask_token": "[MASK]", "clean_up_tokenization_spaces": False})
    write_json(folder / RECORD, record)


def read_record(folder: Path) -> Optional[dict[str, Any]]:
    try:
        record = json.loads((Path(folder) / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _from_tokenizers(folder: Path) -> ExpressionTokenizer:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    ids = {name: tokenizer.token_to_id(name) for name in SPECIAL_TOKENS}

    def encode(texts: list[str]) -> list[list[int]]:
        return [e.ids for e in tokenizer.encode_batch(texts)]

    return ExpressionTokenizer(folder, tokenizer.get_vocab_size(), ids["[PAD]"], ids["[CLS]"], ids["[SEP]"],
                               ids["[MASK]"], encode)


def trained_for_cache(cache: Path, manifest: dict[str, Any], train_expressions: Sequence[str],
                      vocab_size: int) -> ExpressionTokenizer:
    """Our WordPiece tokenizer for this cache: the saved one if it was trained on this cache, else a new one."""
    if vocab_size < MIN_VOCAB:
        raise UserError(f"vocab_size must be at least {MIN_VOCAB} (5 special tokens and the characters of the "
                        f"expressions), got {vocab_size}")
    folder = folder_for(cache, vocab_size)
    record = read_record(folder)
    if record is not None and record.get("fingerprint") == manifest["fingerprint"] \
            and (folder / "tokenizer.json").is_file():
        try:
            return _from_tokenizers(folder)
        except Exception as exc:  # noqa: BLE001 - a damaged file of ours: train it again
            log.warning("S2 tokenizer %s is unreadable (%s); training it again", folder, exc)
    elif record is not None:
        log.info("S2 tokenizer %s was trained on another cache (fingerprint %s…, this cache %s…): the cache grew or "
                 "was generated again; training it again", folder, str(record.get("fingerprint"))[:12],
                 manifest["fingerprint"][:12])
    distinct = sorted(set(train_expressions))
    if not distinct:
        raise UserError(f"the S2 cache {cache} has no train expression to train a tokenizer on; generate more pairs")
    start = time.perf_counter()
    tokenizer = train(distinct, vocab_size)
    seconds = time.perf_counter() - start
    import tokenizers

    save(folder, tokenizer, {"fingerprint": manifest["fingerprint"], "vocab_size_requested": vocab_size,
                             "vocab_size": tokenizer.get_vocab_size(), "trained_on": "distinct train-split expressions",
                             "expressions": len(distinct), "seconds": round(seconds, 3),
                             "pre_tokenizer": PRE_TOKENS, "tokenizers": tokenizers.__version__})
    log.info("S2 tokenizer: WordPiece trained on %d distinct train expressions in %.2f s: %d tokens (asked %d), saved "
             "in %s", len(distinct), seconds, tokenizer.get_vocab_size(), vocab_size, folder)
    return _from_tokenizers(folder)


# --- a tokenizer the user names -----------------------------------------------------------------


def named(folder: str | Path, manifest: dict[str, Any]) -> ExpressionTokenizer:
    """The tokenizer in ``folder`` through transformers.AutoTokenizer (local files only)."""
    path = Path(folder).expanduser()
    again = "or tokenizer=null to train one on the cache"
    if not path.is_dir():
        raise UserError(f"tokenizer folder {path} does not exist; give a folder that holds a tokenizer "
                        f"(tokenizer.json, or vocab.txt with its tokenizer_config.json / config.json), {again}")
    record = read_record(path)
    if record is not None and record.get("fingerprint") != manifest["fingerprint"]:
        raise UserError(f"tokenizer folder {path} was trained on another S2 cache (fingerprint "
                        f"{str(record.get('fingerprint'))[:12]}…, this cache {manifest['fingerprint'][:12]}…): the cache "
                        f"grew or was generated again since; use the cache it was trained on, {again} (it is saved in "
                        f"<cache>/tokenizer-<vocab_size>)")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise UserError("a named tokenizer folder is read with transformers, which is not installed: "
                        "pip install -e '.[pretrain]'") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"tokenizer folder {path} holds no tokenizer transformers can load ({first[:200]}); it needs "
                        f"tokenizer.json or vocab.txt with tokenizer_config.json / config.json, {again}") from None
    tokenizer.model_max_length = 1_000_000_000  # we truncate ourselves, after counting the full length
    ids = {"pad": tokenizer.pad_token_id, "cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id,
           "mask": tokenizer.mask_token_id}
    missing = [name for name, value in ids.items() if value is None]
    if missing:
        raise UserError(f"tokenizer folder {path} has no {', '.join(f'[{m.upper()}]' for m in missing)} token; the "
                        f"pairs need BERT-style [PAD] [CLS] [SEP] [MASK], {again}")
    probe = tokenizer("x_0")["input_ids"]
    if not probe or probe[0] != ids["cls"] or probe[-1] != ids["sep"]:
        raise UserError(f"tokenizer folder {path} does not add [CLS] … [SEP] around a text; the pairs need a BERT-style "
                        f"tokenizer, {again}")

    def encode(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]

    return ExpressionTokenizer(path, len(tokenizer), ids["pad"], ids["cls"], ids["sep"], ids["mask"], encode)


__all__ = ["ExpressionTokenizer", "SPECIAL_TOKENS", "PRE_TOKENS", "RECORD", "folder_for", "train", "save",
           "trained_for_cache", "named"]
