"""plots/*.png and report.md's Plots section: loss curves, test windows and M4 series, confusion
matrices, anomaly energy over time, ours vs reference. Optional:
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
    """Training and validation loss per epoch on one axis: whole-epoch ticks, a marker on every
    epoch, a log scale when the losses span orders of magnitude, and the run's best epoch marked."""
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
    values = [v for _, v in shown]
    log_scale = bool(values) and min(values) > 0 and max(values) / min(values) >= LOG_SPAN
    if log_scale:
        ax.set_yscale("log")
    if len(epochs) <= SHORT_HISTORY:
        _label_few_points(ax, shown, len(epochs), zero_based=not log_scale)
    else:
        _whole_epoch_ticks(ax, epochs)
    _mark_best_epoch(ax, run, history)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss" + (" (log scale)" if log_scale else ""))
    ax.set_title(f"{run.task} {run.dataset} {run.setting} (seed {run.seed})".replace("  ", " "), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both" if log_scale else "major")
    _save(figure, path)
    return True


SHORT_HISTORY = 2  # epochs up to which the loss plot writes the values on its points
LOG_SPAN = 30.0  # largest / smallest loss from which the loss axis is logarithmic


def _label_few_points(ax, points: Sequence[tuple[float, float]], epochs: int, zero_based: bool = True) -> None:
    """One or two epochs: matplotlib would zoom around the points (ticks 0.945-1.05 for one value);
    write each value on its point and start the loss axis at 0, so the plot reads at a glance."""
    for epoch, value in points:
        ax.annotate(f"{value:.4g}", (epoch, value), textcoords="offset points", xytext=(6, 4), fontsize=8)
    values = [v for _, v in points]
    if zero_based and values and min(values) >= 0:
        ax.set_ylim(0, max(values) * 1.25 or 1.0)
    ax.set_xlim(0.5, epochs + 0.5)
    ax.set_xticks(range(1, epochs + 1))


def _whole_epoch_ticks(ax, epochs: Sequence[float]) -> None:
    """Epochs are whole numbers: a tick on each up to 10 epochs, else whole-number ticks matplotlib spaces."""
    from matplotlib.ticker import MaxNLocator

    last = int(max(epochs))
    if last <= 10:
        ax.set_xticks(range(1, last + 1))
        ax.set_xlim(0.5, last + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _mark_best_epoch(ax, run: Run, history: dict[str, list[float]]) -> None:
    """A dotted line at the epoch whose weights were tested (metrics.json's best_epoch, chosen on the
    monitored validation metric, which for some tasks is not the loss)."""
    best = run.metrics.get("best_epoch")
    if not isinstance(best, (int, float)) or isinstance(best, bool) or best not in history["epoch"]:
        return
    monitor = str(run.metrics.get("monitor") or "loss")
    label = f"best epoch {int(best)}" + ("" if monitor == "loss" else f" (by validation {monitor})")
    ax.axvline(best, color="tab:green", ls=":", lw=1.2, label=label)
    row = history["epoch"].index(best)
    if "val_loss" in history and math.isfinite(history["val_loss"][row]):
        # A ring around the validation point, not a marker over it (one epoch: it would hide the point).
        ax.plot([best], [history["val_loss"][row]], marker="o", ms=13, mfc="none", mec="tab:green", mew=1.5,
                ls="none", zorder=3)


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
    series = arrays.get("series")  # one series per sample (M4): named by its id
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
                ax.plot(np.arange(-len(history), 0), history, color="gray", lw=1, label="input (history tail)")
            ax.plot(horizon, truth[i, :, -1], color="black", lw=1, label="truth")
            ax.plot(horizon, pred[i, :, -1], color="tab:orange", lw=1, label="forecast")
            ax.axvline(0, color="gray", ls=":", lw=0.8)
        ax.set_title(f"series {series[i]}" if series is not None else f"test window {i}, {channel}", fontsize=9)
        ax.set_xlabel("time step" + ("" if masked else " (0 = first forecast step)"), fontsize=8)
        ax.grid(alpha=0.3)
    # One legend under the plots: inside an axes it covers the start of the input or the truth.
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize=8)
    figure.suptitle(f"{run.task} {run.dataset} {run.setting} (seed {run.seed})", fontsize=10)
    _save(figure, path)
    return True


PREDICTIONS_FILE = "test_predictions.npz"  # true and predicted class per test case (docs/contract.md)
SCORES_FILE = "anomaly_scores.npz"  # anomaly energy, labels, flags and threshold per test point


def confusion_counts(label: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """[true class, predicted class] -> number of test cases."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(label, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return counts


def plot_confusion(Figure, run: Run, path: Path) -> bool:
    """Counts of (true, predicted) class over the scored test cases, coloured by the share of the
    true class (each row sums to 1, so a small class reads as clearly as a large one)."""
    with np.load(run.path / PREDICTIONS_FILE, allow_pickle=False) as data:
        label, pred, names = data["label"], data["pred"], [str(c) for c in data["classes"]]
    if not len(label):
        return False
    counts = confusion_counts(label, pred, len(names))
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(12.0, 2.2 + 0.45 * len(names))
    figure = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names, rotation=90 if max(map(len, names)) > 3 else 0, fontsize=8)
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if len(names) <= 30:  # beyond, the numbers would not fit in their cells
        size = 8 if len(names) <= 12 else 6
        for (row, column), count in np.ndenumerate(counts):
            if count:
                ax.text(column, row, str(count), ha="center", va="center", fontsize=size,
                        color="white" if shares[row, column] > 0.5 else "black")
    correct, total = int(np.trace(counts)), int(counts.sum())
    ax.set_title(f"{run.dataset} (seed {run.seed}): accuracy {100 * correct / total:.2f} % "
                 f"({correct} of {total} test cases)", fontsize=9)
    _save(figure, path)
    return True


MAX_PLOTTED_POINTS = 5000  # a longer series is drawn as this many bins (each its largest energy, any flag)


def _binned(time: np.ndarray, energy: np.ndarray, flags: dict[str, np.ndarray], bins: int):
    """For the plot only: ``bins`` consecutive groups of points, each drawn at its first point with
    its largest energy (spikes survive) and a flag set when any point in it has it."""
    edges = np.linspace(0, len(time), bins + 1).astype(np.int64)[:-1]
    return (time[edges], np.maximum.reduceat(energy, edges),
            {k: np.maximum.reduceat(v, edges) for k, v in flags.items()})


STRIPS_TOP = 0.085  # the flag strips fill the bottom of the energy plot up to this fraction of its height


def _room_below(ax, fraction: float, log: bool) -> None:
    """Lower the y axis so that the data starts above ``fraction`` of the height (the strips' room)."""
    low, high = ax.get_ylim()
    if log:
        low, high = math.log10(low), math.log10(high)
    low -= fraction * (high - low) / (1 - fraction)
    ax.set_ylim(10 ** low if log else low, 10 ** high if log else high)


def plot_anomaly_scores(Figure, run: Run, path: Path) -> bool:
    """The test energy over time against the threshold, labelled anomalies shaded, the points the
    threshold flagged (before and after point adjustment) as strips under the curve."""
    with np.load(run.path / SCORES_FILE, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    energy = arrays["energy"].astype(np.float64)
    # "time" only when the scored points have gaps; else they run on from "start".
    time = arrays["time"] if "time" in arrays else int(arrays.get("start", 0)) + np.arange(len(energy))
    if not len(time):
        return False
    threshold = float(arrays["threshold"])
    flags = {k: arrays[k].astype(np.int8) for k in ("label", "pred", "adjusted") if k in arrays}
    binned = len(time) > MAX_PLOTTED_POINTS
    if binned:
        time, energy, flags = _binned(time, energy, flags, MAX_PLOTTED_POINTS)
    figure = Figure(figsize=(11, 3.6), layout="constrained")
    ax = figure.subplots()
    ax.plot(time, energy, color="black", lw=0.6, label="energy" + (" (largest per bin)" if binned else ""))
    ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    positive = energy[energy > 0]
    if len(positive) and positive.max() / max(positive.min(), 1e-30) >= 1e3:
        ax.set_yscale("log")  # a few huge errors would flatten everything else
        ax.set_ylabel("energy (log scale)")
    else:
        ax.set_ylabel("energy")
    _room_below(ax, STRIPS_TOP, log=ax.get_yscale() == "log")
    band = ax.get_xaxis_transform()  # x in data, y in axes fractions: shading spans the height
    if "label" in flags:
        ax.fill_between(time, 0, 1, where=flags["label"] > 0, transform=band, step="post", color="tab:orange",
                        alpha=0.25, lw=0, label="labelled anomaly")
    strips = (("pred", "flagged (energy > threshold)", "tab:red", (0.0, 0.04)),
              ("adjusted", "flagged after point adjustment", "tab:purple", (0.045, STRIPS_TOP)))
    for key, label, color, (low, high) in strips:
        if key in flags:  # a tick per flagged point: a lone point stays visible (a filled area of it is < 1 px)
            ax.vlines(time[flags[key] > 0], low, high, transform=band, color=color, lw=0.8, label=label)
    ax.set_xlim(time[0], time[-1])
    ax.set_xlabel("test time step")
    ax.grid(alpha=0.3)
    figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=5, fontsize=7)  # off the curve
    m = run.metrics
    names = {"f1": "F1", "precision": "precision", "recall": "recall"}
    scores = ", ".join(f"{names[k]} {100 * m[k]:.1f} %" for k in names if isinstance(m.get(k), float))
    scoring = str(arrays.get("scoring", ""))
    ax.set_title(f"{run.dataset} (seed {run.seed}): {scores}" + (f"; {scoring} scoring" if scoring else "") +
                 ("; energy = largest over the windows holding a point" if scoring == "official" else ""), fontsize=9)
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
    # Per run: (file it needs, file-name suffix, plotter, report section). Which plots a run gets
    # follows from the files its task wrote, so no task is named here.
    per_run = [
        ("history.csv", "loss", plot_history, "Loss curves"),
        ("test_samples.npz", "test_windows", plot_samples, "Test windows and series (3 kept, last channel)"),
        (PREDICTIONS_FILE, "confusion", plot_confusion, "Confusion matrices"),
        (SCORES_FILE, "anomaly_scores", plot_anomaly_scores, "Anomaly energy over time"),
    ]
    sections: dict[str, list[str]] = {title: [] for *_, title in per_run}
    notes = []
    for run in ordered:
        for needed, suffix, plotter, title in per_run:
            if not (run.path / needed).is_file():
                continue
            if plotter is plot_samples and task_facts.plot_kind(run.task) is None:
                continue
            name = _unique(f"{safe_name(run.name)}_{suffix}.png", taken)
            try:
                if plotter(Figure, run, plots / name):
                    sections[title].append(f"{run.name}\n\n{image(run.name + ' ' + suffix.replace('_', ' '), name)}\n")
            except (OSError, ValueError, KeyError, IndexError) as exc:  # a damaged file must not sink the report
                notes.append(f"- {run.name}: {needed} not plotted ({type(exc).__name__}: {exc})")
    for title, images in sections.items():
        if images:
            parts += [f"### {title}", ""] + images
    if notes:
        parts += notes + [""]
    if len(parts) == 2:
        parts += [f"Nothing to plot (no history.csv, test_samples.npz, {PREDICTIONS_FILE}, {SCORES_FILE} or reference match).", ""]
    return "\n".join(parts)

