"""Started by tests/test_shared_evaluation.py under torchrun (2 processes, Gloo): for each task, the
tiny config through the real run machinery (``run.prepare``), validation and test evaluated in shares
by the Trainer (every process its part), and on process 0 the same evaluated whole by a
one-process Trainer; process 0 writes both, with the batches each process scored, to OUT/results.json
and the test files each wrote under OUT/<case>/{shared,whole}.

BatchNorm is on (the default model.norm) and process 1's buffers are changed first, as DDP training
leaves them (each process's own last forward): the shared evaluation must use process 0's.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/shared_evaluation_run.py OUT
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import DATA_ROOT, TINY  # noqa: E402
from symtime_repro.config import register_configs  # noqa: E402
from symtime_repro.distributed import Dist, gather_to_main  # noqa: E402
from symtime_repro.run import prepare  # noqa: E402
from symtime_repro.training import Trainer  # noqa: E402

COMMON = ["model=symtime_tiny", "model.forward_layers=1", "device.threads=1", "trainer.progress=false",
          f"data.root={DATA_ROOT}"]
CASES = {
    # 2857 val and test windows in batches of 512: 6 batches, 3 each.
    "long_term": TINY,
    # A capped evaluation of ONE batch: process 1's share is empty.
    "long_term_one_batch": [*TINY, "trainer.limit_eval_batches=1"],
    # Seeded masks; a capped evaluation of 3 batches of 256, shared 2 + 1.
    "imputation": [*[a for a in TINY if not a.startswith(("task.pred_len", "trainer.eval_batch_size"))],
                   "task=imputation", "trainer.eval_batch_size=256", "trainer.limit_eval_batches=3"],
    # The shipped Hourly slice's 24 series in batches of 8: 3 batches, shared 2 + 1.
    "short_term": ["task=short_term", "dataset.seasonal_pattern=Hourly", "trainer.eval_batch_size=8", *COMMON],
    "classification": ["task=classification", "dataset=JapaneseVowels", "model.out_channels=8",
                       "trainer.eval_batch_size=64", *COMMON],
    # Train and test energies of a capped evaluation (4 batches of 256 spread over each split: the
    # windows' starts have gaps), thresholded over all of them on process 0.
    "anomaly": ["task=anomaly", "dataset=MSL", "model.stride=8", "trainer.eval_batch_size=256",
                "trainer.limit_eval_batches=4", *COMMON],
}


def counting(trainer: Trainer, calls: list):
    """trainer.eval_batches, recording (batches, first sample, first batch) of each share it hands out."""
    real = trainer.eval_batches

    def eval_batches(dataset, share: bool = False):
        batches = real(dataset, share)
        calls.append([len(batches), batches.offset, batches.batch_offset])
        return batches

    return eval_batches


def main(out: Path) -> None:
    register_configs()
    results = {}
    for name, overrides in CASES.items():
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        rc, device, task, splits, model, dist = prepare(cfg)
        assert dist.world == 2
        if not dist.is_main:  # as DDP leaves them: this process's BatchNorm statistics are its own
            with torch.no_grad():
                for buffer in model.buffers():
                    if buffer.is_floating_point():
                        buffer.mul_(1.7).add_(0.3)
        shared = Trainer(rc.trainer, device, out / name, rc.seed, asdict(rc), dist)
        calls: list = []
        shared.eval_batches = counting(shared, calls)
        val = shared.evaluate(task, model, splits.val)
        test = shared.test(task, model, splits)
        every_call = gather_to_main(calls, dist)
        if dist.is_main:
            (out / name / "shared").mkdir(parents=True)
            task.save_test_outputs(out / name / "shared")
            whole = Trainer(rc.trainer, device, out / name, rc.seed, asdict(rc), Dist())
            whole_calls: list = []
            whole.eval_batches = counting(whole, whole_calls)
            whole_val = whole.evaluate(task, model, splits.val)
            whole_test = whole.test(task, model, splits)
            (out / name / "whole").mkdir(parents=True)
            task.save_test_outputs(out / name / "whole")
            results[name] = {"val": [val, whole_val], "test": [test, whole_test], "calls": every_call,
                             "whole_calls": whole_calls}
        else:
            assert test is None and val is not None
    if dist.is_main:
        (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
