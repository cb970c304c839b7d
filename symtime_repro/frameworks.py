"""``framework=torch|mindspore``: which framework computes the network.

``torch`` (the default) is this package's own network. ``mindspore`` evaluates the same network
ported to MindSpore (``symtime_repro/mindspore/``): ``mode=test`` and ``python -m symtime_repro.bench``
accept it. MindSpore needs numpy 1.x, so it lives in a venv of its own (``make venv-ms``); the user
types the command in the project's usual venv, and the command restarts itself in the MindSpore
venv (as it restarts itself for the allocator). No torch, no Hydra here: this runs first thing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Optional

from .errors import EXIT_USER_ERROR

FRAMEWORKS = ("torch", "mindspore")
PYTHON_ENV = "SYMTIME_MINDSPORE_PYTHON"  # a python with MindSpore and this project, instead of .venv-ms
VENV = ".venv-ms"  # made by `make venv-ms`, beside the project's .venv


def requested(argv: list[str]) -> str:
    """The framework the command line asks for (the last ``framework=`` wins), else torch."""
    chosen = "torch"
    for arg in argv:
        key, _, value = arg.lstrip("+").partition("=")
        if key == "framework":
            chosen = value
    return chosen


def mindspore_python(repo: Optional[Path] = None) -> Optional[Path]:
    """The python of the MindSpore venv: $SYMTIME_MINDSPORE_PYTHON, else ``.venv-ms`` beside this
    project's source (an editable install) or in the current folder; None when there is none."""
    if os.environ.get(PYTHON_ENV):
        return Path(os.environ[PYTHON_ENV])
    repo = repo or Path(__file__).resolve().parents[1]
    for folder in (repo, Path.cwd()):
        python = folder / VENV / "bin" / "python"
        if python.is_file():
            return python
    return None


def refusal(argv: list[str]) -> Optional[str]:
    """Why this command cannot run the framework it asks for here (one line), or None."""
    chosen = requested(argv)
    if chosen == "torch":
        return None
    if "," in chosen or chosen.startswith(("choice(", "[")):
        return (f"framework={chosen}: one process runs one framework (MindSpore slows torch in the same "
                f"process); run one command per framework")
    if chosen not in FRAMEWORKS:
        return None  # the config check names the choices
    if importlib.util.find_spec("mindspore") is not None:
        return None
    python = mindspore_python()
    if python is None:
        return (f"framework=mindspore runs in the MindSpore venv, and there is none: create it with `make venv-ms` "
                f"(MindSpore needs numpy 1.x, so it has a venv of its own), or set {PYTHON_ENV}=<its python>")
    if not python.is_file():
        return f"{PYTHON_ENV}={python}: no such file; point it at a python with MindSpore and this project installed"
    return None


def restart_in_framework_venv() -> None:
    """framework=mindspore typed in the usual venv: re-execute this exact command with the MindSpore
    venv's python. Returns when no restart is needed; exits 2 with one line when it can't run."""
    argv = sys.argv[1:]
    problem = refusal(argv)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    if requested(argv) != "mindspore" or importlib.util.find_spec("mindspore") is not None:
        return
    python = mindspore_python()
    command = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(str(python), [str(python), *command[1:]])
