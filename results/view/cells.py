"""A cell's samples as the page shows them: the interleaved prompt split at its image markers (each marker resolved to
the demonstration's or the query's image), the raw output, the prediction, the references and the score."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.records import IMAGE_MARKER, Example, ImageRef
from results.pairing import CellSamples, checked_samples, query_examples, samples_file
from results.records import CellRecord
from results.view.thumbnails import Thumbnails
from tasks.base import read_jsonl

# The example fields a researcher filters by (the official files' question and answer types, MMBench's category,
# ScienceQA's subject and grade, NoCaps' domain, MathVista's task, Winoground's tag): whichever the task's data has.
TYPE_KEYS = ("question_type", "answer_type", "category", "subject", "grade", "domain", "task", "collapsed_tag")
FULL_CREDIT = 100.0  # scores are on 0-100: a sample is "correct" at full credit, "wrong" at none, else "partial"


@dataclass
class TaskData:
    """A task's examples by id for its support and query splits (None and why where the data cannot be read)."""

    cache: dict[tuple[str, str], tuple[dict[str, Example] | None, str]]
    data_dir: Path | None

    def examples(self, task: str, split: str) -> tuple[dict[str, Example] | None, str]:
        if (task, split) not in self.cache:
            self.cache[(task, split)] = query_examples(task, split, self.data_dir)
        return self.cache[(task, split)]


def outcome(score: float) -> str:
    if score >= FULL_CREDIT - 1e-9:
        return "correct"
    return "wrong" if score <= 0 else "partial"


@dataclass
class CellSource:
    """A cell's header, its samples file's lines and the task data they resolve against: what either mode (one file,
    or served page by page) needs to build any sample's view, read once."""

    header: dict[str, Any]
    notes: list[str]
    lines: Sequence[Mapping[str, Any]]
    task: Any
    queries: Mapping[str, Example]
    support: Mapping[str, Example]
    checked: CellSamples | None = None  # the scores by id, as the pairing module reads them (None: no samples file)

    def view(self, index: int, thumbnails: Thumbnails) -> dict[str, Any]:
        return sample_view(self.lines[index], self.header["task"], self.task, self.queries, self.support, thumbnails)

    def ids(self) -> list[str]:
        """Each line's query id, in order (an indexed file keeps them; a list of lines has them)."""
        kept = getattr(self.lines, "ids", None)
        return list(kept) if kept is not None else [str(line["id"]) for line in self.lines]

    def type_counts(self) -> dict[str, int]:
        """How many samples carry each "key=value" type (the page's type filter offers them)."""
        counts: dict[str, int] = {}
        for sample_id in self.ids():
            for key, value in query_types(self.queries.get(sample_id)).items():
                counts[f"{key}={value}"] = counts.get(f"{key}={value}", 0) + 1
        return dict(sorted(counts.items()))


def query_types(query: Example | None) -> dict[str, str]:
    """The query's values of TYPE_KEYS that its data has."""
    return {key: str(query.meta[key]) for key in TYPE_KEYS if query is not None and query.meta.get(key)}


def samples_lines(path: Path) -> tuple[list[dict[str, Any]], CellSamples]:
    """A samples file's lines, and its scores checked as the pairing module checks them (an id and a finite score
    each, no id twice): the comparisons pair those, with no second read of the file."""
    numbered = read_jsonl(path)
    return [line for _, line in numbered], checked_samples(path, numbered)


def open_cell(record: CellRecord, data: TaskData,
              read_lines: Callable[[Path], tuple[Sequence[Mapping[str, Any]], CellSamples]] = samples_lines) -> CellSource:
    """The cell's samples (read by `read_lines`: all at once, or indexed to be read when shown) and task data; a note
    says what is missing (data, images, samples)."""
    header = {
        "label": record.label, "model": record.model, "task": record.task, "shots": record.shots,
        "selection": record.selection, "seed": record.seed, "kind": str(record.protocol.get("kind", "")),
        "scores": dict(record.scores), "path": str(record.path),
    }
    if not samples_file(record.path).is_file():  # a baseline written by `compare --update`: records only
        return CellSource(header, [f"no per-sample file ({samples_file(record.path).name}) beside the record"], [],
                           None, {}, {})
    lines, checked = read_lines(samples_file(record.path))
    queries, why_queries = data.examples(record.task, str(record.protocol.get("query_split", "")))
    support, why_support = data.examples(record.task, str(record.protocol.get("support_split", "")))
    notes = [f"images and references not shown: {why}" for why in {why_queries, why_support} if why]
    cell = CellSource(header, notes, lines, task_or_none(record.task), queries or {}, support or {}, checked)
    header["type_counts"] = cell.type_counts()
    return cell


def cell_view(cell: CellSource, thumbnails: Thumbnails, max_samples: int) -> dict[str, Any]:
    """The cell's header and its first `max_samples` samples; a note says what is missing (data, images, samples)."""
    notes = list(cell.notes)
    if len(cell.lines) > max_samples:
        notes.append(f"the first {max_samples} of {len(cell.lines)} samples are shown (--max-samples)")
    samples = [cell.view(i, thumbnails) for i in range(min(max_samples, len(cell.lines)))]
    return {**cell.header, "notes": notes, "total": len(cell.lines), "samples": samples}


def task_or_none(name: str):
    from evals.errors import UnknownNameError
    from evals.registry import TASKS

    try:
        return TASKS.get(name)
    except UnknownNameError:
        return None


def sample_view(line: Mapping[str, Any], task_name: str, task, queries: Mapping[str, Example],
                support: Mapping[str, Example], thumbnails: Thumbnails) -> dict[str, Any]:
    """One sample: each prompt as segments (text, or image key / None where unknown), candidates for a ranked task."""
    query = queries.get(str(line["id"]))
    shots = [support.get(str(i)) for i in line.get("shot_ids", [])]
    prompts = line["prompt"] if isinstance(line["prompt"], list) else [line["prompt"]]
    query_images = list(query.images) if query else []
    shot_images = [ref for shot in shots if shot for ref in shot.images] if all(shots) else None
    segments = [prompt_segments(str(text), marker_images(str(text), shot_images, query_images, j, len(prompts)),
                                task_name, thumbnails) for j, text in enumerate(prompts)]
    score = float(line["score"])
    return {
        "id": str(line["id"]), "shot_ids": [str(i) for i in line.get("shot_ids", [])], "prompts": segments,
        "output": line.get("output"), "prediction": line.get("prediction"), "score": score, "outcome": outcome(score),
        "references": list(query.references) if query else None,
        "types": query_types(query),
        "candidates": candidates(task, query, line.get("output")) if task is not None and task.kind == "rank" else None,
    }


def marker_images(text: str, shot_images: list[ImageRef] | None, query_images: list[ImageRef], index: int,
                  prompts: int) -> list[ImageRef | None]:
    """The image behind each `<image>` marker, in order: the demonstrations' images then the query's (at 0 shots the
    text-only demonstrations have none, so the markers are the query's alone); a prompt per image (Winoground) shows
    its own. None where the count does not match (data not read, or a format this reader does not know)."""
    markers = text.count(IMAGE_MARKER)
    own = [query_images[index]] if prompts > 1 and len(query_images) == prompts else query_images
    if markers == len(own):
        return list(own)
    if shot_images is not None and markers == len(shot_images) + len(own):
        return [*shot_images, *own]
    return [None] * markers


def prompt_segments(text: str, images: Sequence[ImageRef | None], task: str, thumbnails: Thumbnails) -> list[dict]:
    """The prompt as alternating text and image segments in reading order."""
    parts = text.split(IMAGE_MARKER)
    segments: list[dict] = [{"text": parts[0]}] if parts[0] else []
    for ref, after in zip(images, parts[1:]):
        segments.append({"image": thumbnails.key(task, ref) if ref else None, "image_id": ref.id if ref else None})
        if after:
            segments.append({"text": after})
    return segments


def candidates(task, query: Example | None, output: Any) -> list[list[dict]] | None:
    """Per prompt, each candidate answer with its log-likelihood, the chosen one (highest) and the gold one (a
    reference, or the prompt's own gold where the task names one) marked; None without the query's data or with an
    output that does not fit its candidates."""
    if query is None or not isinstance(output, list):
        return None
    try:
        rank_queries = list(task.rank_queries(query))
    except (DataError, KeyError, IndexError, ValueError):
        return None
    if len(rank_queries) != len(output):
        return None
    shown = []
    for rank_query, scores in zip(rank_queries, output):
        if not isinstance(scores, list) or len(scores) != len(rank_query.candidates) or not scores:
            return None
        finite = [s if isinstance(s, (int, float)) and math.isfinite(s) else -math.inf for s in scores]
        best = max(range(len(finite)), key=finite.__getitem__)
        gold = query.references if rank_query.gold is None else rank_query.gold
        shown.append([{"text": text, "loglik": score, "chosen": k == best, "gold": text in gold}
                      for k, (text, score) in enumerate(zip(rank_query.candidates, scores))])
    return shown
