"""Pairing two cells' per-sample records by query id: what a paired test of two runs (or of 0 and k shots) compares."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.errors import DataError, EvalsError
from evals.records import Example
from tasks.base import read_jsonl, require, require_id

RECORD_SUFFIX = ".json"
SAMPLES_SUFFIX = ".samples.jsonl"


def samples_file(record_path: Path) -> Path:
    """The per-sample file written beside a cell record (results.store: `X.json` -> `X.samples.jsonl`)."""
    path = Path(record_path)
    return path.with_name(path.name.removesuffix(RECORD_SUFFIX) + SAMPLES_SUFFIX)


@dataclass(frozen=True)
class CellSamples:
    """One cell's per-sample scores and predictions by query id, as read from its samples file."""

    path: Path
    scores: Mapping[str, float]
    predictions: Mapping[str, Any]

    def mean(self) -> float:
        return math.fsum(self.scores.values()) / len(self.scores)


def read_samples(record_path: Path) -> CellSamples:
    """The samples beside a record; a missing file, a line without a finite `score` or a repeated id is one line."""
    path = samples_file(record_path)
    if not path.is_file():
        raise DataError(f"{record_path}: its per-sample file {path.name} is not beside it (a paired test needs each "
                        "query's score; a baseline written by --update has records only)")
    return checked_samples(path, read_jsonl(path))


def checked_samples(path: Path, lines: list[tuple[int, Any]]) -> CellSamples:
    """The samples file's lines (numbered, as read_jsonl gives them) checked: each an id and a finite score, no id
    twice (the viewer reads a file once and checks it here)."""
    scores: dict[str, float] = {}
    predictions: dict[str, Any] = {}
    for number, line in lines:
        where = f"line {number}"
        query = require_id(line, "id", path, where)
        score = require(line, "score", path, where)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise DataError(f"{path}: {where}: field 'score' is {score!r}, not a finite number")
        if query in scores:
            raise DataError(f"{path}: {where}: id {query} appears twice")
        scores[query], predictions[query] = float(score), line.get("prediction")
    if not scores:
        raise DataError(f"{path}: no samples")
    return CellSamples(path, scores, predictions)


@dataclass(frozen=True)
class Pairing:
    """Two cells' samples matched by id (sorted); `left_out` counts the ids only one side had (with `common_only`)."""

    ids: tuple[str, ...]
    a: CellSamples
    b: CellSamples
    left_out: int

    @property
    def scores_a(self) -> list[float]:
        return [self.a.scores[i] for i in self.ids]

    @property
    def scores_b(self) -> list[float]:
        return [self.b.scores[i] for i in self.ids]

    def note(self) -> str | None:
        if not self.left_out:
            return None
        return (f"note: {self.left_out} samples left out (in only one of {self.a.path} and {self.b.path}); "
                f"compared the {len(self.ids)} ids both have")


def pair_samples(a_record_path: Path, b_record_path: Path, common_only: bool = False) -> Pairing:
    """Match the two cells' samples by id. An id that only one side has is an error naming both files (the runs did
    not score the same queries), unless `common_only` asks to compare the ids both have."""
    return match_samples(read_samples(a_record_path), read_samples(b_record_path), common_only)


def match_samples(a: CellSamples, b: CellSamples, common_only: bool = False) -> Pairing:
    """`pair_samples` on samples already read (the viewer pairs each cell with several others, reading it once)."""
    only_a, only_b = sorted(a.scores.keys() - b.scores.keys()), sorted(b.scores.keys() - a.scores.keys())
    if (only_a or only_b) and not common_only:
        first = only_a[0] if only_a else only_b[0]
        raise DataError(f"the samples differ: {len(only_a)} ids only in {a.path}, {len(only_b)} only in {b.path} "
                        f"(first: {first}); pass --common-ids to compare the ids both have")
    ids = tuple(sorted(a.scores.keys() & b.scores.keys()))
    if not ids:
        raise DataError(f"{a.path} and {b.path} have no query id in common")
    return Pairing(ids, a, b, len(only_a) + len(only_b))


def paired_samples(a_record_path: Path, b_record_path: Path, *, common_only: bool = False,
                   note: Callable[[str], Any] = lambda text: print(text, file=sys.stderr)) -> tuple[list[str], list[float], list[float]]:
    """(ids, scores of A, scores of B) of two cells' samples matched by id, sorted by id (the shared contract);
    with `common_only`, `note` is told how many samples were left out."""
    pairing = pair_samples(a_record_path, b_record_path, common_only)
    if pairing.note():
        note(pairing.note())
    return list(pairing.ids), pairing.scores_a, pairing.scores_b


def query_examples(task_name: str, split: str, data_dir: Path | None) -> tuple[dict[str, Example] | None, str]:
    """The task's query examples by id (their images and references), or None and why: a paired test needs them to
    group queries by image and to recompute a corpus metric, and a record holds neither."""
    from evals.registry import TASKS

    try:
        task = TASKS.get(task_name)
        examples = task.read(task.source(data_dir), split)
    except EvalsError as error:
        return None, f"task data not read ({error})"
    return {e.id: e for e in examples}, ""


def image_groups(ids: tuple[str, ...], examples: Mapping[str, Example] | None) -> list[str] | None:
    """Each query's group, by the rule a cell's own intervals use (evals.intervals.image_groups: its first image,
    where some image serves several queries), so the paired bootstrap redraws an image with all its questions; None
    where every query has its own image or the examples are not known."""
    from evals.intervals import image_groups as groups_of

    if examples is None or any(i not in examples for i in ids):
        return None
    image_of = groups_of([examples[i] for i in ids])
    return None if image_of is None else [image_of[i] for i in ids]
