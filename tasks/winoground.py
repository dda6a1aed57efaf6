"""Winoground (Thrush et al. 2022, arXiv 2204.03162): match two images with two captions made of the same
words, zero-shot; each image scores both captions by log-likelihood, judged by the text, image and group
conditions (strict: a tie counts as wrong).

Layout (facebook/winoground `data/`): `examples.jsonl`, one object a line with `id`, `caption_0`, `caption_1`,
`image_0`, `image_1` (file stems) and tags (`tag`, `secondary_tag`, `collapsed_tag`, `num_main_preds`);
images `images/<stem>.png`. The Hugging Face copy has the same columns with the images inline.
Winoground has only a `test` split, so support and query are the same split (the support is never shown:
the benchmark is zero-shot only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.records import Example, ImageRef
from evals.registry import TASKS
from metrics.ranking import PairScores, winoground_outcome, winoground_scores
from tasks.base import (MetricResult, RankQuery, Task, checked_id, checked_text, optional_text, per_query_mean, read_jsonl, require_id, require_text,
                        some_records)
from tasks.hf import HFSpec, Row

DEMO_ROOT = Path(__file__).parent / "demo" / "winoground"
EXAMPLES = "examples.jsonl"
IMAGE = "images/{stem}.png"
SPLIT = "test"
CAPTIONS = ("caption_0", "caption_1")
IMAGE_COLUMNS = ("image_0", "image_1")
TAGS = ("tag", "secondary_tag", "collapsed_tag")


def winoground_example(example_id: str, images: tuple[ImageRef, ...], captions: Sequence[str], tags: Mapping[str, Any]) -> Example:
    """One Winoground item: its two images, its two captions, and its tags for breakdowns."""
    fields = dict(zip(CAPTIONS, captions))
    meta = {key: str(tags[key]) for key in TAGS if tags.get(key) is not None}
    return Example(example_id, images, fields, tuple(captions), meta)


def load_winoground(root: Path, split: str) -> list[Example]:
    if split != SPLIT:
        raise DataError(f"{root}: Winoground has only the '{SPLIT}' split, not '{split}'")
    path = root / EXAMPLES
    examples, seen = [], set()
    for n, row in some_records(read_jsonl(path), path, "examples"):
        values = [require_id(row, "id", path, f"line {n}"), *(require_text(row, key, path, f"line {n}") for key in (*IMAGE_COLUMNS, *CAPTIONS))]
        if values[0] in seen:
            raise DataError(f"{path}: line {n} repeats id {values[0]}")
        seen.add(values[0])
        images = tuple(ImageRef(stem, root / IMAGE.format(stem=stem)) for stem in values[1:3])
        tags = {key: optional_text(row, key, path, f"line {n}") for key in TAGS if key in row}
        examples.append(winoground_example(values[0], images, values[3:], tags))
    return examples


def hf_example(row: Row) -> Example:
    """A facebook/winoground row; its images get the official file stems as ids."""
    where = row.where()
    example_id = checked_id(row.get("id"), "id", where)
    images = tuple(row.image(column, f"ex_{example_id}_img_{i}") for i, column in enumerate(IMAGE_COLUMNS))
    captions = [checked_text(row.get(key), key, where) for key in CAPTIONS]
    tags = {key: checked_text(row.values[key], key, where) for key in TAGS if row.values.get(key) is not None}  # null: untagged
    return winoground_example(example_id, images, captions, tags)


def image_views(example: Example) -> list[RankQuery]:
    """Two prompts, one per image, each scoring both captions: [[c0|i0, c1|i0], [c0|i1, c1|i1]]; caption i is image
    i's gold one."""
    captions = tuple(example.fields[key] for key in CAPTIONS)
    return [RankQuery(replace(example, id=f"{example.id}/image_{i}", images=(image,)), captions, gold=(captions[i],))
            for i, image in enumerate(example.images)]


def pair_scores(example: Example, scores: Sequence[Sequence[float]]) -> PairScores:
    """The four caption-image scores, named as in the paper: `c1_i0` is caption 1 scored with image 0."""
    (c0_i0, c1_i0), (c0_i1, c1_i1) = scores
    return PairScores(c0_i0=c0_i0, c0_i1=c0_i1, c1_i0=c1_i0, c1_i1=c1_i1)


def as_pair(prediction: PairScores | Mapping[str, float]) -> PairScores:
    """A prediction as made, or as read back from a per-sample record."""
    return prediction if isinstance(prediction, PairScores) else PairScores(**prediction)


def score_winoground(predictions: Mapping[str, Any], examples: Sequence[Example]) -> MetricResult:
    """Text, image and group scores (0-100); a sample scores 100 when its group condition holds."""
    pairs = {e.id: as_pair(predictions[e.id]) for e in examples}
    per_sample = {i: 100.0 if winoground_outcome(p)["group"] else 0.0 for i, p in pairs.items()}
    by_tag: dict[str, list[PairScores]] = {}
    for e in examples:
        if "collapsed_tag" in e.meta:
            by_tag.setdefault(e.meta["collapsed_tag"], []).append(pairs[e.id])
    breakdowns = {"group_by_tag": {tag: winoground_scores(p)["group"] for tag, p in sorted(by_tag.items())}} if by_tag else {}
    outcomes = {i: winoground_outcome(p) for i, p in pairs.items()}
    resampling = {key: per_query_mean({i: 100.0 * o[key] for i, o in outcomes.items()}) for key in ("text", "image", "group")}
    return MetricResult(dict(winoground_scores(list(pairs.values()))), per_sample, breakdowns, resampling)


def first_caption(example: Example) -> str:
    return example.fields[CAPTIONS[0]]


def winoground_task(name: str, **overrides) -> Task:
    """Declare and register a Winoground-format benchmark (zero-shot only)."""
    task = Task(
        name=name, paper="Thrush et al. 2022, arXiv 2204.03162", kind="rank", load=load_winoground,
        support_split=SPLIT, query_split=SPLIT, template="winoground", shot_answer=first_caption,
        rank_queries=image_views, decide=pair_scores, metric=score_winoground, headline="group",
        layout=f"{EXAMPLES}, {IMAGE}", zero_shot_text_shots=0, max_shots=0, submission_format="winoground",
    )
    return TASKS.add(name, replace(task, **overrides))


winoground_task("winoground", data_folder="winoground",
                hf=HFSpec(hf_example, {SPLIT: SPLIT}, IMAGE_COLUMNS, "facebook/winoground"))
winoground_task("demo_match", paper="synthetic swapped-attribute shapes in Winoground format (scripts/demo/winoground.py)",
                default_root=DEMO_ROOT, suites=("demo",))
