"""Rendered prompts, snapshot-tested: any change to a template or the renderer is a visible diff.

Regenerate after an intended change with: UPDATE_SNAPSHOTS=1 pytest tests/test_prompts.py
"""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest

from evals.errors import DataError
from evals.records import Example, ImageRef, ImageSegment, TextSegment
from evals.registry import PROMPT_FORMATS
from prompts import render

SNAPSHOTS = Path(__file__).parent / "snapshots"


def example(n: int, question: str, extra_fields: tuple[str, ...] = ()) -> Example:
    """An example with a question and, for other task families' templates, every other field they
    name, filled with text that says which field and example it is."""
    fields = {"question": question, **{name: f"<{name} {n}>" for name in extra_fields}}
    return Example(str(n), (ImageRef(f"img{n}", Path(f"/data/img{n}.jpg")),), fields, ("x",) * 10)


def template_fields(template) -> tuple[str, ...]:
    text = template.prefix + template.example
    return tuple(sorted({name for _, name, _, _ in string.Formatter().parse(text) if name and name not in ("answer", "question")}))


def cases_for(template):
    extra = template_fields(template)
    shots = [(example(1, "What color is the bus?", extra), "red"), (example(2, "How many dogs are there?", extra), "2")]
    return shots, example(3, "What is on the table?", extra)


SHOTS, QUERY = cases_for(PROMPT_FORMATS.get("idefics").template("vqa"))
CASES = [(f, t) for f in PROMPT_FORMATS.names() for t in PROMPT_FORMATS.get(f).templates]


def snapshot_text(prompt) -> str:
    images = " ".join(image.id for image in prompt.images)
    return f"{prompt.text}\n--- images: {images}\n"


@pytest.mark.parametrize("shots", [0, 2])
@pytest.mark.parametrize(("fmt", "key"), CASES)
def test_prompt_snapshot(fmt, key, shots):
    template = PROMPT_FORMATS.get(fmt).template(key)
    examples, query = cases_for(template)
    # Zero-shot as generative tasks render it: two text-only demonstrations, then the query with its image.
    prompt = render(template, examples, query, text_only_shots=True) if shots == 0 else render(template, examples[:shots], query)
    path = SNAPSHOTS / f"prompt_{fmt}_{key}_{shots}shot.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(snapshot_text(prompt))
    assert path.exists(), f"missing snapshot {path.name}: run with UPDATE_SNAPSHOTS=1"
    assert snapshot_text(prompt) == path.read_text()


def test_zero_shot_keeps_only_the_query_image():
    template = PROMPT_FORMATS.get("idefics").template("vqa")
    prompt = render(template, SHOTS, QUERY, text_only_shots=True)
    assert prompt.images == QUERY.images
    assert "What color is the bus? Short answer: red" in prompt.text


def test_segments_alternate_and_query_is_open():
    template = PROMPT_FORMATS.get("idefics").template("vqa")
    prompt = render(template, SHOTS, QUERY)
    kinds = [type(s) for s in prompt.segments]
    assert all(a is not b or a is ImageSegment for a, b in zip(kinds, kinds[1:]))  # no two texts adjacent
    assert isinstance(prompt.segments[-1], TextSegment)
    assert prompt.segments[-1].text.endswith("Short answer:")
    assert [i.id for i in prompt.images] == ["img1", "img2", "img3"]


def test_missing_field_names_the_example_and_field():
    template = PROMPT_FORMATS.get("idefics").template("vqa")
    broken = Example("77", QUERY.images, {"ocr": "x"})
    with pytest.raises(DataError, match="example 77: field 'question'"):
        render(template, [], broken)


def test_template_hash_changes_with_the_template():
    from dataclasses import replace

    template = PROMPT_FORMATS.get("idefics").template("vqa")
    assert replace(template, example=template.example.replace("Short answer", "Answer")).hash != template.hash


def test_continuation_is_what_follows_the_query():
    """A ranked task scores exactly the text a demonstration shows after the query's words."""
    template = PROMPT_FORMATS.get("idefics").template("vqa")
    query_text = render(template, [], QUERY).text
    shot_text = render(template, [(QUERY, "a cat")], QUERY).text.split("<image>")[1]  # the demonstration, image removed
    assert "<image>" + shot_text == query_text + template.continuation("a cat")
    assert template.continuation("a cat") == " a cat\n" and template.continuation("a cat", closed=False) == " a cat"
