"""Where results live: one JSON record and one per-sample JSONL per cell, written atomically."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from evals.records import SampleRecord
from results.schema import CellResult


def file_safe(text: str) -> str:
    """`text` with every run of characters unsafe in a file name replaced by `--`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", text)


def model_slug(model_id: str) -> str:
    """A folder name for a model id or path (`HuggingFaceM4/idefics-9b` -> `HuggingFaceM4--idefics-9b`)."""
    name = Path(model_id).name if os.path.isabs(model_id) else model_id
    return file_safe(name).strip("-") or "model"


def cell_stem(output_dir: Path, result: CellResult) -> Path:
    model = model_slug(result.protocol.model)
    return Path(output_dir) / model / result.task / f"{result.selection}-{result.shots}shot-seed{result.seed}"


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a killed run never leaves a half-written record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_cell(output_dir: Path, result: CellResult, samples: Iterable[SampleRecord]) -> Path:
    """Write the samples, then the record (the record's presence means the cell is complete)."""
    stem = cell_stem(output_dir, result)
    lines = (json.dumps(asdict(s), ensure_ascii=False) for s in samples)
    write_atomic(stem.with_suffix(".samples.jsonl"), "".join(line + "\n" for line in lines))
    record = stem.with_suffix(".json")
    write_atomic(record, json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n")
    return record
