"""What `evals tasks` and `evals models` list: one plain record per entry, shown as a table or as JSON.

The table and the JSON are built from the same records, so a script reading `--format json` sees exactly what a
person reads in the table. Name columns never wrap: `evals tasks | grep NAME` must find every name whole at any width.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table


def task_record(name: str, task: Any) -> dict[str, Any]:
    """A task as `evals tasks` shows it (tasks.base.Task)."""
    data = "bundled" if task.default_root else f"DATA_DIR/{task.data_folder}/: {task.layout}"
    return {
        "name": name, "kind": task.kind, "loglik": task.loglik if task.kind == "rank" else None,
        "max_shots": task.max_shots, "metric": task.headline, "metric_variants": sorted(task.metric_variants),
        "support_split": task.support_split, "query_split": task.query_split, "data": data,
        "hub_id": task.hf.hub_id if task.hf is not None and task.hf.hub_id else None, "paper": task.paper,
    }


def task_records() -> list[dict[str, Any]]:
    from evals.registry import TASKS

    return [task_record(name, task) for name, task in TASKS.items()]


def model_records() -> list[dict[str, Any]]:
    """The registered models (`type` "model"), then the model families a folder or hub id is loaded by ("family")."""
    from evals.models.families import families
    from evals.registry import MODELS

    models = [{"type": "model", "name": name, "description": entry.description} for name, entry in MODELS.items()]
    kinds = [{"type": "family", "name": f.name, "model_types": list(f.model_types), "prompt_formats": list(f.formats),
              "model_args": list(f.options), "supports": list(f.supports), "description": f.description}
             for f in families()]
    return models + kinds


def as_json(records: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(records), indent=1, ensure_ascii=False) + "\n"


def table_with(title: str, columns: Sequence[str], whole: Sequence[str], **options: Any) -> Table:
    """A table whose `whole` columns keep every value on one line (names a script greps for) while the others (long
    descriptions) wrap and, past a long word, fold: rich narrows those to fit the width instead.

    No minimum widths on the others: rich narrows the widest columns first and then enforces minimums by widening
    again, past the terminal's width, and the right edge of the table is cut off."""
    table = Table(title=title, **options)
    for column in columns:
        table.add_column(column, **({"no_wrap": True} if column in whole else {"overflow": "fold"}))
    return table


def tasks_table(records: Sequence[dict[str, Any]]) -> Table:
    table = table_with("tasks", ("name", "kind", "metric", "splits (support -> query)", "data", "source"),
                       ("name",), show_lines=True)
    for r in records:
        kind = r["kind"] if r["loglik"] is None else f"rank ({r['loglik']})"
        if r["max_shots"] is not None:
            kind += f", <= {r['max_shots']} shots"
        metric = r["metric"] + "".join(f"\nvariant: {v}" for v in r["metric_variants"])
        data = r["data"] + (f"\nor a Hugging Face dataset ({r['hub_id']})" if r["hub_id"] else "")
        table.add_row(r["name"], kind, metric, f"{r['support_split']} -> {r['query_split']}", data, r["paper"])
    return table


def models_tables(records: Sequence[dict[str, Any]]) -> list[Table]:
    models = table_with("models", ("name", "description"), ("name",))
    for r in (r for r in records if r["type"] == "model"):
        models.add_row(r["name"], r["description"])
    kinds = table_with("model families (--model FOLDER or hub id: picked by config.json model_type)",
                       ("family", "model_type", "prompt formats", "family --model-args", "supports", "description"),
                       ("family",))
    for r in (r for r in records if r["type"] == "family"):
        kinds.add_row(r["name"], ", ".join(r["model_types"]), ", ".join(r["prompt_formats"]),
                      ", ".join(r["model_args"]) or "-", ", ".join(r["supports"]) or "-", r["description"])
    return [models, kinds]
