"""plots/*.png and report.md's Plots section: loss curves, test windows, ours vs reference. Optional:
the report is complete without matplotlib, which is imported only when plots are drawn."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..files import atomic_write_bytes
from . import task_facts
from .grouping import Group, run_sort_key
from .runs import PLOTS_DIR, Run

NO_MATPLOTLIB_NOTE = "Plots skipped: matplotlib is not installed (`pip install matplotlib`)."


def load_matplotlib():
    """matplotlib's Figure class with the file-only Agg backend, or None when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # no display needed; never opens a window
    from matplotlib.figure import Figure

    return Figure


def safe_name(text: str) -> str:
    """A file name from a run's path or a label: letters, digits, '.', '_' and '-' only."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name or "run"


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv as columns of floats (empty cells become NaN)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, cell in row.items():
            try:
                columns.setdefault(key, []).append(float(cell))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(math.nan)
    return columns


def plot_history(Figure, run: Run, path: Path) -> bool:
    from matplotlib.ticker import MaxNLocator

    history = read_history(run.path / "history.csv")
    if not history.get("epoch"):
        return False
    figure = Figure(figsize=(5, 3.2), layout="constrained")
    ax = figure.subplots()
    epochs = history["epoch"]
    shown = []
    for column, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        if column in history:
            ax.plot(epochs, history[column], marker="o", label=label)
            shown += [(e, v) for e, v in zip(epochs, history[column]) if math.isfinite(v)]
    if len(epochs) <= SHORT_HISTORY:
        _label_few_points(ax, shown, len(epochs))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(f"{run.task} {run.dataset} {run.setting} (seed {run.seed})".replace("  ", " "), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(figure, path)
    return True


SHORT_HISTORY = 2  # epochs up to which the loss plot writes the values on its points


def _label_few_points(ax, points: Sequence[tuple[float, float]], epochs: int) -> None:
    """One or two epochs: matplotlib would zoom around the points (ticks 0.945-1.05 for one value);
    write each value on its point and start the loss axis at 0, so the plot reads at a glance."""
    for epoch, value in points:
        ax.annotate(f"{value:.4g}", (epoch, value), textcoords="offset points", xytext=(6, 4), fontsize=8)
    values = [v for _, v in points]
    if values and min(values) >= 0:
        ax.set_ylim(0, max(values) * 1.25 or 1.0)
    ax.set_xlim(0.5, epochs + 0.5)
    ax.set_xticks(range(1, epochs + 1))


def plot_samples(Figure, run: Run, path: Path, windows: int = 3) -> bool:
    """Truth vs prediction on the first test windows, last channel; for a masked reconstruction the hidden
    points (the only ones scored) are marked."""
    with np.load(run.path / "test_samples.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    truth, pred = arrays["y"], arrays["pred"]
    count = min(windows, truth.shape[0])
    if count == 0:
        return False
    columns = arrays.get("columns")
    channel = str(columns[-1]) if columns is not None and len(columns) else f"channel {truth.shape[-1] - 1}"
    figure = Figure(figsize=(9, 2.4 * count), layout="constrained")
    axes = np.atleast_1d(figure.subplots(count, 1, squeeze=False)[:, 0])
    masked = task_facts.plot_kind(run.task) == task_facts.MASKED_WINDOWS
    for i, ax in enumerate(axes):
        if masked:
            steps = np.arange(truth.shape[1])
            ax.plot(steps, truth[i, :, -1], color="black", lw=1, label="truth")
            ax.plot(steps, pred[i, :, -1], color="tab:orange", lw=1, label="prediction")
            if "mask" in arrays:
                hidden = arrays["mask"][i, :, -1].astype(bool)
                ax.scatter(steps[hidden], truth[i, hidden, -1], s=14, facecolors="none", edgecolors="tab:red",
                           label="hidden (scored)")
        else:
            horizon = np.arange(truth.shape[1])
            if "x" in arrays:
                history = arrays["x"][i, :, -1]
                ax.plot(np.arange(-len(history), 0), history, color="gray", lw=1, label="input")
            ax.plot(horizon, truth[i, :, -1], color="black", lw=1, label="truth")
            ax.plot(horizon, pred[i, :, -1], color="tab:orange", lw=1, label="forecast")
            ax.axvline(0, color="gray", ls=":", lw=0.8)
        ax.set_title(f"test window {i}, {channel}", fontsize=9)
        ax.set_xlabel("time step" + ("" if masked else " (0 = first forecast step)"), fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    figure.suptitle(f"{run.task} {run.dataset} {run.setting} (seed {run.seed})", fontsize=10)
    _save(figure, path)
    return True


def plot_vs_reference(Figure, task: str, groups: Sequence[Group], path: Path) -> bool:
    """Bars: our mean (± std) next to the reference, per dataset/setting with a reference."""
    metrics = [m for m in task_facts.metrics(task) if any(m in g.references and m in g.stats for g in groups)]
    if not metrics:
        return False
    figure = Figure(figsize=(max(5.0, 1.2 * len(groups) + 2), 3.2 * len(metrics)), layout="constrained")
    axes = np.atleast_1d(figure.subplots(len(metrics), 1, squeeze=False)[:, 0])
    for ax, metric in zip(axes, metrics):
        shown = [g for g in groups if metric in g.references and metric in g.stats]
        x = np.arange(len(shown))
        ours = [g.stats[metric][0] for g in shown]
        errors = [g.stats[metric][1] or 0.0 for g in shown]
        ax.bar(x - 0.2, ours, width=0.4, yerr=errors, capsize=3, label="ours (mean ± std)")
        ax.bar(x + 0.2, [g.references[metric].value for g in shown], width=0.4, label="reference")
        labels = [f"{g.dataset}\n{g.setting}" + (f"\n{g.variant}" if g.variant else "") for g in shown]
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_ylabel(metric + (" (%)" if task_facts.in_percent(task) else ""))
        ax.grid(axis="y", alpha=0.3)
    # One legend below the plots: inside an axes it covers the bars.
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    figure.suptitle(f"{task}: reproduced vs reference", fontsize=10)
    _save(figure, path)
    return True


def _unique(name: str, taken: set[str]) -> str:
    candidate, counter = name, 2
    while candidate in taken:
        candidate = f"{Path(name).stem}-{counter}{Path(name).suffix}"
        counter += 1
    taken.add(candidate)
    return candidate


def make_plots(out: Path, runs: Sequence[Run], groups: Sequence[Group]) -> str:
    """Write the PNGs into ``<out>/plots/`` and return the report's Plots section (relative links)."""
    Figure = load_matplotlib()
    parts = ["## Plots", ""]
    if Figure is None:
        return "\n".join(parts + [NO_MATPLOTLIB_NOTE, ""])
    plots, taken = out / PLOTS_DIR, set()

    def image(title: str, name: str) -> str:
        return f"![{title}]({PLOTS_DIR}/{name})"

    comparison = []
    for task in dict.fromkeys(g.task for g in groups):
        name = _unique(f"{safe_name(task)}_vs_reference.png", taken)
        if plot_vs_reference(Figure, task, [g for g in groups if g.task == task], plots / name):
            comparison.append(image(f"{task} vs reference", name))
    if comparison:
        parts += ["### Reproduced vs reference", ""] + [line + "\n" for line in comparison]

    ordered = sorted(runs, key=run_sort_key)
    curves, samples, notes = [], [], []
    for run in ordered:
        if (run.path / "history.csv").is_file():
            name = _unique(f"{safe_name(run.name)}_loss.png", taken)
            if plot_history(Figure, run, plots / name):
                curves.append(f"{run.name}\n\n{image(run.name + ' loss', name)}\n")
        if task_facts.plot_kind(run.task) is not None and (run.path / "test_samples.npz").is_file():
            name = _unique(f"{safe_name(run.name)}_test_windows.png", taken)
            try:
                if plot_samples(Figure, run, plots / name):
                    samples.append(f"{run.name}\n\n{image(run.name + ' test windows', name)}\n")
            except (OSError, ValueError, KeyError, IndexError) as exc:  # a damaged npz must not sink the report
                notes.append(f"- {run.name}: test_samples.npz not plotted ({type(exc).__name__}: {exc})")
    if curves:
        parts += ["### Loss curves", ""] + curves
    if samples:
        parts += ["### Test windows (first 3, last channel)", ""] + samples
    if notes:
        parts += notes + [""]
    if len(parts) == 2:
        parts += ["Nothing to plot (no history.csv, test_samples.npz or reference match).", ""]
    return "\n".join(parts)

