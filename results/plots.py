"""Shot-scaling curves: score against shots per task, one line per model/selection with error bars over seeds (and,
with --uncertainty ci or both, a band for each point's 95% interval)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evals.errors import ConfigError
from results.leaderboard import ROW

COLUMNS_AT_MOST = 3


def shot_curves(summary: pd.DataFrame) -> Figure:
    """One subplot per task (x: shot counts, y: the task's metric), one error-bar line per leaderboard row.

    A pure function of the summary (no pyplot state), so tests can count the lines it drew.
    """
    tasks = sorted(summary["task"].unique())
    ncols = min(COLUMNS_AT_MOST, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    figure = Figure(figsize=(4.2 * ncols, 3.2 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False).flat
    for ax, task in zip(axes, tasks):
        draw_task(ax, summary[summary["task"] == task])
    for ax in list(axes)[len(tasks):]:
        figure.delaxes(ax)
    handles = {h.get_label(): h for ax in figure.axes for h in ax.get_legend_handles_labels()[0]}
    figure.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(3, len(handles)), frameon=False)
    return figure


def draw_task(ax, rows: pd.DataFrame) -> None:
    metric = rows["metric"].iloc[0]
    for key, line in rows.sort_values([*ROW, "shots"]).groupby(list(ROW), sort=True):
        model, prompt_format, selection = key
        bars = ax.errorbar(line["shots"], line["mean"], yerr=line["std"], marker="o", capsize=3,
                           label=f"{model} ({prompt_format}, {selection})")
        if "low" in line:  # --uncertainty ci|both: the interval as a band in the line's colour (gaps where none)
            ax.fill_between(line["shots"], line["low"], line["high"], color=bars.lines[0].get_color(), alpha=0.2)
    ax.set_title(f"{rows['task'].iloc[0]}: {metric}")
    ax.set_xlabel("shots")
    ax.set_ylabel(f"{metric} (0-100)")
    ax.set_xticks(sorted(rows["shots"].unique()))
    ax.grid(alpha=0.3)


# The formats --plot writes, by suffix, each without the metadata that changes from run to run (software version,
# date), so the same numbers give the same file.
PLOT_METADATA = {
    ".png": {"Software": None},
    ".svg": {"Date": None, "Creator": None},
    ".pdf": {"CreationDate": None, "Creator": None, "Producer": None},
}


def check_plot_path(path: Path) -> None:
    """Refuse a plot file whose suffix names no format written here (`out.txt` would hold a PNG under a text name)."""
    if path.suffix.lower() not in PLOT_METADATA:
        raise ConfigError(f"--plot {path}: the suffix must be one of {', '.join(PLOT_METADATA)} (the format written)")


def save_plot(figure: Figure, path: Path) -> None:
    """Write the figure in the format its suffix names (.png, .svg or .pdf)."""
    check_plot_path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format=suffix[1:], dpi=100, metadata=PLOT_METADATA[suffix])


save_png = save_plot  # the earlier name, when PNG was the only format
