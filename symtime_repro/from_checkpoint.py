"""``mode=test ckpt=<our checkpoint.pt>``: what the checkpoint decides, and what the user still may.

Our checkpoints carry the configuration they were trained with, so a test needs no other override:
the task, the dataset and the network's settings come from the file. The rules, in one place:

* every task, dataset and model setting, and the seed (imputation's evaluation masks follow it), is
  the checkpoint's unless the user typed that key on the command line;
* a typed key that fixes the network's shape or what it predicts (:data:`NETWORK_KEYS`, the task)
  must agree with the checkpoint: a different value is refused, never silently replaced;
* a typed evaluation setting (``task.mask_ratio``, ``task.anomaly_ratio``, ``dataset.validation``,
  ``data.root``, …) is the user's;
* a typed ``dataset=`` other than the checkpoint's is a transfer evaluation: allowed, logged as
  such and recorded in ``metrics.json``.

The same rules name the run dir (``outputs/<task>/<dataset>/…``) through the ``run_task`` and
``run_dataset`` resolvers, before Hydra creates it: a test run is filed under what it evaluates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from omegaconf import DictConfig, OmegaConf

from .errors import UserError
from .tasks import facts as task_facts

log = logging.getLogger(__name__)

# Keys whose value fixes the network's weights' shapes or what it was trained to output.
NETWORK_KEYS = {
    "task": {"name", "module", "head", "seq_len", "pred_len"},
    "dataset": {"features", "target", "seasonal_pattern"},
    "model": {"n_layers", "d_model", "n_heads", "d_ff", "norm", "activation", "patch_len", "stride",
              "padding_patch", "forward_layers", "use_avg", "moving_avg", "individual", "conv1d",
              "out_channels"},
}
ADOPTED_SECTIONS = ("task", "dataset", "model")
NOT_ADOPTED = {("model", "pretrained")}  # a test loads every weight from ckpt=; the encoder file plays no part

_peeked: dict[tuple[str, int, int], Optional[dict]] = {}


def saved_config(path: Optional[str]) -> Optional[dict]:
    """The configuration stored in our checkpoint at ``path``; None for an official file, a missing
    or unreadable one (the run then says what is wrong when it loads the weights)."""
    if not path:
        return None
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _peeked:
        _peeked[key] = _read_config(Path(path))
    return _peeked[key]


def _read_config(path: Path) -> Optional[dict]:
    import torch

    from .models.checkpoints import FORMAT

    try:  # mmap: the weights are not read, only the small config beside them
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not a zip checkpoint (mmap needs one) or damaged: read_checkpoint says which
        return None
    if isinstance(blob, dict) and blob.get("format") == FORMAT and isinstance(blob.get("config"), dict):
        return blob["config"]
    return None


def typed_keys(overrides: Iterable[str]) -> set[str]:
    """The config keys the user's command-line overrides set: ``dataset`` for a group choice,
    ``task.mask_ratio`` for a value (``+``/``++``/``~`` forms included)."""
    keys = set()
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0].strip()
        keys.add(key.split("@", 1)[0])
    return keys


def _names_dataset(keys: set[str]) -> bool:
    return "dataset" in keys or "dataset.name" in keys


def evaluated_names(mode: str, ckpt: Optional[str], task: str, dataset: str,
                    overrides: Iterable[str]) -> tuple[str, str]:
    """(task, dataset) a run really evaluates: in mode=test with our checkpoint, the checkpoint's
    unless the user named the dataset (a transfer evaluation)."""
    saved = saved_config(ckpt) if mode == "test" else None
    if not saved:
        return task, dataset
    keys = typed_keys(overrides)
    saved_task = saved.get("task", {}).get("name", task)
    saved_dataset = saved.get("dataset", {}).get("name", dataset)
    return saved_task, dataset if _names_dataset(keys) else saved_dataset


def register_resolvers() -> None:
    """``${run_task:…}`` and ``${run_dataset:…}`` for the run dir's name (conf/config.yaml)."""
    def run_task(mode, ckpt, task, dataset, overrides):
        return evaluated_names(mode, ckpt, task, dataset, overrides or [])[0]

    def run_dataset(mode, ckpt, task, dataset, overrides):
        return evaluated_names(mode, ckpt, task, dataset, overrides or [])[1]

    for name, function in (("run_task", run_task), ("run_dataset", run_dataset)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


@dataclass
class Adopted:
    """What a test run took from its checkpoint (for the log and metrics.json)."""

    trained_on: Optional[str] = None  # the dataset the checkpoint was trained on
    transfer: bool = False  # evaluated on another dataset, as the user asked
    taken: list[str] = field(default_factory=list)  # "section.key=value" taken over a composed default


def adopt_checkpoint_config(cfg: DictConfig, saved: dict, overrides: Iterable[str]) -> Adopted:
    """Make ``cfg`` (composed from the command line) run what the checkpoint was trained for,
    following the rules of this module; raise UserError on a typed key that contradicts it."""
    keys = typed_keys(overrides)
    adopted = Adopted(trained_on=saved.get("dataset", {}).get("name"))
    saved_task = saved.get("task", {}).get("name")
    if saved_task and saved_task != cfg.task.name:
        if "task" in keys or "task.name" in keys:
            raise UserError(f"ckpt={cfg.ckpt} holds a {saved_task} model, which task={cfg.task.name} cannot "
                            f"evaluate (its head is built for {saved_task}); drop task={cfg.task.name} or pass a "
                            f"{cfg.task.name} checkpoint")
    transfer = (_names_dataset(keys) and adopted.trained_on is not None
                and cfg.dataset.name != adopted.trained_on)
    for section in ADOPTED_SECTIONS:
        stored = saved.get(section)
        if not isinstance(stored, dict):
            continue
        if section == "task":  # a file saved before tasks declared their facts: those of its task's YAML
            stored = {**stored, **task_facts.of_record(stored)}
        if section == "dataset" and transfer:
            stored = {k: v for k, v in stored.items() if k in NETWORK_KEYS["dataset"]}
        for key, value in stored.items():
            if (section, key) in NOT_ADOPTED or key not in cfg[section]:
                continue
            current = cfg[section][key]
            if current == value:
                continue
            typed = f"{section}.{key}" in keys or (section == "dataset" and key == "name" and _names_dataset(keys))
            if typed and key in NETWORK_KEYS.get(section, ()):
                raise UserError(f"{section}.{key}={current} contradicts ckpt={cfg.ckpt}, which was trained with "
                                f"{section}.{key}={value} (it fixes the network's shape or output); drop "
                                f"{section}.{key}=… to evaluate the checkpoint as trained")
            if typed:
                continue  # an evaluation setting the user chose
            cfg[section][key] = value
            if not (section == "task" and key in task_facts.FACT_KEYS):  # what follows from task.name goes unsaid
                adopted.taken.append(f"{section}.{key}={value}")
    if "seed" not in keys and "seed" in saved and cfg.seed != saved["seed"]:
        cfg.seed = saved["seed"]
        adopted.taken.append(f"seed={saved['seed']}")
    adopted.transfer = transfer
    return adopted


def require_names_for_official(ckpt: str, overrides: Iterable[str]) -> None:
    """An official ``checkpoint.pth`` records no configuration: the user must say what it was
    trained for. Without that, an ETTh2 model would be evaluated on the default ETTh1 with exit 0
    (the network is channel-independent, so every shape fits)."""
    keys = typed_keys(overrides)
    named = {"task": "task" in keys or "task.name" in keys, "dataset": _names_dataset(keys)}
    if "experiment" in keys or all(named.values()):
        return
    missing = " and ".join(f"{k}=…" for k, ok in named.items() if not ok)
    raise UserError(f"ckpt={ckpt} is an official checkpoint, which does not record what it was trained on: add "
                    f"{missing} (or experiment=<task>/<preset>) and the flags of the run that made it "
                    f"(task.seq_len, task.pred_len, model.stride, …)")


def log_adopted(adopted: Adopted, ckpt: str, task: str, dataset: str) -> None:
    names = [t for t in adopted.taken if t.startswith(("task.name=", "dataset.name="))]
    if names:
        log.info("mode=test: evaluating on what the checkpoint was trained for, as the command line does not "
                 "say (%s)", ", ".join(names))
    # The bookkeeping of a dataset taken whole (its path, split, source) would only hide what matters.
    shown = [t for t in adopted.taken if t not in names and not (
        t.startswith("dataset.") and t.split("=", 1)[0].split(".", 1)[1] not in NETWORK_KEYS["dataset"])]
    if shown:
        log.info("from the checkpoint %s: %s", ckpt, ", ".join(shown))
    if adopted.transfer:
        log.warning("transfer evaluation: the checkpoint was trained on %s and is evaluated on %s, as asked "
                    "(dataset=%s); its metrics do not compare with %s results", adopted.trained_on, dataset,
                    dataset, adopted.trained_on)
