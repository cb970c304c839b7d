"""``python -m symtime_repro.compare_frameworks [the runner's overrides]``: torch and MindSpore on the
same configuration, side by side.

Runs ``python -m symtime_repro.bench`` twice, ``framework=torch`` then ``framework=mindspore``, each in
a process of its own (MindSpore imported into a torch process slows torch down), and puts the two
bench.json files into one table: throughput, MFU against each process's own matmul peak, peak
memory, first-step (compilation) time, and how far MindSpore's outputs and loss are from torch's on
a fixed batch with the same weights. Writes ``compare.json`` and ``compare.md`` (and each side's
bench.json and log) into ``hydra.run.dir=…`` (default ``outputs/compare/<time>``). No torch, no
MindSpore here: the two benches import them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from .errors import EXIT_RUN_FAILED, EXIT_USER_ERROR, UserError
from .files import atomic_write_bytes
from .frameworks import refusal

REPO = Path(__file__).resolve().parents[1]
TORCH_VENV = ".venv"  # the project's usual venv: the torch side runs there when this one has MindSpore


def split_output_dir(argv: list[str]) -> tuple[list[str], Path]:
    """The overrides both benches get, and the output folder (``hydra.run.dir=``, else a new one)."""
    out = None
    overrides = []
    for arg in argv:
        if arg.startswith("hydra.run.dir="):
            out = Path(arg.partition("=")[2])
        elif arg.lstrip("+").startswith("framework="):
            raise UserError(f"{arg}: this command runs both frameworks; leave framework= out")
        else:
            overrides.append(arg)
    return overrides, out or Path("outputs") / "compare" / time.strftime("%Y-%m-%d_%H-%M-%S")


def torch_python() -> str:
    """The python for the torch side: this one, unless MindSpore is installed here (the MindSpore venv),
    then the project's usual venv, so that torch is timed as users run it."""
    if importlib.util.find_spec("mindspore") is None:
        return sys.executable
    usual = REPO / TORCH_VENV / "bin" / "python"
    if not usual.is_file():
        raise UserError(f"the torch side runs in the project's usual venv and {usual} is missing: "
                        f"create it with `make install`, or type this command in it")
    return str(usual)


def last_error(log: str) -> Optional[str]:
    """The bench's one-line error (after 'error: '), if it printed one."""
    lines = [line.split("error: ", 1)[1] for line in log.splitlines() if "error: " in line]
    return lines[-1].strip() if lines else None


def failure(code: int, log: str, log_path: Path) -> str:
    """Why a bench ended: its own error line, else how it died."""
    if last_error(log):
        return last_error(log)
    if code == -9:  # SIGKILL with no word of its own: on Linux almost always the out-of-memory killer
        return (f"killed (SIGKILL; the kernel's out-of-memory killer, usually: lower trainer.batch_size or the "
                f"model size), see {log_path}")
    if code < 0:
        return f"killed by signal {-code}, see {log_path}"
    return f"exit status {code}, see {log_path}"


def run_side(python: str, framework: str, overrides: list[str], out: Path) -> dict[str, Any]:
    """One bench in its own process; its bench.json, or UserError with its error line."""
    run_dir = out / framework
    log_path = out / f"{framework}.log"
    print(f"{framework}: timing (log: {log_path})", file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)  # each bench sets its own
    result = subprocess.run([python, "-m", "symtime_repro.bench", *overrides, f"framework={framework}",
                             f"hydra.run.dir={run_dir}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    atomic_write_bytes(log_path, result.stdout)  # the side's whole output, kept beside the table
    text = result.stdout.decode(errors="replace")
    if result.returncode != 0:
        raise SideFailed(f"{framework} bench: {failure(result.returncode, text, log_path)}", result.returncode)
    return json.loads((run_dir / "bench.json").read_text())


class SideFailed(UserError):
    """A bench that failed: the command ends with its status (2: refused; a killed one: 3, it had started)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code if code > 0 else EXIT_RUN_FAILED


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_cell(r: dict[str, Any]) -> str:
    mb = f"{r['peak_memory_mb']:,.0f}"
    if r["framework"] == "mindspore" and r["peak_memory_source"].startswith("rss"):
        return f"{mb} (0 on CPU: RSS shown)"
    return f"{mb} ({'RSS' if r['peak_memory_source'] == 'rss' else 'allocator peak'})"


def row(r: dict[str, Any]) -> dict[str, Any]:
    """One framework's line of the table (numbers as measured, for compare.json)."""
    name = r["framework"] + (f" {r['mindspore_version']} ({r['mindspore_mode']})" if r["framework"] == "mindspore"
                             else f" {r['torch']}" + (" (compiled)" if r["compiled"] else " (eager)"))
    return {
        "framework": name, "precision": r["precision"],
        "train_samples_per_second": r["train_samples_per_second"],
        "eval_samples_per_second": r["eval_samples_per_second"],
        "mfu": r["mfu"], "eval_mfu": r["eval_mfu"], "matmul_peak_gflops": r["matmul_peak_flops"] / 1e9,
        "peak_memory_mb": r["peak_memory_mb"], "peak_memory": memory_cell(r),
        "train_first_step_seconds": r["train_first_step_seconds"],
        "eval_first_step_seconds": r["eval_first_step_seconds"],
        "output_max_abs_diff": r.get("output_max_abs_diff"), "loss_abs_diff": r.get("loss_abs_diff"),
    }


def markdown(rows: list[dict[str, Any]], about: dict[str, Any]) -> str:
    head = ["framework", "precision", "train samples/s", "eval samples/s", "MFU train / eval",
            "matmul peak GFLOP/s", "peak memory MB", "first step s (train / eval)",
            "output max abs diff", "loss abs diff"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        diff = "reference" if r["output_max_abs_diff"] is None else f"{r['output_max_abs_diff']:.2e}"
        loss = "reference" if r["loss_abs_diff"] is None else f"{r['loss_abs_diff']:.2e}"
        cells = [r["framework"], r["precision"], f"{r['train_samples_per_second']:,.1f}",
                 f"{r['eval_samples_per_second']:,.1f}", f"{r['mfu']:.1%} / {r['eval_mfu']:.1%}",
                 f"{r['matmul_peak_gflops']:,.1f}", r["peak_memory"],
                 f"{r['train_first_step_seconds']:.2f} / {r['eval_first_step_seconds']:.2f}", diff, loss]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"{about['config']}; {about['device']}; CPU {about['cpu']}, {about['threads']} threads, "
        f"load average {about['load']} at the start.",
        f"Medians of {about['timed_steps']} timed steps after {about['warmup_steps']} warm-up steps; training step = "
        f"forward + backward + Adam step; FLOPs/sample {about['gflops_per_sample']:.3f} GFLOP (torch's counter, "
        f"the same network in both); MFU is against each process's own {about['matmul_size']}^3 matmul peak; "
        f"output/loss differences: MindSpore against torch on {about['parity_samples']} test windows, same weights, "
        f"evaluation mode.",
        f"Command: `{about['command']}`",
    ]
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


def compare(argv: list[str]) -> Path:
    overrides, out = split_output_dir(argv)
    problem = refusal(["framework=mindspore"])  # no MindSpore venv: one line before anything runs
    if problem:
        raise UserError(problem)
    python = torch_python()
    out.mkdir(parents=True, exist_ok=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    sides = [run_side(python, framework, overrides, out) for framework in ("torch", "mindspore")]
    t, m = sides
    about = {
        "config": f"{t['task']} {t['dataset']} {t['model']} (d_model {t['d_model']}, {t['forward_layers']} layers run), "
                  f"seq_len {t['seq_len']}, pred_len {t['pred_len']}, stride {t['stride']}, "
                  f"batch {t['batch_size']} train / {t['eval_batch_size']} eval",
        "device": t["device_name"], "cpu": cpu_model(), "threads": t["threads"], "load": load,
        "warmup_steps": t["warmup_steps"], "timed_steps": t["timed_steps"],
        "gflops_per_sample": t["flops_per_sample"] / 1e9, "matmul_size": t["matmul_size"],
        "parity_samples": m.get("parity_samples"),
        "command": " ".join(["python -m symtime_repro.compare_frameworks", *argv]),
    }
    rows = [row(r) for r in sides]
    from .files import write_json

    write_json(out / "compare.json", {"about": about, "rows": rows, "torch": t, "mindspore": m})
    text = markdown(rows, about)
    atomic_write_bytes(out / "compare.md", text.encode())
    print(text)
    print(f"written: {out / 'compare.md'}, {out / 'compare.json'}", file=sys.stderr)
    return out


def main() -> None:
    try:
        compare(sys.argv[1:])
    except SideFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.code)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
