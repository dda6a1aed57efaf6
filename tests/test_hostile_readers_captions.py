"""Hostile official files for the captioning, VQA, VisDial, classification, Hateful Memes and Winoground readers:
`evals run` refuses a field of the wrong type or shape (an id that is a bool, float, list or null; a caption, an OCR
token or an optional type that is not text; a VisDial index that is a bool) and an empty list of records, with one
line naming file, record and field, exit 2; never a traceback, never a field silently turned into text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import assert_refused, call_evals
from tests.test_hostile_data import VISDIAL_DEMO, VQA_DEMO, demo_copy, edit_json, edit_jsonl, run_args
from tests.test_tasks_captioning import textcaps_entries, write_karpathy, write_nocaps, write_textcaps
from tests.test_tasks_classification import imagenet_tree, sst2_tree
from tests.test_tasks_vqa import make_data as make_vqa_data


def run(tmp: Path, task: str) -> list[str]:
    return [*run_args(tmp, task), "--limit", "2"]


def folder(tmp: Path, name: str) -> Path:
    return tmp / "data" / name


# ---------------------------------------------------------------- captioning

def karpathy(tmp: Path, change: Callable, flickr: bool = False) -> list[str]:
    """A Karpathy-split file whose first image (or top level, when `change` takes the payload) is edited."""
    task = "flickr30k" if flickr else "coco"
    write_karpathy(folder(tmp, task), flickr=flickr)
    edit_json(folder(tmp, task) / f"dataset_{task}.json", change)
    return run(tmp, task)


def first_image(change: Callable) -> Callable:
    return lambda payload: change(payload["images"][0])


def nocaps(tmp: Path, change: Callable) -> list[str]:
    write_karpathy(folder(tmp, "coco"))
    write_nocaps(folder(tmp, "nocaps"))
    edit_json(folder(tmp, "nocaps") / "nocaps_val_4500_captions.json", change)
    return run(tmp, "nocaps")


def textcaps(tmp: Path, change: Callable) -> list[str]:
    """TextCaps train and val files, the train file's first entry (or its payload) edited."""
    write_textcaps(folder(tmp, "textcaps"), "train", textcaps_entries(1, 3))
    write_textcaps(folder(tmp, "textcaps"), "val", textcaps_entries(100, 2))
    edit_json(folder(tmp, "textcaps") / "TextCaps_0.1_train.json", change)
    return run(tmp, "textcaps")


def first_entry(change: Callable) -> Callable:
    return lambda payload: change(payload["data"][0])


def without_references(fields: dict) -> Callable:
    """Entries without reference_strs (the references are then each entry's caption_str), the first one edited."""
    def edit(payload: dict) -> None:
        for entry in payload["data"]:
            entry.pop("reference_strs")
        payload["data"][0].update(fields)
    return edit


# ---------------------------------------------------------------- VQA

def vqa_files(tmp: Path, task: str, name: str, change: Callable) -> list[str]:
    """A VQA task's files made as its tests make them, then file `name` (relative to its folder) edited."""
    make_vqa_data(tmp / "data", task)
    edit_json(folder(tmp, task) / name, change)
    return run(tmp, task)


def vqav2(tmp: Path, change: Callable, name: str = "v2_mscoco_train2014_annotations.json") -> list[str]:
    demo_copy(tmp, "vqa", "vqav2", VQA_DEMO)
    edit_json(folder(tmp, "vqav2") / name, change)
    return run(tmp, "vqav2")


def first_annotation(change: Callable) -> Callable:
    return lambda payload: change(payload["annotations"][0])


def first_of_list(change: Callable) -> Callable:
    return lambda payload: change(payload[0])


# ---------------------------------------------------------------- VisDial

def visdial(tmp: Path, name: str, change: Callable) -> list[str]:
    demo_copy(tmp, "visdial", "visdial", VISDIAL_DEMO)
    edit_json(folder(tmp, "visdial") / name, change)
    return run(tmp, "visdial")


def every_round(change: Callable) -> Callable:
    def edit(payload: dict) -> None:
        for dialog in payload["data"]["dialogs"]:
            for turn in dialog["dialog"]:
                change(turn)
    return edit


def first_dialog(change: Callable) -> Callable:
    return lambda payload: change(payload["data"]["dialogs"][0])


# ---------------------------------------------------------------- classification, memes, Winoground

def imagenet_json(tmp: Path, change: Callable) -> list[str]:
    root = imagenet_tree(folder(tmp, "imagenet"), names="json")
    edit_json(root / "classnames.json", change)
    return run(tmp, "imagenet")


def empty_class_folders(tmp: Path, task: str, split: str) -> list[str]:
    root = imagenet_tree(folder(tmp, task)) if task == "imagenet" else sst2_tree(folder(tmp, task))
    for image in (root / split).glob("*/*"):
        image.unlink()
    return run(tmp, task)


def memes(tmp: Path, change: Callable | None = None, empty: str = "") -> list[str]:
    root = demo_copy(tmp, "hateful_memes", "hateful_memes", ("train.jsonl", "dev_seen.jsonl"))
    if change:
        edit_jsonl(root / "train.jsonl", 1, change)
    if empty:
        (root / empty).write_text("\n")
    return run(tmp, "hateful_memes")


def winoground(tmp: Path, change: Callable | None = None, empty: bool = False) -> list[str]:
    root = demo_copy(tmp, "winoground", "winoground", ("examples.jsonl",))
    if change:
        edit_jsonl(root / "examples.jsonl", 1, change)
    if empty:
        (root / "examples.jsonl").write_text("")
    return [*run(tmp, "winoground"), "--shots", "0"]


def put(key: str, value) -> Callable:
    return lambda record: record.__setitem__(key, value)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], list[str]]  # the `evals run` arguments, their data written under tmp_path
    fragment: str  # in the one error line
    code: int = 2


CASES = [
    # COCO and Flickr30k (Karpathy split)
    Case("coco images a dict", lambda t: karpathy(t, put("images", {"a": 1})), "the top level: field 'images' is a dict, not a list"),
    Case("coco images empty", lambda t: karpathy(t, put("images", [])), "dataset_coco.json: no images (the list is empty)"),
    Case("coco cocoid a list", lambda t: karpathy(t, first_image(put("cocoid", [1]))),
         "dataset_coco.json: image #0: field 'cocoid' is a list, not an integer or a string"),
    Case("coco cocoid a float", lambda t: karpathy(t, first_image(put("cocoid", 1.5))), "image #0: field 'cocoid' is a float"),
    Case("coco cocoid a bool", lambda t: karpathy(t, first_image(put("cocoid", True))), "image #0: field 'cocoid' is a bool"),
    Case("coco split null", lambda t: karpathy(t, first_image(put("split", None))),
         "image #0: field 'split' is null, not a string"),
    Case("coco filepath a list", lambda t: karpathy(t, first_image(put("filepath", ["train2014"]))),
         "image 1: field 'filepath' is a list, not a string"),
    Case("coco raw caption a number", lambda t: karpathy(t, first_image(lambda e: e["sentences"][2].update(raw=7))),
         "image 1: field 'sentences': reference caption #2 is an int, not a string"),
    Case("flickr filename an integer", lambda t: karpathy(t, first_image(put("filename", 1000001)), flickr=True),
         "dataset_flickr30k.json: image 1000001: field 'filename' is an int, not a string"),
    Case("flickr raw caption null", lambda t: karpathy(t, first_image(lambda e: e["sentences"][0].update(raw=None)), flickr=True),
         "field 'sentences': reference caption #0 is null, not a string"),
    # NoCaps (COCO caption format)
    Case("nocaps caption a list", lambda t: nocaps(t, first_annotation(put("caption", ["a", "b"]))),
         "nocaps_val_4500_captions.json: annotation #0: field 'caption' is a list, not a string"),
    Case("nocaps annotation image_id a float", lambda t: nocaps(t, first_annotation(put("image_id", 0.0))),
         "annotation #0: field 'image_id' is a float, not an integer or a string"),
    Case("nocaps image id null", lambda t: nocaps(t, first_image(put("id", None))), "image #0: field 'id' is null"),
    Case("nocaps domain a list", lambda t: nocaps(t, first_image(put("domain", ["in-domain"]))),
         "image 0: field 'domain' is a list, not a string"),
    Case("nocaps file_name an integer", lambda t: nocaps(t, first_image(put("file_name", 12))),
         "image 0: field 'file_name' is an int, not a string"),
    Case("nocaps images empty", lambda t: nocaps(t, lambda p: p.update(images=[], annotations=[])),
         "nocaps_val_4500_captions.json: no images (the list is empty)"),
    # TextCaps
    Case("textcaps data empty", lambda t: textcaps(t, put("data", [])), "TextCaps_0.1_train.json: no entries (the list is empty)"),
    Case("textcaps image_id a list", lambda t: textcaps(t, first_entry(put("image_id", ["x"]))),
         "entry #0: field 'image_id' is a list, not an integer or a string"),
    Case("textcaps ocr_tokens a string", lambda t: textcaps(t, first_entry(put("ocr_tokens", "open"))),
         "image 0000000000000001: field 'ocr_tokens' is a str, not a list"),
    Case("textcaps ocr token a number", lambda t: textcaps(t, first_entry(put("ocr_tokens", ["open", 1]))),
         "image 0000000000000001: field 'ocr_tokens' holds a value that is not a string"),
    Case("textcaps reference null", lambda t: textcaps(t, first_entry(lambda e: e["reference_strs"].__setitem__(1, None))),
         "field 'reference_strs': reference caption #1 is null, not a string"),
    Case("textcaps caption_str a dict", lambda t: textcaps(t, without_references({"caption_str": {"text": "a"}})),
         "image 0000000000000001: field 'caption_str' is a dict, not a string"),
    # VQAv2, OK-VQA
    Case("vqav2 questions a dict", lambda t: vqav2(t, put("questions", {}), "v2_OpenEnded_mscoco_train2014_questions.json"),
         "field 'questions' is a dict, not a list"),
    Case("vqav2 annotations empty", lambda t: vqav2(t, put("annotations", [])),
         "v2_mscoco_train2014_annotations.json: no annotations (the list is empty)"),
    Case("vqav2 question_type a list", lambda t: vqav2(t, first_annotation(put("question_type", ["how many"]))),
         "annotation 1: field 'question_type' is a list, not a string"),
    Case("vqav2 answer_type a number", lambda t: vqav2(t, first_annotation(put("answer_type", 3))),
         "annotation 1: field 'answer_type' is an int, not a string"),
    Case("vqav2 question_id a bool", lambda t: vqav2(t, first_annotation(put("question_id", True))),
         "annotation #0: field 'question_id' is True, not an integer or a string"),
    Case("okvqa question_type null",
         lambda t: vqa_files(t, "okvqa", "mscoco_train2014_annotations.json", first_annotation(put("question_type", None))),
         "mscoco_train2014_annotations.json: annotation 100: field 'question_type' is null, not a string"),
    # TextVQA, VizWiz
    Case("textvqa question_id a float",
         lambda t: vqa_files(t, "textvqa", "TextVQA_0.5.1_train.json", first_entry(put("question_id", 100.0))),
         "TextVQA_0.5.1_train.json: entry #0: field 'question_id' is a float, not an integer or a string"),
    Case("textvqa image_id a list",
         lambda t: vqa_files(t, "textvqa", "TextVQA_0.5.1_train.json", first_entry(put("image_id", ["a"]))),
         "question 100: field 'image_id' is a list, not an integer or a string"),
    Case("textvqa data empty", lambda t: vqa_files(t, "textvqa", "TextVQA_0.5.1_val.json", put("data", [])),
         "TextVQA_0.5.1_val.json: no questions in 'data' (the list is empty)"),
    Case("vizwiz answer_type a list",
         lambda t: vqa_files(t, "vizwiz", "Annotations/train.json", first_of_list(put("answer_type", ["other"]))),
         "entry VizWiz_train_00000000.jpg: field 'answer_type' is a list, not a string"),
    Case("vizwiz empty list", lambda t: vqa_files(t, "vizwiz", "Annotations/val.json", lambda p: p.clear()),
         "Annotations/val.json: no questions (the list is empty)"),
    # VisDial
    Case("visdial caption a list", lambda t: visdial(t, "visdial_1.0_train.json", first_dialog(put("caption", ["a"]))),
         "field 'caption' is a list, not a string"),
    Case("visdial question text a number",
         lambda t: visdial(t, "visdial_1.0_val.json", lambda p: p["data"].update(questions=[7] * len(p["data"]["questions"]))),
         "visdial_1.0_val.json: 'data.questions' entry #"),
    Case("visdial answer index a bool", lambda t: visdial(t, "visdial_1.0_train.json", every_round(put("answer", True))),
         "'answer' points to answers[True]"),
    Case("visdial gt_index a bool", lambda t: visdial(t, "visdial_1.0_val.json", every_round(put("gt_index", False))),
         "'gt_index' False is not an option index"),
    Case("visdial image_id a bool", lambda t: visdial(t, "visdial_1.0_train.json", first_dialog(put("image_id", True))),
         "visdial_1.0_train.json: dialog #0 'image_id' True is not an integer"),
    Case("visdial dense image_id a list",
         lambda t: visdial(t, "visdial_1.0_val_dense_annotations.json", first_of_list(put("image_id", [1001]))),
         "annotation #0: field 'image_id' is a list, not an integer"),
    Case("visdial dense annotations empty", lambda t: visdial(t, "visdial_1.0_val_dense_annotations.json", lambda p: p.clear()),
         "visdial_1.0_val_dense_annotations.json: no dense annotations (the list is empty)"),
    Case("visdial dialogs empty", lambda t: visdial(t, "visdial_1.0_train.json", lambda p: p["data"].update(dialogs=[])),
         "visdial_1.0_train.json: no dialogs in 'data.dialogs'"),
    # ImageNet, Rendered SST2
    Case("imagenet class name a list", lambda t: imagenet_json(t, put("n02", ["tabby", "cat"])),
         "classnames.json: the class names: field 'n02' is a list, not a string"),
    Case("imagenet class name null", lambda t: imagenet_json(t, put("n01", None)), "field 'n01' is null, not a string"),
    Case("imagenet split without images", lambda t: empty_class_folders(t, "imagenet", "val"), "imagenet/val: no images"),
    Case("rendered sst2 split without images", lambda t: empty_class_folders(t, "rendered_sst2", "test"),
         "rendered_sst2/test: no images"),
    # Hateful Memes
    Case("hateful memes empty file", lambda t: memes(t, empty="dev_seen.jsonl"), "dev_seen.jsonl: no memes (the list is empty)"),
    Case("hateful memes id a float", lambda t: memes(t, put("id", 4.0)), "train.jsonl: line 1: field 'id' is a float"),
    Case("hateful memes id a list", lambda t: memes(t, put("id", [4])), "line 1: field 'id' is a list, not an integer or a string"),
    # Winoground
    Case("winoground tag a list", lambda t: winoground(t, put("tag", ["Object"])),
         "examples.jsonl: line 1: field 'tag' is a list, not a string"),
    Case("winoground collapsed_tag null", lambda t: winoground(t, put("collapsed_tag", None)),
         "line 1: field 'collapsed_tag' is null, not a string"),
    Case("winoground id a bool", lambda t: winoground(t, put("id", False)), "line 1: field 'id' is a bool"),
    Case("winoground empty file", lambda t: winoground(t, empty=True), "examples.jsonl: no examples (the list is empty)"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_hostile_reader(monkeypatch, capsys, tmp_path, case):
    assert_refused(*call_evals(monkeypatch, capsys, ["run", *case.build(tmp_path)]), case.code, case.fragment)
