"""Typed configuration: the schema Hydra composes into, and the one start-up validation.

Hydra checks *types* while it merges overrides (``trainer.lr=abc`` fails there, naming the key);
:func:`validate` checks *meaning* once, before any work (``task.pred_len=0``,
``model.forward_layers=9``), and raises :class:`UserError` with the override that fixes it.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from . import tasks
from .data.catalog import DATASET_ALIASES
from .errors import UserError
from .tasks.facts import HEADS

DEVICE_NAMES = ("cpu", "cuda", "npu", "auto")
# Keys that change neither what a run computes nor how it is scored, only how it is shown, where its
# files are and how fast it goes (a thread count changes float rounding at most). The one list behind
# the report's grouping of runs into rows and the keys a resumed run may change.
NOT_RESULT_KEYS = frozenset({"trainer.progress", "trainer.num_workers", "trainer.eval_batch_size", "data.root",
                             "device.index", "device.threads", "logger.mlflow", "logger.tensorboard",
                             "logger.tracking_uri", "logger.experiment_name", "logger.log_every_n_steps",
                             "logger.log_checkpoint"})
# Other names a config group option goes by, lower case -> our name, per group (the data sets' live in
# the catalog). A different case alone (ETTH1, weather) needs no entry: closest() matches case.
OPTION_ALIASES = {"dataset": DATASET_ALIASES, "device": {"gpu": "cuda", "ascend": "npu"}}


def choice(*options: str, ignore_case: bool = False) -> Any:
    """A string field that takes one of ``options``; the first is the default. The choices live
    beside the field they belong to, and :func:`validate` checks every such field the same way."""
    return field(default=options[0], metadata={"choices": options, "ignore_case": ignore_case})


@dataclass
class TaskConfig:
    """What is asked of the model. Task YAMLs set the official entry point's defaults and declare
    what the task is (head, metrics, derived: symtime_repro/tasks/facts.py)."""

    # The task YAML sets the name and declares head and metrics (no default: a task says what it is).
    name: str = MISSING
    module: Optional[str] = None  # the Python module with the task's TASK class; null: symtime_repro.tasks.<name>
    head: str = MISSING  # what the network outputs: forecast | reconstruct | classify
    metrics: list[str] = MISSING  # test metrics, headline first
    derived: list[str] = field(default_factory=list)  # of seq_len, pred_len: null derives them from the data
    report: dict[str, Any] = field(default_factory=dict)  # how the report shows results (report/task_facts.py)
    # Input window and horizon. null means "derived from the data" (M4: pred_len = the pattern's
    # horizon H, seq_len = 2H) for the lengths the task lists in ``derived``; it fills them in.
    seq_len: Optional[int] = 96  # official long-term entry default; the official scripts use 336
    label_len: int = 48  # kept for TSLib flag parity; SymTime has no decoder and ignores it
    pred_len: Optional[int] = 96
    mask_ratio: float = 0.125  # imputation: share of points hidden
    mask_rng: str = choice("seeded", "global")  # imputation eval masks: seeded (reproducible) | global (official)
    anomaly_ratio: Optional[float] = None  # anomaly: percent of points flagged; null = the dataset's
    test_windows: str = choice("official", "non_overlapping")  # anomaly: official (dataset step) | non_overlapping (each point once)


@dataclass
class DatasetConfig:
    """One dataset: where its file lives under ``data.root`` and how it is split."""

    name: str = "ETTh1"
    family: str = "csv"  # module in symtime_repro/datasets/ that reads it
    path: str = "ETT-small/ETTh1.csv"  # relative to data.root
    split: str = "ett_hour"  # ett_hour | ett_minute | ratio (70/10/20)
    features: str = choice("M", "S", "MS")  # M: all->all, S: target->target, MS: all->target
    target: str = "OT"
    freq: str = "h"
    source: str = ""  # where to get the file, shown when it is missing
    seasonal_pattern: Optional[str] = None  # M4: Yearly, Quarterly, Monthly, Weekly, Daily, Hourly
    # UEA, M4: test (official: early stopping on TEST) | holdout (UEA: 20 % of TRAIN; M4: each series' last H train points)
    validation: str = choice("test", "holdout")
    normalize: str = choice("per_split", "train")  # UEA: per_split (official) | train (TRAIN statistics for all splits)
    anomaly_ratio: Optional[float] = None  # anomaly: the official scripts' percent for this dataset
    window_step: int = 1  # anomaly: the official window step (SMD 100)


@dataclass
class ModelConfig:
    """SymTime encoder size (must match a pre-trained file) and fine-tuning network options."""

    name: str = "symtime"
    # Encoder size: the official base model. symtime_small / symtime_large YAMLs change these.
    n_layers: int = 6
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    norm: str = choice("BatchNorm", "LayerNorm", ignore_case=True)
    activation: str = choice("gelu", "relu", ignore_case=True)
    dropout: float = 0.1
    attn_dropout: float = 0.1
    # Fine-tuning options, named as the official flags (task YAMLs set per-task defaults).
    patch_len: int = 16
    stride: int = 8
    padding_patch: bool = True
    forward_layers: int = 3
    use_avg: bool = True
    moving_avg: int = 25
    individual: bool = False
    out_dropout: float = 0.1
    conv1d: bool = True  # classification: Conv1d channel projection before patching
    out_channels: int = 32
    pretrained: Optional[str] = None  # official pre-trained encoder file (finetuning.pth)


@dataclass
class DeviceConfig:
    name: str = "cpu"  # cpu | cuda | npu | auto (npu -> cuda -> cpu)
    amp: bool = False
    index: int = 0
    npu_jit_compile: bool = False  # Ascend: torch.npu.set_compile_mode(jit_compile=...); off is Huawei's advice
    threads: Optional[int] = None  # torch's CPU threads; null: chosen from the usable, idle CPUs (symtime_repro/cpus.py)


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 32
    eval_batch_size: Optional[int] = None  # null: same as batch_size
    lr: float = 1e-4
    # onecycle: torch's OneCycleLR stepped after every batch (pre-training's official schedule: peak
    # trainer.lr, warm-up over trainer.warmup_epochs, cosine anneal, beta1 cycled 0.95 -> 0.85 -> 0.95)
    lradj: str = choice("type1", "type2", "cosine", "constant", "onecycle")
    warmup_epochs: float = 0.0  # onecycle: epochs of warm-up (official pct_start = warmup_epochs / epochs)
    optimizer: str = choice("adam", "radam", "adamw")
    weight_decay: float = 0.0  # adamw's decoupled weight decay (official pre-training: 1e-4)
    patience: int = 3
    num_workers: int = 0
    limit_train_batches: Optional[int] = None  # null = all (smoke runs set a cap)
    limit_eval_batches: Optional[int] = None
    grad_clip: Optional[float] = None  # max gradient norm (classification: 4.0 officially)
    progress: bool = True  # progress bar on a terminal
    compile: bool = False  # torch.compile the model (needs a C++ compiler on CPU, Triton on CUDA)
    on_nonfinite: str = choice("stop", "skip")  # a NaN/inf loss or gradient: stop (status failed) | skip (that batch, counted)


@dataclass
class BenchConfig:
    """``python -m symtime_repro.bench``: how many steps to time (medians are reported)."""

    warmup: int = 2  # untimed steps first (allocator, caches, compilation)
    steps: int = 5  # timed training steps; as many evaluation steps
    matmul_size: int = 2048  # n of the n x n matmul that measures the device's peak FLOP/s
    # framework=mindspore: graph (mindspore.jit compiles the step at its first call) | pynative (op by op)
    mindspore_mode: str = choice("graph", "pynative")


@dataclass
class SymbolEncoderConfig:
    """task=pretrain: the symbol encoder (DistilBERT, built from this config; conf/symbol_encoder/)."""

    name: str = "distilbert"
    layers: int = 6
    hidden: int = 768
    heads: int = 12
    ffn: int = 3072
    dropout: float = 0.1  # DistilBERT's dropout and attention dropout
    frozen_layers: int = 3  # the first N layers take no gradient (official: 3)
    # Weights: null = random (the hub is often unreachable); a local folder (or a hub id where the hub
    # is reachable) holding DistilBERT weights, e.g. distilbert-base-uncased as the official code uses.
    weights: Optional[str] = None
    # null: a WordPiece tokenizer trained on the S2 cache's training expressions and saved beside it;
    # a local folder: that tokenizer (DistilBERT's own vocab.txt, with weights= the same folder).
    tokenizer: Optional[str] = None
    vocab_size: int = 2000  # of the trained WordPiece tokenizer (DistilBERT's own: 30522)
    max_tokens: int = 128  # expressions are truncated to this many tokens ([CLS] and [SEP] included)


@dataclass
class PretrainConfig:
    """task=pretrain: SymTime's objective (official models/pretrain_model.py), its quirks as switches
    (docs/pretraining.md)."""

    time_mask_ratio: float = 0.4  # share of patches zeroed; MSE on them (masked time-series modelling)
    sym_mask_ratio: float = 0.15  # share of tokens masked, 80/10/10 (masked language modelling)
    embed_dim: int = 128  # width of the contrastive projections
    momentum: float = 0.995  # momentum encoders: m * momentum + online * (1 - momentum), every step
    queue_size: int = 60000  # negatives kept from past batches
    temp: float = 0.07  # initial contrastive temperature (learnt, clamped to [0.001, 0.5])
    alpha: float = 0.4  # momentum distillation: share of the momentum model's soft targets
    # What the time encoder is paired with: paired (its own expression) | shuffled (another pair's
    # expression, a fixed permutation: the symbol-side control) | none (MTM alone, no symbol encoder).
    symbols: str = choice("paired", "shuffled", "none")
    # Quirks of the official code, official first (docs/pretraining.md):
    # official: a visible patch attends only to masked ones (the mask is applied inverted) | visible:
    # every patch attends to the visible patches and [CLS].
    attention: str = choice("official", "visible")
    # official: the soft targets go through softmax a second time (nearly uniform) | once.
    contrastive_targets: str = choice("official", "once")
    # ring: enqueue with wrap-around (any batch size; identical to the official code wherever it
    # runs) | official: refuse, as the official assert does, a batch size that does not divide the queue.
    queue_enqueue: str = choice("ring", "official")
    symbol: SymbolEncoderConfig = field(default_factory=SymbolEncoderConfig)


@dataclass
class LoggerConfig:
    """Experiment trackers, a view of the run dir (which stays the record): conf/logger/ chooses them,
    and its options combine (logger=[mlflow,tensorboard]). docs/tracking.md."""

    mlflow: bool = False  # logger=mlflow
    tensorboard: bool = False  # logger=tensorboard: event files in <run dir>/tensorboard/
    # null: MLFLOW_TRACKING_URI from the environment, else an SQLite store at outputs/mlflow.db (an
    # absolute path from where the command runs), its artifacts in outputs/mlartifacts/.
    tracking_uri: Optional[str] = None
    experiment_name: str = "symtime-repro"  # the MLflow experiment every run (and sweep) goes into
    log_every_n_steps: int = 50  # TensorBoard: training loss and lr every N optimiser steps (0: per epoch only)
    log_checkpoint: bool = False  # MLflow: upload checkpoint.pt with the other files


@dataclass
class DataConfig:
    root: str = "data"


@dataclass
class RunConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)  # task=pretrain only
    logger: LoggerConfig = field(default_factory=LoggerConfig)  # trackers: how a run is shown, not what it computes
    framework: str = choice("torch", "mindspore")  # which framework computes the network (symtime_repro/frameworks.py)
    mode: str = choice("train", "test")  # train: fine-tune then test the best weights; test: evaluate ckpt
    ckpt: Optional[str] = None
    seed: int = 2025
    resume: bool = False  # continue the run in hydra.run.dir from its last finished epoch; skip it if done
    experiment: Optional[Any] = None  # the chosen preset's name, for the record


def register_configs() -> None:
    from .from_checkpoint import register_resolvers

    ConfigStore.instance().store(name="base_config", node=RunConfig)
    register_resolvers()  # the run dir's name in conf/config.yaml


def check_patchable(seq_len: Optional[int], m: ModelConfig) -> None:
    """The window must hold one patch (after the official end padding by ``stride``)."""
    if seq_len is None:
        return
    padded = seq_len + (m.stride if m.padding_patch else 0)
    _require(padded >= m.patch_len,
             f"task.seq_len={seq_len} is too short for model.patch_len={m.patch_len} (with padding "
             f"{m.stride if m.padding_patch else 0}): lower model.patch_len or raise task.seq_len")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _check_choices(node: Any, prefix: str = "") -> None:
    """Every :func:`choice` field holds one of its options (``trainer.lradj=typ1`` names the choices)."""
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            _check_choices(value, f"{prefix}{f.name}.")
        options = f.metadata.get("choices")
        if options is None:
            continue
        folded = [o.lower() for o in options] if f.metadata["ignore_case"] else options
        if (value.lower() if f.metadata["ignore_case"] else value) not in folded:
            listed = f"{options[0]} or {options[1]}" if len(options) == 2 else f"one of {', '.join(options)}"
            raise UserError(f"{prefix}{f.name} must be {listed}, got {value!r}")


def _check_int64(node: Any, prefix: str = "") -> None:
    """Every integer must fit torch's int64 (a 20-digit typo would otherwise fail deep inside torch)."""
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            _check_int64(value, f"{prefix}{f.name}.")
        elif isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
            raise UserError(f"{prefix}{f.name}={value} is out of range (integers must lie within ±9.2e18)")


def closest(name: str, candidates: typing.Sequence[str]) -> Optional[str]:
    """The candidate a typo most likely meant: the same name in another case (ETTH1 -> ETTh1), else
    the nearest spelling (difflib), else None."""
    same = [c for c in candidates if c.lower() == name.lower()]
    if same:
        return same[0]
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return close[0] if close else None


def _not_a_key(key: str, hints: dict, prefix: str) -> str:
    close = closest(key, list(hints))
    hint = f"; did you mean {prefix}{close}?" if close else f"; the keys here: {', '.join(hints)}"
    return f"{prefix}{key} is not a configuration key{hint}"


def unknown_key(dotted: str, schema: type = RunConfig) -> Optional[str]:
    """Why ``dotted`` (``trainer.lrr``, ``sed``) names no key of the schema, with the closest real
    key; None when it is one, or when it goes below a key that is not a section (Hydra judges that)."""
    prefix = ""
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(schema):
            return None
        hints = typing.get_type_hints(schema)
        if part not in hints:
            return _not_a_key(part, hints, prefix)
        schema, prefix = hints[part], f"{prefix}{part}."
    return None


def _check_known_keys(values: dict, schema: type = RunConfig, prefix: str = "") -> None:
    """Refuse a key the schema lacks: ``++trainer.lrr=0.5`` force-adds one that no code reads, and the
    run would otherwise go on with the default learning rate without a word."""
    hints = typing.get_type_hints(schema)
    for key, value in values.items():
        if key not in hints:
            raise UserError(_not_a_key(str(key), hints, prefix))
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            _check_known_keys(value, hints[key], f"{prefix}{key}.")


def unknown_option(group: str, value: str, options: typing.Sequence[str]) -> Optional[str]:
    """Why ``group=value`` names no option of the config group, with the option meant (another name
    of a data set, another case, the nearest spelling) and the choices; None when it is one.

    The choices are the options in the folder the value names, when it names one
    (``experiment=long_term/ETTh1_97``, ``experiment=long_term``: the long_term presets), else all of them."""
    if value in options:
        return None
    names_folder = any(o.startswith(value.rstrip("/") + "/") for o in options)  # experiment=long_term
    folder = value.rstrip("/") if names_folder else value.rpartition("/")[0]
    choices = [o for o in options if o.startswith(f"{folder}/")] if folder else []
    choices = choices or list(options)
    alias = OPTION_ALIASES.get(group, {}).get(value.lower())
    if alias in options:
        return f"{group}={value} is not available: {value} is called {alias} here; use {group}={alias}"
    close = None if names_folder else closest(value, options)
    if close:
        return f"{group}={value} is not available; did you mean {close}? Choose one of: {', '.join(choices)}"
    return f"{group}={value} is not available; choose one of: {', '.join(choices)}"


def _check_pretrain(p: PretrainConfig) -> None:
    for key in ("time_mask_ratio", "sym_mask_ratio"):
        _require(0 < getattr(p, key) < 1, f"pretrain.{key} must be in (0, 1), got {getattr(p, key)}")
    _require(0 <= p.momentum < 1, f"pretrain.momentum must be in [0, 1), got {p.momentum}")
    _require(0 <= p.alpha <= 1, f"pretrain.alpha must be in [0, 1], got {p.alpha}")
    _require(0.001 <= p.temp <= 0.5, f"pretrain.temp must be in [0.001, 0.5] (the official clamp), got {p.temp}")
    _require(p.embed_dim >= 1 and p.queue_size >= 1,
             f"pretrain.embed_dim and pretrain.queue_size must be >= 1, got {p.embed_dim} and {p.queue_size}")
    s = p.symbol
    _require(s.layers >= 1 and s.hidden >= 1 and s.heads >= 1 and s.hidden % s.heads == 0,
             f"pretrain.symbol.hidden ({s.hidden}) must be a positive multiple of pretrain.symbol.heads ({s.heads})")
    _require(0 <= s.frozen_layers <= s.layers,
             f"pretrain.symbol.frozen_layers must be in 0..pretrain.symbol.layers ({s.layers}), got {s.frozen_layers}")
    _require(0 <= s.dropout < 1, f"pretrain.symbol.dropout must be in [0, 1), got {s.dropout}")
    _require(s.vocab_size >= 32, f"pretrain.symbol.vocab_size must be >= 32, got {s.vocab_size}")
    _require(s.max_tokens >= 3, f"pretrain.symbol.max_tokens must be >= 3 ([CLS], one token, [SEP]), got {s.max_tokens}")


# Where an MLflow tracking URI can point (MLflow's own store schemes); anything else is a typo.
TRACKING_URI_SCHEMES = ("http", "https", "sqlite", "file", "postgresql", "mysql", "mssql", "databricks")


# logger.<switch>: the module it imports and the package that brings it (the `track` extra).
TRACKER_PACKAGES = {"mlflow": ("mlflow", "mlflow-skinny"), "tensorboard": ("tensorboard", "tensorboard")}


def _check_logger(lg: LoggerConfig) -> None:
    import importlib.util

    for switch, (module, package) in TRACKER_PACKAGES.items():
        _require(not getattr(lg, switch) or importlib.util.find_spec(module) is not None,
                 f"logger.{switch}=true needs the {package} package, which is not installed here: "
                 f"pip install 'symtime-repro[track]' (or choose logger=none)")
    _require(lg.log_every_n_steps >= 0,
             f"logger.log_every_n_steps must be >= 0 (0: per epoch only), got {lg.log_every_n_steps}")
    _require(bool(lg.experiment_name.strip()), "logger.experiment_name must not be empty; e.g. "
                                               "logger.experiment_name=symtime-repro")
    uri = lg.tracking_uri
    if uri is None:
        return
    scheme = uri.partition(":")[0].split("+")[0].lower()  # postgresql+psycopg2://, databricks://profile
    _require(":" in uri and scheme in TRACKING_URI_SCHEMES,
             f"logger.tracking_uri={uri!r} is not a tracking URI; give one such as http://host:5000 (a server) or "
             f"sqlite:////abs/path/mlflow.db (a local store), or null for MLFLOW_TRACKING_URI / outputs/mlflow.db")


def validate(cfg: DictConfig | RunConfig) -> RunConfig:
    """Turn the composed config into a typed :class:`RunConfig`, or raise one clear UserError."""
    if isinstance(cfg, RunConfig):
        run = cfg
    else:
        _check_known_keys(OmegaConf.to_container(cfg, resolve=False))
        try:
            run = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), cfg))
        except Exception as exc:  # omegaconf names the key in its message
            raise UserError(f"invalid configuration: {exc}".splitlines()[0]) from exc
    t, m, tr, d = run.task, run.model, run.trainer, run.dataset
    _check_int64(run)
    _check_choices(run)

    _require(tasks.module_exists(t.name, t.module),
             f"task.name={t.name!r}: no module {tasks.module_name(t.name, t.module)} implements it")
    _require(t.head in HEADS, f"task.head must be one of {', '.join(HEADS)}, got {t.head!r}")
    _require(len(t.metrics) > 0, "task.metrics must name at least one test metric")
    _require(set(t.derived) <= {"seq_len", "pred_len"},
             f"task.derived may list seq_len and pred_len only, got {list(t.derived)}")
    _require(t.seq_len is not None or "seq_len" in t.derived, "task.seq_len must be set (a positive integer)")
    _require(t.seq_len is None or t.seq_len > 0, f"task.seq_len must be a positive integer, got {t.seq_len}")
    forecasting = t.head == "forecast"  # the other heads reconstruct or classify the input: no horizon
    _require(t.pred_len is not None or "pred_len" in t.derived, "task.pred_len must be set (a positive integer)")
    _require(t.pred_len is None or (t.pred_len > 0 if forecasting else t.pred_len >= 0),
             f"task.pred_len must be a positive integer, got {t.pred_len}")
    _require(t.label_len >= 0, f"task.label_len must be >= 0, got {t.label_len}")
    _require(0 < t.mask_ratio < 1, f"task.mask_ratio must be in (0, 1), got {t.mask_ratio}")
    for owner, ratio in (("task", t.anomaly_ratio), ("dataset", d.anomaly_ratio)):
        _require(ratio is None or 0 < ratio < 100, f"{owner}.anomaly_ratio is a percent in (0, 100), got {ratio}")
    _require(d.window_step >= 1, f"dataset.window_step must be >= 1, got {d.window_step}")

    _require(d.family != "csv" or d.split in ("ett_hour", "ett_minute", "ratio"),
             f"dataset.split must be ett_hour, ett_minute or ratio, got {d.split!r}")

    _require(m.d_model > 0 and m.n_heads > 0 and m.d_model % m.n_heads == 0,
             f"model.d_model ({m.d_model}) must be a positive multiple of model.n_heads ({m.n_heads})")
    _require(m.n_layers > 0 and m.d_ff > 0, "model.n_layers and model.d_ff must be positive")
    _require(1 <= m.forward_layers <= m.n_layers,
             f"model.forward_layers must be in 1..model.n_layers ({m.n_layers}), got {m.forward_layers}")
    _require(m.patch_len > 0 and m.stride > 0,
             f"model.patch_len and model.stride must be positive, got {m.patch_len} and {m.stride}")
    # The official moving average pads (k-1)//2 on each side: an even kernel shortens the series.
    _require(m.moving_avg > 0 and m.moving_avg % 2 == 1,
             f"model.moving_avg must be a positive odd kernel size, got {m.moving_avg}")
    for key in ("dropout", "attn_dropout", "out_dropout"):
        value = getattr(m, key)
        _require(0 <= value < 1, f"model.{key} must be in [0, 1), got {value}")
    _require(m.out_channels > 0, f"model.out_channels must be positive, got {m.out_channels}")
    check_patchable(t.seq_len, m)

    _require(run.device.name in DEVICE_NAMES,
             f"device.name={run.device.name!r}: choose device=cpu, device=cuda, device=npu or device=auto")
    _require(run.device.index >= 0, f"device.index must be >= 0, got {run.device.index}")
    _require(run.device.threads is None or run.device.threads >= 1,
             f"device.threads must be null (chosen for this machine) or >= 1, got {run.device.threads}")

    _require(tr.epochs >= 1, f"trainer.epochs must be >= 1, got {tr.epochs}")
    _require(tr.batch_size >= 1, f"trainer.batch_size must be >= 1, got {tr.batch_size}")
    _require(tr.eval_batch_size is None or tr.eval_batch_size >= 1,
             f"trainer.eval_batch_size must be null or >= 1, got {tr.eval_batch_size}")
    _require(tr.lr > 0, f"trainer.lr must be positive, got {tr.lr}")
    _require(tr.patience >= 1, f"trainer.patience must be >= 1, got {tr.patience}")
    _require(tr.num_workers >= 0, f"trainer.num_workers must be >= 0, got {tr.num_workers}")
    from .cpus import usable_cpus

    cpus = usable_cpus()  # more loader processes than 4 per CPU only cost memory (each holds a copy of the data)
    _require(tr.num_workers <= 4 * cpus, f"trainer.num_workers={tr.num_workers} is more than 4 per CPU this process "
                                         f"may use ({cpus}); use at most {4 * cpus}")
    _require(tr.grad_clip is None or tr.grad_clip > 0, f"trainer.grad_clip must be null or positive, got {tr.grad_clip}")
    for key in ("limit_train_batches", "limit_eval_batches"):
        value = getattr(tr, key)
        _require(value is None or value >= 1, f"trainer.{key} must be null (all) or >= 1, got {value}")

    _require(tr.warmup_epochs >= 0 and (tr.lradj != "onecycle" or tr.warmup_epochs < tr.epochs),
             f"trainer.warmup_epochs must be in [0, trainer.epochs) with lradj=onecycle, got {tr.warmup_epochs}")
    _require(tr.weight_decay >= 0, f"trainer.weight_decay must be >= 0, got {tr.weight_decay}")
    # Settings only one choice reads: refused elsewhere rather than silently ignored.
    _require(tr.weight_decay == 0 or tr.optimizer == "adamw",
             f"trainer.weight_decay={tr.weight_decay} is used by trainer.optimizer=adamw only (this run has "
             f"{tr.optimizer}): add trainer.optimizer=adamw, or drop the weight decay")
    _require(tr.warmup_epochs == 0 or tr.lradj == "onecycle",
             f"trainer.warmup_epochs={tr.warmup_epochs} is used by trainer.lradj=onecycle only (this run has "
             f"{tr.lradj}): add trainer.lradj=onecycle, or trainer.warmup_epochs=0")
    _check_pretrain(run.pretrain)

    _check_logger(run.logger)

    b = run.bench
    _require(b.warmup >= 0 and b.steps >= 1 and b.matmul_size >= 64,
             f"bench.warmup must be >= 0, bench.steps >= 1 and bench.matmul_size >= 64 "
             f"(got {b.warmup}, {b.steps}, {b.matmul_size})")

    _require(run.mode != "test" or run.ckpt,
             "mode=test needs a checkpoint: add ckpt=<path to checkpoint.pt or official checkpoint.pth>")
    return run
