"""The import rules of docs/architecture.md, checked on the source: which part may import which,
no task named outside tasks/, and the parts that must answer without loading torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "symtime_repro"
TASK_MODULES = {p.stem for p in (PACKAGE / "tasks").glob("*.py")} - {"__init__", "base", "facts"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level: bool = False) -> set[str]:
    """Every module ``path`` imports, anywhere in the file (``top_level``: when the module is imported,
    i.e. outside functions), as absolute names (relative ones resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in (_outside_functions(tree) if top_level else ast.walk(tree)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # from . import m4
    return found


def _outside_functions(node: ast.AST):
    """The nodes of ``node`` that run when the module is imported (not inside a def)."""
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield child
            yield from _outside_functions(child)


def sources(part: str) -> list[Path]:
    target = PACKAGE / part
    return sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]


def offending(part: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for path in sources(part):
        hits = sorted(m for m in imports(path) if any(m == f or m.startswith(f + ".") for f in forbidden))
        if hits:
            bad[str(path.relative_to(REPO))] = hits
    return bad


TASKS = tuple(f"symtime_repro.tasks.{t}" for t in TASK_MODULES)
RULES = {
    "training": ("symtime_repro.run", "symtime_repro.report", "symtime_repro.bench", *TASKS),
    "models": ("symtime_repro.datasets", "symtime_repro.tasks", "symtime_repro.training", "symtime_repro.run"),
    "datasets": ("symtime_repro.models", "symtime_repro.tasks", "symtime_repro.training", "symtime_repro.run"),
    "metrics": ("symtime_repro.models", "symtime_repro.tasks", "symtime_repro.training", "symtime_repro.run"),
    "data": ("torch", "symtime_repro.models", "symtime_repro.tasks", "symtime_repro.training", "symtime_repro.run"),
    "report": ("torch", "symtime_repro.training", "symtime_repro.run", "symtime_repro.models",
               "symtime_repro.datasets", *TASKS),
    "run": ("symtime_repro.report", "symtime_repro.bench", *TASKS),
    "config": ("torch", *TASKS),
    # The CLI loads every Hydra callback: they reach a task only through tasks.task_class, in a function.
    "search": ("symtime_repro.run", "symtime_repro.training", "symtime_repro.models", *TASKS),
    "sweep_report": ("torch", "symtime_repro.run", "symtime_repro.training", *TASKS),
    # Trackers are views of the run dir: they read what the run hands them and know no task or network.
    "tracking": ("symtime_repro.run", "symtime_repro.training", "symtime_repro.report", "symtime_repro.bench",
                 "symtime_repro.models", "symtime_repro.datasets", "symtime_repro.tasks"),
    "from_checkpoint": TASKS,
}


@pytest.mark.parametrize("part", sorted(RULES))
def test_each_part_imports_only_what_the_architecture_allows(part):
    assert offending(part, RULES[part]) == {}


@pytest.mark.parametrize("task", sorted(TASK_MODULES))
def test_a_task_module_imports_no_other_task_and_neither_the_loop_nor_the_run(task):
    others = tuple(t for t in TASKS if not t.endswith(f".{task}"))
    assert offending(f"tasks/{task}", ("symtime_repro.training", "symtime_repro.run", *others)) == {}


def test_only_the_mindspore_port_imports_mindspore():
    """The port runs in its own venv (.venv-ms); the torch path imports neither it nor MindSpore, except
    where framework=mindspore asks for it: the port's adapter, imported inside a function."""
    outside = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "mindspore"]
    forbidden = ("mindspore", "symtime_repro.mindspore")
    allowed = ("symtime_repro.mindspore.adapter", "symtime_repro.mindspore.bench")

    def reaches_mindspore(modules: set[str]) -> list[str]:
        return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))

    at_import = {str(p.relative_to(REPO)): reaches_mindspore(imports(p, top_level=True)) for p in outside}
    assert {k: v for k, v in at_import.items() if v} == {}
    lazily = {str(p.relative_to(REPO)): [m for m in reaches_mindspore(imports(p)) if not m.startswith(allowed)]
              for p in outside}
    assert {k: v for k, v in lazily.items() if v} == {}


def test_the_rules_see_real_imports():
    # The checker resolves relative imports: the run does import the loop, a task its dataset family.
    assert "symtime_repro.training" in imports(PACKAGE / "run.py")
    assert "symtime_repro.datasets.csv_series" in imports(PACKAGE / "tasks" / "long_term.py")
    assert offending("run", ("symtime_repro.training",)) != {}
    # framework=mindspore reaches the port from the run, inside a function only.
    assert "symtime_repro.mindspore.adapter" in imports(PACKAGE / "run.py")
    assert "symtime_repro.mindspore.adapter" not in imports(PACKAGE / "run.py", top_level=True)


def test_no_code_outside_tasks_names_a_task_module():
    """Only make_task finds a task module (by the name in the config); nothing imports one."""
    outside = [p for p in PACKAGE.rglob("*.py") if "tasks" not in p.relative_to(PACKAGE).parts]
    bad = {str(p.relative_to(REPO)): sorted(imports(p) & set(TASKS)) for p in outside if imports(p) & set(TASKS)}
    assert bad == {}


def test_the_command_line_config_and_report_answer_without_torch():
    modules = ["symtime_repro.__main__", "symtime_repro.config", "symtime_repro.from_checkpoint",
               "symtime_repro.tasks", "symtime_repro.tasks.facts", "symtime_repro.data.cli",
               "symtime_repro.metrics.m4", "symtime_repro.report", "symtime_repro.search", "symtime_repro.sweep_report"]
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print('torch' in sys.modules or 'optuna' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"SYMTIME_REPRO_ALLOCATOR": "system", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


def test_trackers_load_only_when_chosen():
    """The tracking package (the loop imports its base, Hydra its sweep callback on every command) loads
    neither torch nor MLflow nor TensorBoard when imported; each tracker imports its library inside itself."""
    modules = ["symtime_repro.tracking", "symtime_repro.tracking.base", "symtime_repro.tracking.sweep_callback"]
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in ('torch', 'mlflow', 'tensorboard') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"SYMTIME_REPRO_ALLOCATOR": "system", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
    for tracker in ("mlflow_tracker", "tensorboard_tracker"):
        at_import = imports(PACKAGE / "tracking" / f"{tracker}.py", top_level=True)
        assert not [m for m in at_import if m.split(".")[0] in ("torch", "mlflow", "tensorboard")], tracker
