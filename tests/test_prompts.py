"""Rendered prompts, snapshot-tested: any change to a template or the renderer is a visible diff.

Regenerate after an intended change with: UPDATE_SNAPSHOTS=1 pytest tests/test_prompts.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evals.errors import DataError
from evals.records import Example, ImageRef, ImageSegment, TextSegment
from evals.registry import PROMPT_FORMATS
from prompts import render

SNAPSHOTS = Path(__file__).parent / "snapshots"


def example(n: int, question: str) -> Example:
    return Example(str(n), (ImageRef(f"img{n}", Path(f"/data/img{n}.jpg")),), {"question": question}, ("x",) * 10)


SHOTS = [(example(1, "What color is the bus?"), "red"), (example(2, "How many dogs are there?"), "2")]
QUERY = example(3, "What is on the table?")
CASES = [(f, t) for f in PROMPT_FORMATS.names() for t in PROMPT_FORMATS.get(f).templates]


def snapshot_text(prompt) -> str:
    images = " ".join(image.id for image in prompt.images)
    return f"{prompt.text}\n--- images: {images}\n"


@pytest.mark.parametrize("shots", [0, 2])
@pytest.mark.parametrize(("fmt", "key"), CASES)
def test_prompt_snapshot(fmt, key, shots):
    template = PROMPT_FORMATS.get(fmt).template(key)
    # Zero-shot as the runner renders it: two text-only demonstrations, then the query with its image.
    prompt = render(template, SHOTS, QUERY, text_only_shots=True) if shots == 0 else render(template, SHOTS[:shots], QUERY)
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
