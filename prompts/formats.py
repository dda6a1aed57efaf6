"""Render interleaved few-shot prompts from templates: a pure function of (template, shots, query)."""

from __future__ import annotations

import hashlib
import json
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evals.errors import DataError
from evals.records import IMAGE_MARKER, Example, ImageSegment, Prompt, Segment, TextSegment
from evals.registry import PROMPT_FORMATS

TEMPLATES_DIR = Path(__file__).with_name("templates")
FORMATS_FILE = TEMPLATES_DIR / "formats.toml"
ANSWER_FIELD = "{answer}"


@dataclass(frozen=True)
class PromptTemplate:
    """One task family's template in one format; the query form is derived, never written twice."""

    format: str
    key: str
    example: str
    prefix: str = ""
    stop: tuple[str, ...] = ()
    user_label: str = ""  # a chat format's user label, followed by a space unless an image comes right after it

    @property
    def query(self) -> str:
        """The example template cut right before the answer: the model continues from there."""
        if ANSWER_FIELD not in self.example:
            raise DataError(f"{TEMPLATES_DIR}: template {self.format}.{self.key} has no {ANSWER_FIELD} field")
        return self.example.split(ANSWER_FIELD, 1)[0].rstrip(" ")

    @property
    def closing(self) -> str:
        """The template's fixed text right after the answer, up to the next field or image (e.g. "\n",
        ".\n", "<end_of_utterance>\n"): where a demonstration's answer ends."""
        after = self.example.split(ANSWER_FIELD, 1)[1] if ANSWER_FIELD in self.example else ""
        ends = [at for at in (after.find("{"), after.find(IMAGE_MARKER)) if at != -1]
        return after[: min(ends, default=len(after))].rstrip(" ")

    def continuation(self, answer: str, closed: bool = True) -> str:
        """What a ranked task scores after the query: the spaces the query dropped, the answer, and (closed)
        the template's closing text. Scoring the closing makes the model end the answer there; without
        it a summed score can never prefer a candidate over its own prefix ("tiger" >= "tiger cat")."""
        before = self.example.split(ANSWER_FIELD, 1)[0]
        return before[len(before.rstrip(" ")):] + answer + (self.closing if closed else "")

    @property
    def hash(self) -> str:
        """Short content hash recorded with every result, so a template change is always visible."""
        fields = [self.format, self.key, self.prefix, self.example, list(self.stop)]
        payload = json.dumps(fields + [self.user_label] if self.user_label else fields)  # older hashes kept
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class PromptFormat:
    name: str
    description: str
    templates: Mapping[str, PromptTemplate]

    def template(self, key: str) -> PromptTemplate:
        if key not in self.templates:
            known = ", ".join(sorted(self.templates)) or "none"
            raise DataError(f"prompt format '{self.name}' has no template '{key}' (it has: {known})")
        return self.templates[key]


def load_formats(folder: Path = TEMPLATES_DIR) -> dict[str, PromptFormat]:
    """Formats from formats.toml, each with the templates every task-family file gives it."""
    formats = tomllib.loads((folder / FORMATS_FILE.name).read_text())
    templates: dict[str, dict[str, PromptTemplate]] = {name: {} for name in formats}
    for path in sorted(folder.glob("*.toml")):
        if path.name == FORMATS_FILE.name:
            continue
        for name, table in tomllib.loads(path.read_text()).items():
            if name not in formats:
                raise DataError(f"{path}: unknown prompt format '{name}' (formats.toml has: {', '.join(formats)})")
            for owner in (name, *(other for other, t in formats.items() if t.get("parts_from") == name)):
                add_templates(templates[owner], owner, formats[owner], table, path)
    return {name: PromptFormat(name, table.get("description", ""), templates[name]) for name, table in formats.items()}


def add_templates(into: dict[str, PromptTemplate], name: str, fmt: Mapping, table: Mapping, path: Path) -> None:
    """A task file's templates in format `name` (or in a format that takes its `parts_from` that one), in its turn."""
    for key, t in table.items():
        if key in into:
            raise DataError(f"{path}: template {name}.{key} is defined twice")
        example = template_example(t, fmt.get("turn"), f"{path}: template {name}.{key}")
        into[key] = PromptTemplate(name, key, example, t.get("prefix", ""), tuple(fmt.get("stop", ())), fmt.get("user_label", ""))


def template_example(table: Mapping[str, str], turn: str | None, where: str) -> str:
    """A template's demonstration text: `example` as written, or, in a chat format (one with a `turn`), its `user`
    and `assistant` parts placed in the format's turn, so the turn markup is written once per format."""
    if turn is None:
        if "example" not in table:
            raise DataError(f"{where} has no 'example'")
        return table["example"]
    missing = [part for part in ("user", "assistant") if part not in table]
    if missing:
        raise DataError(f"{where} has no '{missing[0]}' (a chat format's templates give user and assistant parts)")
    return turn.replace("{user}", table["user"]).replace("{assistant}", table["assistant"])


def fill(text: str, fields: Mapping[str, str], example_id: str) -> str:
    """`str.format` over the example's fields, naming the example and field when one is missing."""
    needed = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    missing = sorted(needed - set(fields))
    if missing:
        raise DataError(f"example {example_id}: field '{missing[0]}' needed by the prompt template is missing")
    return text.format(**fields)


def interleave(text: str, example: Example, with_images: bool) -> list[Segment]:
    """Split a filled template at its image markers, placing the example's images in order."""
    parts = text.split(IMAGE_MARKER)
    if with_images and len(parts) - 1 > len(example.images):
        raise DataError(f"example {example.id}: template shows {len(parts) - 1} images, example has {len(example.images)}")
    segments: list[Segment] = [TextSegment(parts[0])]
    for image, part in zip(example.images, parts[1:]):
        if with_images:
            segments.append(ImageSegment(image))
        segments.append(TextSegment(part))
    return segments


def merge_text(segments: Sequence[Segment]) -> tuple[Segment, ...]:
    """Join adjacent text segments and drop empty ones, so equal prompts have equal segment lists."""
    merged: list[Segment] = []
    for segment in segments:
        if isinstance(segment, TextSegment):
            if not segment.text:
                continue
            if merged and isinstance(merged[-1], TextSegment):
                merged[-1] = TextSegment(merged[-1].text + segment.text)
                continue
        merged.append(segment)
    return tuple(merged)


def space_after_user_label(segments: Sequence[Segment], label: str) -> list[Segment]:
    """One turn's segments with a space after its opening user label unless an image follows it, as the IDEFICS2
    chat template writes "User:" before an image but "User: " before text (also where a text-only shot lost its
    image)."""
    merged = list(merge_text(segments))
    if not label or not merged or not isinstance(merged[0], TextSegment) or not merged[0].text.startswith(label):
        return merged
    if merged[0].text == label and len(merged) > 1:  # the label alone, an image next
        return merged
    merged[0] = TextSegment(f"{label} {merged[0].text[len(label):]}")
    return merged


def render(
    template: PromptTemplate,
    shots: Sequence[tuple[Example, str]],
    query: Example,
    text_only_shots: bool = False,
) -> Prompt:
    """The few-shot prompt: prefix, each (shot, answer) filled in, then the query left open.

    `text_only_shots` drops the shots' images (Flamingo's zero-shot: two text-only demonstrations,
    only the query image shown).
    """
    segments: list[Segment] = [TextSegment(template.prefix)]
    for shot, answer in shots:
        filled = fill(template.example, {**shot.fields, "answer": answer}, shot.id)
        segments += space_after_user_label(interleave(filled, shot, with_images=not text_only_shots), template.user_label)
    query_segments = interleave(fill(template.query, query.fields, query.id), query, with_images=True)
    segments += space_after_user_label(query_segments, template.user_label)
    return Prompt(merge_text(segments))


for _format in load_formats().values():
    PROMPT_FORMATS.add(_format.name, _format)
