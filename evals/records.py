"""Typed records passed along the pipeline: examples in, prompts to the model, samples out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

IMAGE_MARKER = "<image>"


@dataclass(frozen=True)
class StoredImage:
    """An image held in a column of a Hugging Face dataset row (hub id or `save_to_disk` folder)."""

    location: str
    split: str
    row: int
    column: str


@dataclass(frozen=True)
class ImageRef:
    """An image by stable id (used for caching and records) and where it is read from: a file, or a
    row of a Hugging Face dataset."""

    id: str
    path: Path | None = None
    stored: StoredImage | None = None


SOURCE_ID = "source_id"


@dataclass(frozen=True)
class Example:
    """One benchmark item: its images, text fields (question, ocr, ...), human references and
    metadata used for score breakdowns (question_type, answer_type, ...)."""

    id: str
    images: tuple[ImageRef, ...]
    fields: Mapping[str, str]
    references: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def source_id(self) -> str:
        """The support example this query was made from (meta `source_id`, e.g. MMBench's circular passes of one
        question), else its own id: shot selection never shows a query its own source as a demonstration."""
        return self.meta.get(SOURCE_ID, self.id)


@dataclass(frozen=True)
class TextSegment:
    text: str


@dataclass(frozen=True)
class ImageSegment:
    image: ImageRef


Segment = Union[TextSegment, ImageSegment]


@dataclass(frozen=True)
class Prompt:
    """An interleaved prompt: text and image segments in reading order, no two text segments adjacent."""

    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        """The prompt as one string with `<image>` where each image goes (what the records show)."""
        return "".join(s.text if isinstance(s, TextSegment) else IMAGE_MARKER for s in self.segments)

    @property
    def images(self) -> tuple[ImageRef, ...]:
        return tuple(s.image for s in self.segments if isinstance(s, ImageSegment))


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings for open-ended tasks (Flamingo/OpenFlamingo: beam search 3, no length penalty)."""

    max_new_tokens: int = 10
    num_beams: int = 3
    length_penalty: float = 0.0
    stop_sequences: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cell:
    """One evaluation cell of a sweep (the model is fixed for a run)."""

    task: str
    shots: int
    selection: str
    seed: int


@dataclass(frozen=True)
class SampleRecord:
    """What happened to one query: the exact prompt, the model's raw output, the scored prediction.

    Generative tasks: `output` is the generated text and `prediction` the postprocessed answer.
    Ranked tasks: `output` holds each candidate's log-likelihood (one list per prompt) and
    `prediction` what the metric reads (label, probability, ranks, pair scores); `prompt` is a
    list when the example is scored under several prompts (Winoground: one per image).
    """

    id: str
    shot_ids: tuple[str, ...]
    prompt: str | list[str]
    output: Any
    prediction: Any
    score: float
    shot_similarities: tuple[float, ...] = ()  # RICES: each shot's cosine similarity to the query
    shots_requested: int = 0  # the shots chosen for the query (text-only ones at 0-shot included)
    shots_delivered: int = 0  # the shots in its prompt: fewer where --fit-context dropped some to fit the context
    image_ids: tuple[str, ...] = ()  # the query's images (task data ids): questions of one image are not independent
