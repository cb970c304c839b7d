"""framework=torch|mindspore on the command line, in the project's usual venv (no MindSpore here):
which framework a command asks for, where the MindSpore venv is, and the one-line refusals. The
MindSpore side itself is tested in its own venv (tests/mindspore/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import DATA_ROOT, TINY, assert_user_error, run_cli
from symtime_repro import frameworks


def test_the_last_framework_override_wins_and_torch_is_the_default():
    assert frameworks.requested(["task=long_term"]) == "torch"
    assert frameworks.requested(["framework=mindspore", "seed=1"]) == "mindspore"
    assert frameworks.requested(["framework=mindspore", "+framework=torch"]) == "torch"


def test_the_mindspore_venv_is_found_beside_the_project_or_named(tmp_path, monkeypatch):
    monkeypatch.delenv(frameworks.PYTHON_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert frameworks.mindspore_python(repo=tmp_path) is None
    python = tmp_path / ".venv-ms" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    assert frameworks.mindspore_python(repo=tmp_path) == python
    monkeypatch.setenv(frameworks.PYTHON_ENV, "/opt/ms/bin/python")
    assert frameworks.mindspore_python(repo=tmp_path) == Path("/opt/ms/bin/python")


def test_no_mindspore_venv_is_one_line_that_says_how_to_make_it(monkeypatch):
    monkeypatch.setattr(frameworks, "mindspore_python", lambda repo=None: None)
    monkeypatch.setattr(frameworks.importlib.util, "find_spec", lambda name: None)
    problem = frameworks.refusal(["framework=mindspore", "mode=test"])
    assert "there is none: create it with `make venv-ms`" in problem and "\n" not in problem
    assert frameworks.refusal(["mode=test"]) is None  # torch needs nothing


@pytest.mark.parametrize("value", ["torch,mindspore", "choice(torch,mindspore)"])
def test_a_sweep_over_frameworks_is_refused_one_process_runs_one(value):
    assert "one process runs one framework" in frameworks.refusal(["-m", f"framework={value}"])


def test_the_command_names_a_missing_mindspore_python(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(["framework=mindspore", "mode=test", "ckpt=none.pt", f"data.root={DATA_ROOT}"], run_dir,
                     env={frameworks.PYTHON_ENV: str(tmp_path / "nowhere" / "python")})
    assert_user_error(result, f"{frameworks.PYTHON_ENV}={tmp_path / 'nowhere' / 'python'}: no such file", run_dir)
    assert not run_dir.exists()


def test_an_unknown_framework_names_the_choices(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli([*TINY, "framework=tensorflow"], run_dir)
    assert_user_error(result, "framework must be torch or mindspore, got 'tensorflow'", run_dir)


def test_a_run_records_its_framework(trained_run):
    from conftest import read_metrics

    assert read_metrics(trained_run)["framework"] == "torch"
