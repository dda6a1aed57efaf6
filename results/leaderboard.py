"""The leaderboard: models x (task, shots) with mean ± std over seeds of each task's headline metric, via pandas;
with --uncertainty ci|both, each cell's 95% interval too (results.uncertainty)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import astuple
from html import escape
from itertools import groupby

import pandas as pd

from evals.errors import ConfigError, DataError, UnknownNameError
from metrics.stats import mean_std
from results.records import MODEL_IDENTITY, CellRecord, describe_differences, differing_fields, index_unique
from results.uncertainty import row_uncertainty

ROW = ("model", "prompt_format", "selection")  # one leaderboard row per model, prompt format and shot selection
COLUMNS = ("model", "prompt_format", "selection", "task", "metric", "shots", "mean", "std", "n")
# With --uncertainty ci or both: the 95% interval, how it was made, and over seeds the demonstrations' share of the
# seed mean's variance and its standard error (results.uncertainty.RowUncertainty).
INTERVAL_COLUMNS = ("low", "high", "interval", "demonstration_share", "standard_error")
UNCERTAINTY = ("std", "ci", "both")
FORMATS = ("md", "csv", "latex", "html")
# Fields that follow from a row's prompt format or selection: rows may differ in them and still share a column.
FORMAT_FIELDS = frozenset({"prompt_format", "template_hash", "generation.stop_sequences", "candidate_text"})
SELECTION_FIELDS = frozenset({"selection", "selection_details"})
# Which cells of a column must agree on which fields: those averaged together on everything, rows of one
# format on the template, rows of one selection on its details, and every row on the rest.
PROTOCOL_CHECKS = (
    (("model", "prompt_format", "selection"), frozenset()),
    (("prompt_format",), MODEL_IDENTITY | SELECTION_FIELDS),
    (("selection",), MODEL_IDENTITY | FORMAT_FIELDS),
    ((), MODEL_IDENTITY | FORMAT_FIELDS | SELECTION_FIELDS),
)


def summarize(records: Sequence[CellRecord], metrics: Sequence[str] = (), allow_mixed_protocols: bool = False,
              uncertainty: str = "std") -> pd.DataFrame:
    """One row per (model, prompt format, selection, task, shots): the chosen metric's mean, sample std and seed count;
    with `uncertainty` ci or both, INTERVAL_COLUMNS too."""
    if uncertainty not in UNCERTAINTY:
        raise ConfigError(f"unknown --uncertainty '{uncertainty}' (choose from {', '.join(UNCERTAINTY)})")
    index_unique(records, lambda r: (*r.key, r.prompt_format))
    if not allow_mixed_protocols:
        check_protocols(records)
    chosen = {task: column_metric(task, list(group), metrics) for task, group in grouped(records, lambda r: r.task)}
    rows = []
    for (model, fmt, selection, task, shots), cells in grouped(records, lambda r: (r.model, r.prompt_format, r.selection, r.task, r.shots)):
        metric = chosen[task]
        mean, std = mean_std([metric_value(r, metric) for r in cells])
        extra = astuple(row_uncertainty(cells, metric, mean)) if uncertainty != "std" else ()
        rows.append((model, fmt, selection, task, metric, shots, mean, std, len(cells), *extra))
    summary = pd.DataFrame(rows, columns=list(COLUMNS) + (list(INTERVAL_COLUMNS) if uncertainty != "std" else []))
    summary.attrs["uncertainty"] = uncertainty
    return summary


def grouped(records: Iterable[CellRecord], key) -> list[tuple]:
    """(key, records) groups in key order, so every table and plot comes out the same whatever the file order."""
    ordered = sorted(records, key=lambda r: (key(r), str(r.path)))
    return [(k, list(g)) for k, g in groupby(ordered, key=key)]


def check_protocols(records: Sequence[CellRecord]) -> None:
    """Refuse a column whose cells were produced under different protocols, naming the column and the fields."""
    for within, ignore in PROTOCOL_CHECKS:
        for _, cells in grouped(records, lambda r, within=within: (r.task, r.shots, *(str(getattr(r, f)) for f in within))):
            first = cells[0]
            for other in cells[1:]:
                fields = differing_fields(first.comparable(), other.comparable(), ignore)
                if fields:
                    raise DataError(f"column {first.task} {first.shots}-shot mixes protocols: "
                                    f"{describe_differences(fields, first, other)}; --allow-mixed-protocols puts them together")


def column_metric(task: str, records: Sequence[CellRecord], metrics: Sequence[str]) -> str:
    """The first of `metrics` the task's records have, else the task's headline metric."""
    for name in metrics:
        if any(name in r.scores for r in records):
            return name
    from evals.registry import TASKS

    try:
        return TASKS.get(task).headline
    except UnknownNameError:
        raise DataError(f"{records[0].path}: task '{task}' is not registered here, so its headline metric is unknown; "
                        f"name one with --metric (it has: {', '.join(sorted(records[0].scores))})") from None


def metric_value(record: CellRecord, metric: str) -> float:
    if metric not in record.scores:
        raise DataError(f"{record.path}: no score '{metric}' (it has: {', '.join(sorted(record.scores))})")
    return record.scores[metric]


def render(summary: pd.DataFrame, table_format: str) -> str:
    """The leaderboard as text in one of FORMATS."""
    if table_format == "csv":
        return summary.to_csv(index=False, float_format="%.4f", lineterminator="\n")
    if table_format not in FORMATS:
        raise ConfigError(f"unknown leaderboard format '{table_format}' (choose from {', '.join(FORMATS)})")
    seeds = common_seed_count(summary)
    if table_format == "md":
        return markdown(summary, seeds)
    if table_format == "latex":
        return latex(summary, seeds)
    return html(summary, seeds)


def common_seed_count(summary: pd.DataFrame) -> int | None:
    counts = set(summary["n"])
    return counts.pop() if len(counts) == 1 else None


def wide(summary: pd.DataFrame, seeds: int | None, plus_minus: str = "±") -> pd.DataFrame:
    """Rows (model, format, selection) x columns (task, metric, shots) of `mean ± std` text (`mean [low, high]` with
    --uncertainty ci, both with both); `-` where a row has no cell."""
    shown = summary.attrs.get("uncertainty", "std")

    def cell(row) -> str:
        text = f"{row['mean']:.2f}" + (f" {plus_minus} {row['std']:.2f}" if shown != "ci" else "")
        if shown != "std":
            text += f" [{row['low']:.2f}, {row['high']:.2f}]" if math.isfinite(row["low"]) else " [n/a]"
        return text if seeds is not None else f"{text} (n={row['n']})"

    table = summary.assign(score=summary.apply(cell, axis=1))
    table = table.pivot(index=list(ROW), columns=["task", "metric", "shots"], values="score").fillna("-")
    table.index.names = ["model", "format", "selection"]
    return table.sort_index(axis=1, level=["task", "shots"])


def note(summary: pd.DataFrame, seeds: int | None) -> str:
    over = f"{seeds} seed{'s' if seeds != 1 else ''}" if seeds is not None else "seeds (n per cell)"
    metrics = ", ".join(f"{task} {metric}" for task, metric in sorted(set(zip(summary["task"], summary["metric"]))))
    shown = summary.attrs.get("uncertainty", "std")
    spread = {"std": "mean ± sample std", "ci": "mean [95% interval]", "both": "mean ± sample std [95% interval]"}[shown]
    text = f"Scores (0-100): {spread} over {over}. Metric per task: {metrics}."
    if shown != "std":
        text += (" Interval: one seed, the cell's percentile bootstrap over queries (by image where queries share one);"
                 " over seeds, mean ± 1.96 x the seed mean's standard error from the demonstration vs query variance split"
                 " of the per-sample scores (n/a: none stored, or a metric that is not a per-sample mean).")
    return text


def split_lines(summary: pd.DataFrame) -> list[str]:
    """Over seeds, for each cell group: the demonstrations' share of the seed mean's variance (the rest: queries)."""
    if summary.attrs.get("uncertainty", "std") == "std":
        return []
    rows = summary[summary["demonstration_share"].notna()]
    return [f"{r.model} ({r.prompt_format}, {r.selection}) {r.task} {r.shots}-shot: demonstrations "
            f"{100 * r.demonstration_share:.0f}%, queries {100 - 100 * r.demonstration_share:.0f}% "
            f"of the seed mean's variance (standard error {r.standard_error:.2f}, {r.n} seeds)" for r in rows.itertuples()]


def markdown(summary: pd.DataFrame, seeds: int | None) -> str:
    """A pipe table (pandas' to_markdown needs `tabulate`, and the layout is simple enough to write here)."""
    table = wide(summary, seeds)
    header = [*table.index.names, *(f"{task} {shots}-shot" for task, _, shots in table.columns)]
    lines = [row_line(header), row_line(["---"] * len(table.index.names) + ["---:"] * len(table.columns))]
    lines += [row_line([*labels, *values]) for labels, values in zip(table.index, table.to_numpy())]
    split = split_lines(summary)
    variance = "\n\nDemonstration vs query variance:\n" + "\n".join(f"- {line}" for line in split) if split else ""
    return "\n".join(lines) + f"\n\n{note(summary, seeds)}{variance}\n"


def row_line(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def latex(summary: pd.DataFrame, seeds: int | None) -> str:
    """A booktabs tabular (pandas Styler; row labels repeated, not \\multirow), labels escaped for LaTeX, the note as a comment."""
    table = wide(summary, seeds, plus_minus="$\\pm$")
    styler = table.style.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    body = styler.to_latex(hrules=True, multicol_align="c", sparse_index=False, column_format="lll" + "r" * len(table.columns))
    split = "".join(f"% {line}\n" for line in split_lines(summary))
    return f"% {note(summary, seeds)}\n{split}{body}"


def html(summary: pd.DataFrame, seeds: int | None) -> str:
    table = wide(summary, seeds).to_html(border=0, classes="leaderboard")
    split = "".join(f"<p>{escape(line)}</p>\n" for line in split_lines(summary))
    return f"{table}\n<p>{note(summary, seeds)}</p>\n{split}"
