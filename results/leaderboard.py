"""The leaderboard: models x (task, shots) with mean ± std over seeds of each task's headline metric, via pandas."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby

import pandas as pd

from evals.errors import ConfigError, DataError, UnknownNameError
from metrics.stats import mean_std
from results.records import MODEL_IDENTITY, CellRecord, describe_differences, differing_fields, index_unique

ROW = ("model", "prompt_format", "selection")  # one leaderboard row per model, prompt format and shot selection
COLUMNS = ("model", "prompt_format", "selection", "task", "metric", "shots", "mean", "std", "n")
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


def summarize(records: Sequence[CellRecord], metrics: Sequence[str] = (), allow_mixed_protocols: bool = False) -> pd.DataFrame:
    """One row per (model, prompt format, selection, task, shots): the chosen metric's mean, sample std and seed count."""
    index_unique(records, lambda r: (*r.key, r.prompt_format))
    if not allow_mixed_protocols:
        check_protocols(records)
    chosen = {task: column_metric(task, list(group), metrics) for task, group in grouped(records, lambda r: r.task)}
    rows = []
    for (model, fmt, selection, task, shots), cells in grouped(records, lambda r: (r.model, r.prompt_format, r.selection, r.task, r.shots)):
        metric = chosen[task]
        mean, std = mean_std([metric_value(r, metric) for r in cells])
        rows.append((model, fmt, selection, task, metric, shots, mean, std, len(cells)))
    return pd.DataFrame(rows, columns=list(COLUMNS))


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
    """Rows (model, format, selection) x columns (task, metric, shots) of `mean ± std` text; `-` where a row has no cell."""
    def cell(row) -> str:
        text = f"{row['mean']:.2f} {plus_minus} {row['std']:.2f}"
        return text if seeds is not None else f"{text} (n={row['n']})"

    table = summary.assign(score=summary.apply(cell, axis=1))
    table = table.pivot(index=list(ROW), columns=["task", "metric", "shots"], values="score").fillna("-")
    table.index.names = ["model", "format", "selection"]
    return table.sort_index(axis=1, level=["task", "shots"])


def note(summary: pd.DataFrame, seeds: int | None) -> str:
    over = f"{seeds} seed{'s' if seeds != 1 else ''}" if seeds is not None else "seeds (n per cell)"
    metrics = ", ".join(f"{task} {metric}" for task, metric in sorted(set(zip(summary["task"], summary["metric"]))))
    return f"Scores (0-100): mean ± sample std over {over}. Metric per task: {metrics}."


def markdown(summary: pd.DataFrame, seeds: int | None) -> str:
    """A pipe table (pandas' to_markdown needs `tabulate`, and the layout is simple enough to write here)."""
    table = wide(summary, seeds)
    header = [*table.index.names, *(f"{task} {shots}-shot" for task, _, shots in table.columns)]
    lines = [row_line(header), row_line(["---"] * len(table.index.names) + ["---:"] * len(table.columns))]
    lines += [row_line([*labels, *values]) for labels, values in zip(table.index, table.to_numpy())]
    return "\n".join(lines) + f"\n\n{note(summary, seeds)}\n"


def row_line(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def latex(summary: pd.DataFrame, seeds: int | None) -> str:
    """A booktabs tabular (pandas Styler; row labels repeated, not \\multirow), labels escaped for LaTeX, the note as a comment."""
    table = wide(summary, seeds, plus_minus="$\\pm$")
    styler = table.style.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    body = styler.to_latex(hrules=True, multicol_align="c", sparse_index=False, column_format="lll" + "r" * len(table.columns))
    return f"% {note(summary, seeds)}\n{body}"


def html(summary: pd.DataFrame, seeds: int | None) -> str:
    table = wide(summary, seeds).to_html(border=0, classes="leaderboard")
    return f"{table}\n<p>{note(summary, seeds)}</p>\n"
