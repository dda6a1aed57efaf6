"""Where results live: one JSON record and one per-sample JSONL per cell, written atomically and durably."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from evals.records import SampleRecord
from results.schema import CellResult
from tasks.base import read_json


def file_safe(text: str) -> str:
    """`text` with every run of characters unsafe in a file name replaced by `--`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", text)


def model_slug(model_id: str) -> str:
    """A folder name for a model id or path. A hub id keeps its organisation (`HuggingFaceM4/idefics-9b` ->
    `HuggingFaceM4--idefics-9b`), as does a relative folder written like one (`ckpts/tiny2` -> `ckpts--tiny2`); a
    folder written as a path from here, home or the root (`./tiny2`, `../tiny2`, `~/tiny2`, `/abs/tiny2`) is its own
    name, `tiny2` (made from the whole text, `./tiny2` gave the hidden folder `.--tiny2`). A hub id cannot start
    with `.` or `~`, so hub ids and registered names keep their folders."""
    if os.path.isabs(model_id) or model_id.startswith((".", "~")):
        model_id = Path(os.path.abspath(os.path.expanduser(model_id))).name
    return file_safe(model_id).strip("-") or "model"


def cell_path(output_dir: Path, model_id: str, task: str, selection: str, shots: int, seed: int) -> Path:
    """A cell's path without suffix: `.json` (record), `.samples.jsonl`, `.journal.jsonl` (while it runs)."""
    return Path(output_dir) / model_slug(model_id) / task / f"{selection}-{shots}shot-seed{seed}"


def cell_stem(output_dir: Path, result: CellResult) -> Path:
    return cell_path(output_dir, result.protocol.model, result.task, result.selection, result.shots, result.seed)


def record_path(stem: Path) -> Path:
    return stem.with_name(stem.name + ".json")


def samples_path(stem: Path) -> Path:
    return stem.with_name(stem.name + ".samples.jsonl")


def write_atomic(path: Path, text: str) -> None:
    """Write via a synced temporary file and rename, so neither a killed run nor a power loss leaves a
    half-written record under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Make a rename or a new file in `folder` survive a power loss (a no-op where folders cannot be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems cannot sync a folder
            os.fsync(handle)
    finally:
        os.close(handle)


def write_cell(output_dir: Path, result: CellResult, samples: Iterable[SampleRecord]) -> Path:
    """Write the samples, then the record (the record's presence means the cell is complete)."""
    stem = cell_stem(output_dir, result)
    lines = (json.dumps(asdict(s), ensure_ascii=False) for s in samples)
    write_atomic(samples_path(stem), "".join(line + "\n" for line in lines))
    record = record_path(stem)
    write_atomic(record, json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n")
    return record


def read_cell(path: Path) -> CellResult:
    """A cell record read back; a malformed or incomplete one is a DataError naming the file."""
    return CellResult.from_dict(read_json(path), str(path))
