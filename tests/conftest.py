"""Shared fixtures: the repo's shipped data, a tiny model config, and the CLI in a subprocess."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from symtime_repro.config import ModelConfig

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Full published files (M4 Hourly/Weekly with Naive2, UEA Handwriting, …) in the TSLib layout, for the
# few tests that need more than the shipped slices: SYMTIME_FULL_DATA=<folder>; skipped without it.
FULL_DATA = Path(os.environ["SYMTIME_FULL_DATA"]).expanduser() if os.environ.get("SYMTIME_FULL_DATA") else None


def full_data_missing(*parts: str) -> str | None:
    """Why a test of the full files must skip (no SYMTIME_FULL_DATA, or the file is not in it), or None."""
    if FULL_DATA is None:
        return "set SYMTIME_FULL_DATA=<folder of the full published files> to run this test"
    path = FULL_DATA.joinpath(*parts)
    return None if path.exists() else f"{path} not found (SYMTIME_FULL_DATA={FULL_DATA})"

# The smoke-sized encoder (conf/model/symtime_tiny.yaml), for the runs and for the model built in-process.
TINY_MODEL = yaml.safe_load((REPO / "conf" / "model" / "symtime_tiny.yaml").read_text())

# A model small enough for CI on 2 cores; everything else is the real pipeline on real ETTh1. One
# fine-tuning layer of the two: the task asks for 3, and fewer is faster. Two threads, pinned: the
# automatic choice follows the machine's load (symtime_repro/cpus.py), and another thread count
# rounds floats differently, so tests that compare two runs bit for bit would depend on the load.
TINY = [
    "model=symtime_tiny", "model.forward_layers=1", "device.threads=2",
    "task.seq_len=96", "task.pred_len=24", "trainer.batch_size=64", "trainer.eval_batch_size=512",
    "trainer.epochs=2", "trainer.limit_train_batches=12", "trainer.progress=false",
    f"data.root={DATA_ROOT}",
]


def tiny_model_cfg(**overrides) -> SimpleNamespace:
    """The model section of a TINY run (out_channels 8 as the classification tests pass), for
    building the network in-process; keyword arguments change fields."""
    cfg = {**dataclasses.asdict(ModelConfig(**TINY_MODEL)), "forward_layers": 1, "out_channels": 8, **overrides}
    return SimpleNamespace(**cfg)


def run_cli(args: list[str], run_dir: Path | None = None, cwd: Path | None = None,
            env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m symtime_repro`` like a user would, in its own process."""
    cmd = [sys.executable, "-m", "symtime_repro", *args]
    if run_dir is not None:
        cmd.append(f"hydra.run.dir={run_dir}")
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(cmd, cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


def assert_user_error(result: subprocess.CompletedProcess, expected: str, run_dir: Path) -> None:
    """The run ended as a user error should: exit 2, exactly one 'error:' line holding ``expected``,
    no traceback, and no metrics.json."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert not (run_dir / "metrics.json").exists()


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def m4_scores(forecast_csv: Path, scratch: Path) -> dict:
    """``python -m symtime_repro.metrics.m4 score`` of a saved forecast file against the shipped M4 slice:
    the scores per pattern, as its --json file holds them."""
    out = scratch / "scores.json"
    scored = subprocess.run([sys.executable, "-m", "symtime_repro.metrics.m4", "score", str(forecast_csv), "--root",
                             str(DATA_ROOT), "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert scored.returncode == 0, scored.stderr
    return json.loads(out.read_text())


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One real tiny fine-tuning run on the shipped ETTh1, shared by the CLI tests."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    result = run_cli(TINY, run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def run_cli_in_process(args: list[str]) -> int:
    """``python -m symtime_repro ARGS`` inside this process (no interpreter start: a fraction of a
    second a run); the exit status. Use it through the ``cli_in_process`` fixture."""
    from symtime_repro.__main__ import command

    saved = sys.argv
    sys.argv = ["symtime_repro", *args]
    try:
        command()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved


@pytest.fixture
def cli_in_process(monkeypatch):
    """run_cli_in_process, with the process left as it was: no mimalloc re-exec, and the logging
    Hydra configures for each run (handlers on this test's captured streams and on the run's
    run.log) removed again, so later tests do not log into closed streams."""
    monkeypatch.setenv("SYMTIME_REPRO_ALLOCATOR", "system")  # the re-exec would leave this process
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(REPO)
    saved = _logging_state()
    yield run_cli_in_process
    _restore_logging(saved)


def _loggers() -> list[logging.Logger]:
    return [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]


def _logging_state() -> dict:
    return {logger: (logger.handlers[:], logger.level, logger.propagate, logger.disabled) for logger in _loggers()}


def _restore_logging(saved: dict) -> None:
    for logger in _loggers():
        handlers, level, propagate, disabled = saved.get(logger, ([], logging.NOTSET, True, False))
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def report_plots(run_dir: Path, out: Path) -> dict[str, Path]:
    """``python -m symtime_repro.report RUN_DIR --out OUT`` in this process; its PNGs by file name."""
    from symtime_repro import report

    assert report.main([str(run_dir), "--out", str(out)]) == 0
    return {path.name: path for path in (out / "plots").glob("*.png")}


def assert_png(path: Path, min_pixels: tuple[int, int] = (300, 200)) -> None:
    """A real, readable PNG of at least ``min_pixels`` (width, height)."""
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width >= min_pixels[0] and height >= min_pixels[1], (path.name, width, height)
