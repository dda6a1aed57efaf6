"""Hostile Hugging Face copies (save_to_disk folders) of captioning, VQA, Hateful Memes and Winoground: an id, a
question, a caption, a tag or a question/answer type of the wrong type (a list, a number, a bool, null) is refused
with one line naming the dataset folder, split, row and field, exit 2, never turned into text; and a JSON Lines
file with blank lines names the line an editor shows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import call_evals
from tests.test_hostile_data import demo_copy
from tests.test_hostile_readers_benchmarks import Case, run_args, save_hf
from tests.test_hostile_readers_benchmarks import test_hostile_benchmark_data as check_case  # not collected twice
from tests.test_hostile_readers_captions import put


def hub_copy(tmp: Path, task: str, splits: tuple[str, ...], row: Callable[[int], dict], bad: dict) -> Path:
    """A save_to_disk folder DATA/<task> whose splits hold three rows each, every row with the `bad` fields (so that
    datasets infers one type for the column) and row 0 the one named."""
    rows = [{**row(n), **bad} for n in range(3)]
    save_hf(tmp / "data" / task, {split: rows for split in splits})
    return tmp / "data" / task


def image():
    from PIL import Image

    return Image.new("RGB", (8, 8))


def coco_row(n: int) -> dict:
    return {"cocoid": n, "filepath": "val2014", "filename": f"{n}.jpg", "sentences_raw": ["a cat", "a dog"], "image": image()}


def flickr_row(n: int) -> dict:
    return {"filename": f"{n}.jpg", "caption": ["a cat", "a dog"], "image": image()}


def vqa_row(n: int) -> dict:
    return {"question_id": n, "question": "What?", "answers": ["red"] * 10, "image": image()}


def meme_row(n: int) -> dict:
    return {"id": 100 + n, "text": "a meme", "label": n % 2, "image": image()}


def winoground_row(n: int) -> dict:
    return {"id": n, "caption_0": "a cat on a dog", "caption_1": "a dog on a cat", "image_0": image(), "image_1": image(),
            "tag": "Object", "collapsed_tag": "Object"}


def coco(tmp: Path, **bad) -> list[str]:
    hub_copy(tmp, "coco", ("train", "test"), coco_row, bad)
    return run_args(tmp, "coco")


def flickr(tmp: Path, **bad) -> list[str]:
    hub_copy(tmp, "flickr30k", ("train", "test"), flickr_row, bad)
    return run_args(tmp, "flickr30k")


def vqa(tmp: Path, task: str = "vqav2", splits: tuple[str, ...] = ("train", "validation"), **bad) -> list[str]:
    hub_copy(tmp, task, splits, vqa_row, bad)
    return run_args(tmp, task)


def memes(tmp: Path, **bad) -> list[str]:
    hub_copy(tmp, "hateful_memes", ("train", "validation"), meme_row, bad)
    return run_args(tmp, "hateful_memes")


def winoground(tmp: Path, **bad) -> list[str]:
    hub_copy(tmp, "winoground", ("test",), winoground_row, bad)
    return [*run_args(tmp, "winoground")[:-1], "0"]


def with_blank_lines(path: Path, line: int, change: Callable[[dict], None]) -> None:
    """`path` with a blank and a whitespace-only line after its first record, then the record at `line` (as the file
    now numbers it) edited: an error must name that line, not the record's position among the records."""
    lines = path.read_text().splitlines()
    lines[1:1] = ["", "   "]
    record = json.loads(lines[line - 1])
    change(record)
    lines[line - 1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


def memes_jsonl(tmp: Path, line: int, change: Callable[[dict], None]) -> list[str]:
    root = demo_copy(tmp, "hateful_memes", "hateful_memes", ("train.jsonl", "dev_seen.jsonl"))
    with_blank_lines(root / "train.jsonl", line, change)
    return run_args(tmp, "hateful_memes")


def winoground_jsonl(tmp: Path, line: int, change: Callable[[dict], None]) -> list[str]:
    root = demo_copy(tmp, "winoground", "winoground", ("examples.jsonl",))
    with_blank_lines(root / "examples.jsonl", line, change)
    return [*run_args(tmp, "winoground")[:-1], "0"]


def same_id_as_first(record: dict) -> None:
    record["id"] = 10000


CASES = [
    # captioning
    Case("coco cocoid a bool", lambda t: coco(t, cocoid=True), "coco [train] row 0: field 'cocoid' is a bool, not an integer"),
    Case("coco cocoid null", lambda t: coco(t, cocoid=None), "coco [train] row 0: field 'cocoid' is null"),
    Case("coco cocoid a list", lambda t: coco(t, cocoid=[1]), "row 0: field 'cocoid' is a list"),
    Case("coco filename a number", lambda t: coco(t, filename=7), "coco [train] row 0: field 'filename' is an int, not a string"),
    Case("coco filepath a list", lambda t: coco(t, filepath=["val2014"]), "row 0: field 'filepath' is a list, not a string"),
    Case("coco captions hold a number", lambda t: coco(t, sentences_raw=[1, 2]), "coco [train] row 0: reference caption #0 is"),
    Case("flickr filename null", lambda t: flickr(t, filename=None), "flickr30k [train] row 0: field 'filename' is null"),
    # VQA
    Case("vqav2 question_id null", lambda t: vqa(t, question_id=None), "vqav2 [train] row 0: field 'question_id' is null"),
    Case("vqav2 question_id a float", lambda t: vqa(t, question_id=1.5), "row 0: field 'question_id' is a float"),
    Case("vqav2 question a list", lambda t: vqa(t, question=["What?"]), "vqav2 [train] row 0: field 'question' is a list, not a string"),
    Case("vqav2 question a number", lambda t: vqa(t, question=3), "row 0: field 'question' is an int, not a string"),
    Case("vqav2 question null", lambda t: vqa(t, question=None), "row 0: field 'question' is null, not a string"),
    Case("vqav2 image_id a list", lambda t: vqa(t, image_id=[1]), "row 0: field 'image_id' is a list, not an integer"),
    Case("vqav2 question_type a list", lambda t: vqa(t, question_type=["what"]), "row 0: field 'question_type' is a list"),
    Case("vqav2 answer_type a number", lambda t: vqa(t, answer_type=1), "row 0: field 'answer_type' is an int, not a string"),
    Case("vizwiz category a list", lambda t: vqa(t, "vizwiz", ("train", "val"), category=["other"]),
         "vizwiz [train] row 0: field 'category' is a list"),
    Case("textvqa ocr_tokens hold numbers", lambda t: vqa(t, "textvqa", ocr_tokens=[1, 2]),
         "textvqa [train] row 0: field 'ocr_tokens' holds a value that is not a string"),
    Case("textvqa ocr_tokens a string", lambda t: vqa(t, "textvqa", ocr_tokens="STOP"),
         "row 0: field 'ocr_tokens' is a str, not a list"),
    # Hateful Memes
    Case("memes id null", lambda t: memes(t, id=None), "hateful_memes [train] row 0: field 'id' is null"),
    Case("memes id a list", lambda t: memes(t, id=[1]), "row 0: field 'id' is a list, not an integer or a string"),
    Case("memes text a number", lambda t: memes(t, text=5), "hateful_memes [train] row 0: field 'text' is an int, not a string"),
    Case("memes text null", lambda t: memes(t, text=None), "row 0: field 'text' is null, not a string"),
    # Winoground
    Case("winoground id a float", lambda t: winoground(t, id=0.5), "winoground [test] row 0: field 'id' is a float"),
    Case("winoground caption_0 a list", lambda t: winoground(t, caption_0=["a"]), "row 0: field 'caption_0' is a list"),
    Case("winoground caption_1 null", lambda t: winoground(t, caption_1=None), "row 0: field 'caption_1' is null, not a string"),
    Case("winoground tag a number", lambda t: winoground(t, tag=3), "winoground [test] row 0: field 'tag' is an int, not a string"),
    Case("winoground collapsed_tag a list", lambda t: winoground(t, collapsed_tag=["x"]), "row 0: field 'collapsed_tag' is a list"),
    # JSON Lines files with blank lines: the line an editor shows
    Case("memes jsonl text after blank lines", lambda t: memes_jsonl(t, 5, put("text", ["x"])),
         "train.jsonl: line 5: field 'text' is a list, not a string"),
    Case("memes jsonl label after blank lines", lambda t: memes_jsonl(t, 4, put("label", 2)), "train.jsonl: line 4: 'label' is 2"),
    Case("memes jsonl repeated id after blank lines", lambda t: memes_jsonl(t, 6, same_id_as_first),
         "train.jsonl: line 6 repeats id 10000"),
    Case("winoground jsonl tag after blank lines", lambda t: winoground_jsonl(t, 4, put("tag", 1)),
         "examples.jsonl: line 4: field 'tag' is an int, not a string"),
]


@pytest.fixture(autouse=True)
def fresh_splits():
    """A fresh `open_split` cache: each case writes another folder at a path an earlier case may have used."""
    from tasks.hf import open_split

    open_split.cache_clear()
    yield
    open_split.cache_clear()


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_hostile_hub_copy(monkeypatch, capsys, tmp_path, case):
    """Exit 2, one `error:` line holding the fragment, no traceback, nothing on stdout (the benchmarks' check)."""
    check_case(monkeypatch, capsys, tmp_path, case)


def test_valid_copies_still_run(monkeypatch, capsys, tmp_path):
    """The builders' untouched copies run: each case fails for its one edit, not for the builder."""
    for task, build in (("coco", coco), ("flickr30k", flickr), ("vqav2", vqa), ("hateful_memes", memes), ("winoground", winoground)):
        code, out, err = call_evals(monkeypatch, capsys, build(tmp_path / task))
        assert code == 0 and task in out, err


def test_read_jsonl_numbers_records_by_their_line(tmp_path):
    """Blank lines are left out but counted; a file without them reads as before, record n on line n."""
    from tasks.base import read_jsonl

    (tmp_path / "a.jsonl").write_text('{"a": 1}\n\n  \n{"a": 2}\n')
    (tmp_path / "b.jsonl").write_text('{"a": 1}\n{"a": 2}')
    assert read_jsonl(tmp_path / "a.jsonl") == [(1, {"a": 1}), (4, {"a": 2})]
    assert read_jsonl(tmp_path / "b.jsonl") == [(1, {"a": 1}), (2, {"a": 2})]
