"""The report page: the template, style and script (data files beside this module) with the report's data embedded as
JSON, written as one HTML file that opens from disk with no network."""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from results.leaderboard import note, summarize
from results.records import CellRecord, read_records
from results.view.cells import CellSource, TaskData, cell_view, open_cell
from results.view.compare import comparisons
from results.view.thumbnails import THUMBNAIL_SIDE, Thumbnails

MAX_SAMPLES = 5000  # per cell: a file past this grows slow to open; the page notes how many were left out
# In a <script> block the HTML parser ends the element at "</script", and "<!--" changes how it looks for that end:
# with every "<", ">" and "&" of the JSON written as a \u escape, no data can close the block or open a comment.
JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def report_data(paths: Sequence[Path], data_dir: Path | None = None, max_samples: int = MAX_SAMPLES,
                allow_mixed_protocols: bool = False, side: int = THUMBNAIL_SIDE) -> dict[str, Any]:
    """What the page renders from a file: `report_frame`'s parts, each cell's first `max_samples` samples and the
    thumbnails they show."""
    records = sorted_records(paths)
    thumbnails = Thumbnails(side)
    data = TaskData({}, data_dir)
    sources = [open_cell(record, data) for record in records]
    cells = [cell_view(source, thumbnails, max_samples) for source in sources]
    return {**report_frame(records, sources, allow_mixed_protocols), "cells": cells, "images": thumbnails.table()}


def sorted_records(paths: Sequence[Path]) -> list[CellRecord]:
    """The records under `paths` in the report's cell order (the pickers' numbers, the comparisons' indexes)."""
    return sorted(read_records(paths), key=lambda r: (r.key, r.prompt_format, str(r.path)))


def report_frame(records: Sequence[CellRecord], sources: Sequence[CellSource],
                 allow_mixed_protocols: bool = False) -> dict[str, Any]:
    """The parts of the page both modes (a file, --serve) share: the leaderboard rows (results.leaderboard.summarize,
    with the std over seeds and the 95% interval as `evals leaderboard --uncertainty both` gives them) and its note,
    the score-against-shots plot (bands drawn), and the flips between cells of one task (results.view.compare)."""
    summary = summarize(records, allow_mixed_protocols=allow_mixed_protocols, uncertainty="both")
    return {"overview": overview_rows(summary), "overview_note": note(summary, None), "plot": plot_uri(summary),
            "comparisons": comparisons(records, [source.checked for source in sources])}


def overview_rows(summary) -> list[dict[str, Any]]:
    """The leaderboard's long rows as plain JSON values (NaN, a one-seed std, as null)."""
    rows = []
    for row in summary.to_dict(orient="records"):
        rows.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v.item() if hasattr(v, "item") else v)
                     for k, v in row.items()})
    return rows


def plot_uri(summary) -> str:
    """results.plots' score-against-shots figure as an embedded PNG."""
    from results.plots import shot_curves

    buffer = io.BytesIO()
    shot_curves(summary).savefig(buffer, format="png", dpi=80)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def embedded_json(data: Any) -> str:
    """`data` as JSON safe inside a <script type="application/json"> block (see JSON_ESCAPES)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return "".join(JSON_ESCAPES.get(c, c) for c in text) if any(c in text for c in JSON_ESCAPES) else text


def asset(name: str) -> str:
    return files("results.view").joinpath("assets", name).read_text(encoding="utf-8")


def render_page(data: Any, title: str = "evals report") -> str:
    """The template with the title, the style, the script and the data put in (each placeholder once; the data last,
    so a placeholder's name inside the data is never replaced)."""
    from html import escape

    page = asset("report.html").replace("{{title}}", escape(title))
    for placeholder, text in (("/*STYLE*/", asset("report.css")),
                              ("/*SCRIPT*/", asset("report.js"))):
        page = page.replace(placeholder, text, 1)
    return page.replace("/*DATA*/", embedded_json(data), 1)


def build_report(paths: Sequence[Path], output: Path, **options: Any) -> int:
    """Write the report for the records under `paths` to `output`; the file's size in bytes."""
    from evals.paths import write_output

    page = render_page(report_data(paths, **options))
    write_output(output, page, "--output")
    return len(page.encode("utf-8"))

