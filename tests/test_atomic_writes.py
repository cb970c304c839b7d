"""Every file the runner leaves behind is written atomically (temp file + fsync + rename, in
symtime_repro.files): a crash, a kill or a full disk mid-write never leaves a half-written file
under its final name.

The rule is checked on the source: a direct write anywhere else in the package fails this test,
unless it is one of the justified exceptions below. Writing into an in-memory buffer
(``io.BytesIO``) and handing the bytes to ``files.atomic_write_bytes`` is the usual way round.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO
from symtime_repro import report
from symtime_repro.errors import EXIT_USER_ERROR

PACKAGE = REPO / "symtime_repro"
ATOMIC_MODULE = "files.py"  # the one place that writes files directly, so that nothing else has to

# Direct writes that are fine, keyed by (file under symtime_repro/, enclosing function, call).
JUSTIFIED = {
    # import copies a user's file into a private folder under <root>/.downloads while hashing it;
    # only a copy that passed its checks is renamed into place (_place), so no final name is written.
    ("data/importer.py", "_stage", "os.fdopen"),
    # The same staged copy duplicated, inside that private staging folder, when one file could be
    # several catalog entries; again never a final name.
    ("data/importer.py", "import_path", "shutil.copyfile"),
}

WRITE_MODE = re.compile(r"[rwxabt+U]*[wxa+][rwxabt+U]*")  # "w", "wb", "a", "r+", "x" ...
IN_MEMORY = {"BytesIO", "StringIO"}
COPIES = {"shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.move"}
# Writers that take their destination as an argument: (position, keyword) of that argument.
MODULE_WRITERS = {"np.save": (0, "file"), "np.savez": (0, "file"), "np.savez_compressed": (0, "file"),
                  "numpy.save": (0, "file"), "numpy.savez": (0, "file"), "numpy.savez_compressed": (0, "file"),
                  "torch.save": (1, "f")}
METHOD_WRITERS = {"savefig": (0, "fname"), "to_csv": (0, "path_or_buf")}  # figure.savefig, frame.to_csv


@dataclass(frozen=True)
class DirectWrite:
    path: str  # relative to symtime_repro/
    line: int
    function: str
    call: str  # the called expression as written, e.g. "cache.write_text"

    def __str__(self) -> str:
        return f"symtime_repro/{self.path}:{self.line} ({self.function}): {self.call}(...)"


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    given = _keyword(call, keyword)
    if given is None and len(call.args) > position:
        given = call.args[position]
    return given


def _is_write_mode(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(WRITE_MODE.fullmatch(node.value))


def _own_nodes(scope: ast.AST):
    """The nodes of ``scope`` itself, not those of the functions defined inside it."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def _in_memory_names(scope: ast.AST) -> set[str]:
    """Names bound to ``io.BytesIO()`` / ``io.StringIO()`` in ``scope``: writing to them is no file write."""
    names = set()
    for node in _own_nodes(scope):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            called = ast.unparse(node.value.func).rsplit(".", 1)[-1]
            if called in IN_MEMORY:
                names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    return names


def writes_a_file(call: ast.Call, in_memory: set[str]) -> bool:
    """Whether ``call`` writes to the filesystem itself (rather than through symtime_repro.files)."""
    called = ast.unparse(call.func)
    last = called.rsplit(".", 1)[-1]
    if last in ("open", "fdopen"):  # open(p, "w"), os.fdopen(fd, "wb"), path.open("a") ...
        return any(_is_write_mode(arg) for arg in call.args[:2]) or _is_write_mode(_keyword(call, "mode"))
    if last in ("write_text", "write_bytes") or called in COPIES:
        return True
    target_at = MODULE_WRITERS.get(called) or METHOD_WRITERS.get(last)
    if target_at is None:
        return False
    target = _argument(call, *target_at)
    if target is None or (isinstance(target, ast.Constant) and target.value is None):
        return last != "to_csv"  # to_csv() without a destination returns the text instead
    return not (isinstance(target, ast.Name) and target.id in in_memory)


class _Finder(ast.NodeVisitor):
    def __init__(self, path: str, tree: ast.Module):
        self.path = path
        self.scopes = [("<module>", _in_memory_names(tree))]
        self.found: list[DirectWrite] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scopes.append((node.name, self.scopes[-1][1] | _in_memory_names(node)))
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        function, in_memory = self.scopes[-1]
        if writes_a_file(node, in_memory):
            self.found.append(DirectWrite(self.path, node.lineno, function, ast.unparse(node.func)))
        self.generic_visit(node)


def direct_writes(source: str, path: str = "<snippet>") -> list[DirectWrite]:
    tree = ast.parse(source)
    finder = _Finder(path, tree)
    finder.visit(tree)
    return finder.found


def package_writes() -> list[DirectWrite]:
    found = []
    for file in sorted(PACKAGE.rglob("*.py")):
        relative = file.relative_to(PACKAGE).as_posix()
        if relative != ATOMIC_MODULE:
            found += direct_writes(file.read_text(encoding="utf-8"), relative)
    return found


# --- the rule, on the package's source ---------------------------------------------------------


def test_no_module_writes_files_directly():
    offending = [w for w in package_writes() if (w.path, w.function, w.call) not in JUSTIFIED]
    assert not offending, (
        "these calls write a file directly, so a crash or a full disk mid-write leaves it half-written; "
        "use symtime_repro.files (atomic_write_bytes / write_json / write_csv; serialise into an io.BytesIO "
        "first for savefig, np.savez, torch.save) instead:\n" + "\n".join(f"  {w}" for w in offending))


def test_every_justified_exception_is_still_in_the_code():
    """An exception whose write is gone must leave the list, or it would silently excuse a new one."""
    present = {(w.path, w.function, w.call) for w in package_writes()}
    assert JUSTIFIED <= present, f"no longer in the code, remove from JUSTIFIED: {sorted(JUSTIFIED - present)}"


# --- the checker itself, so that the rule cannot pass by seeing nothing ----------------------

CAUGHT = {
    "open(path, 'w')": 'def f(path):\n    with open(path, "w") as h:\n        h.write("x")\n',
    "open with mode=": 'def f(path):\n    open(path, mode="ab")\n',
    "Path.open": 'def f(path):\n    path.open("w")\n',
    "os.fdopen": 'import os\ndef f(fd):\n    os.fdopen(fd, "wb")\n',
    "write_text": 'def f(path):\n    path.write_text("x")\n',
    "write_bytes": 'def f(path):\n    path.write_bytes(b"x")\n',
    "np.save": 'import numpy as np\ndef f(path, a):\n    np.save(path, a)\n',
    "np.savez": 'import numpy as np\ndef f(path, a):\n    np.savez(path, a=a)\n',
    "np.savez_compressed": 'import numpy as np\ndef f(path, a):\n    np.savez_compressed(file=path, a=a)\n',
    "torch.save": 'import torch\ndef f(path, s):\n    torch.save(s, path)\n',
    "to_csv": 'def f(frame, path):\n    frame.to_csv(path)\n',
    "savefig": 'def f(figure, path):\n    figure.savefig(path)\n',
    "shutil.copy": 'import shutil\ndef f(a, b):\n    shutil.copy(a, b)\n',
    "shutil.copyfile": 'import shutil\ndef f(a, b):\n    shutil.copyfile(a, b)\n',
    "a buffer of another function": 'import io, numpy as np\ndef g():\n    buffer = io.BytesIO()\n'
                                    'def f(buffer, a):\n    np.save(buffer, a)\n',
}

LET_THROUGH = {
    "reading": 'def f(path):\n    with open(path, newline="") as h:\n        return h.read()\n',
    "reading binary": 'def f(path):\n    open(path, "rb")\n',
    "np.savez into a BytesIO": 'import io, numpy as np\ndef f(a):\n    buffer = io.BytesIO()\n'
                               '    np.savez(buffer, a=a)\n    return buffer.getvalue()\n',
    "torch.save into a BytesIO": 'import io, torch\ndef f(s):\n    buffer = io.BytesIO()\n    torch.save(s, buffer)\n',
    "savefig into a BytesIO": 'from io import BytesIO\ndef f(fig):\n    buffer = BytesIO()\n'
                              '    fig.savefig(buffer, format="png")\n',
    "to_csv to a string": 'def f(frame):\n    return frame.to_csv()\n',
    "zip member read": 'def f(archive, info):\n    archive.open(info)\n',
}


@pytest.mark.parametrize("source", CAUGHT.values(), ids=CAUGHT.keys())
def test_the_check_finds_each_kind_of_direct_write(source):
    found = direct_writes(source)
    assert len(found) == 1 and found[0].function == "f", found


@pytest.mark.parametrize("source", LET_THROUGH.values(), ids=LET_THROUGH.keys())
def test_the_check_lets_reads_and_in_memory_writes_through(source):
    assert direct_writes(source) == []


def test_the_failure_names_file_and_line():
    found = direct_writes('x = 1\ndef save(p):\n    p.write_text("x")\n', "report.py")
    assert str(found[0]) == "symtime_repro/report.py:3 (save): p.write_text(...)"


# --- the behaviour: a full disk while results.csv is written -------------------------------------


def _write_run(folder: Path, mse: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(
        {"task": "long_term", "dataset": "ECL", "mode": "train", "status": "completed", "seed": 1,
         "seq_len": 96, "pred_len": 96, "mse": mse, "mae": 0.25, "device": "cpu"}))


def test_a_full_disk_while_writing_results_csv_keeps_the_previous_file_whole(tmp_path, monkeypatch, capsys):
    run, out = tmp_path / "runs" / "ecl96", tmp_path / "report"
    _write_run(run, mse=0.15)
    assert report.main([str(run.parent), "--out", str(out)]) == 0
    before = (out / "results.csv").read_bytes()
    assert b"0.15" in before

    _write_run(run, mse=0.42)  # the next report would say something else
    real_fsync, hit = os.fsync, []

    def fsync_fills_the_disk_on_results_csv(fd):
        # Only results.csv's write fails (its temp file exists right now): the new rows are already in
        # the temp file, so this is a failure in the middle of a real atomic write.
        if list(out.glob(".results.csv.*.tmp")):
            hit.append(fd)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_fills_the_disk_on_results_csv)
    capsys.readouterr()
    assert report.main([str(run.parent), "--out", str(out)]) == EXIT_USER_ERROR
    error = capsys.readouterr().err

    assert hit, "the injected failure never happened: results.csv is no longer written through files.py"
    assert (out / "results.csv").read_bytes() == before  # the previous report's file, whole
    assert [p.name for p in out.rglob("*.tmp")] == []  # and no half-written leftover beside it
    assert "No space left on device" in error and str(out / "results.csv") in error and ".tmp" not in error
