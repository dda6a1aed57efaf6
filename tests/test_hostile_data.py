"""Hostile data and submission files: each reader refuses a bad field with one line naming file, record and field
(exit 2), never a traceback or a score, and reads what other tools write (byte-order marks)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import assert_refused, call_evals

CONFORMANCE = Path(__file__).parent / "data" / "conformance"
DEMO = Path(__file__).parent.parent / "tasks" / "demo"
BOM = "\ufeff"
DEEP = "[" * 100_000 + "]" * 100_000  # past Python's recursion limit in json's decoder


# ---------------------------------------------------------------- editing copies of valid files

def copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def edit_json(path: Path, change: Callable) -> Path:
    """Rewrite a JSON file after `change(value)` edits it in place (allow_nan: json writes Infinity and NaN)."""
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))
    return path


def edit_jsonl(path: Path, line: int, change: Callable) -> Path:
    lines = path.read_text().splitlines()
    record = json.loads(lines[line - 1])
    change(record)
    lines[line - 1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    return path


def with_bom(path: Path) -> Path:
    path.write_text(BOM + path.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def put(record: dict, key: str, value) -> Callable:
    return lambda _: record.__setitem__(key, value)


# ---------------------------------------------------------------- `evals score` cases: (task, predictions, annotations)

def edited_pair(tmp: Path, folder: Path, annotations_name: str, annotations=None, predictions=None) -> tuple[Path, Path]:
    """Copies of a conformance folder's predictions.json and annotations file (as annotations.json), each edited."""
    pred = copy(folder / "predictions.json", tmp / "predictions.json")
    ann = copy(folder / annotations_name, tmp / "annotations.json")
    for path, change in ((ann, annotations), (pred, predictions)):
        if change:
            edit_json(path, change)
    return pred, ann


def vqa(tmp: Path, annotations=None, predictions=None, bom: bool = False) -> list[str]:
    pred, ann = edited_pair(tmp, CONFORMANCE / "vqa_accuracy", "annotations.json", annotations, predictions)
    if bom:
        with_bom(pred), with_bom(ann)
    return ["vqav2", str(pred), str(ann)]


def first_answers(value) -> dict:
    return value["annotations"][0]


def visdial(tmp: Path, annotations=None, predictions=None) -> list[str]:
    pred, ann = edited_pair(tmp, CONFORMANCE / "ranking" / "visdial", "visdial_1.0_val_dense_annotations.json",
                            annotations, predictions)
    return ["visdial", str(pred), str(ann)]


def winoground(tmp: Path, change=None, text: str | None = None) -> list[str]:
    folder = CONFORMANCE / "ranking" / "winoground"
    pred = copy(folder / "predictions.jsonl", tmp / "predictions.jsonl")
    if change:
        edit_jsonl(pred, 1, change)
    if text is not None:
        pred.write_text(text)
    return ["winoground", str(pred), str(folder / "examples.jsonl")]


def memes(tmp: Path, row: str | None = None, bom: bool = False) -> list[str]:
    folder = CONFORMANCE / "ranking" / "hateful_memes"
    pred = copy(folder / "predictions.csv", tmp / "predictions.csv")
    if row is not None:
        lines = pred.read_text().splitlines()
        lines[1] = row
        pred.write_text("\n".join(lines) + "\n")
    if bom:
        with_bom(pred)
    return ["hateful_memes", str(pred), str(folder / "dev.jsonl")]


def textvqa(tmp: Path, top: dict) -> list[str]:
    ann = tmp / "TextVQA_0.5.1_val.json"
    ann.write_text(json.dumps(top))
    pred = tmp / "predictions.json"
    pred.write_text(json.dumps([{"question_id": 1, "answer": "stop"}]))
    return ["textvqa", str(pred), str(ann)]


def textvqa_question(**fields) -> dict:
    return {"question_id": 1, "question": "what does it say?", "image_id": "a1", "answers": ["stop"] * 10,
            "ocr_tokens": ["stop"], **fields}


def infinity_relevance(value) -> None:
    value[0]["gt_relevance"][value[0]["gt_relevance"].index(0.0)] = float("inf")


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], list[str]]  # the arguments after the command, written under tmp_path
    code: int
    fragment: str  # in the one error line (code 2), or in the printed table (code 0)
    command: str = "score"


SCORE_CASES = [
    Case("vqa answers an integer", lambda t: vqa(t, lambda v: first_answers(v).update(answers=3)),
         2, "annotation 700000: field 'answers' is an int, not a list"),
    Case("vqa answers not objects", lambda t: vqa(t, lambda v: first_answers(v).update(answers=["yes", "no"])),
         2, "annotation 700000, answer #0 is not a JSON object"),
    Case("vqa answer not a string", lambda t: vqa(t, lambda v: first_answers(v)["answers"][0].update(answer=5)),
         2, "answer #0: field 'answer' is an int, not a string"),
    Case("vqa answers empty", lambda t: vqa(t, lambda v: first_answers(v).update(answers=[])),
         2, "annotation 700000 has an empty 'answers' list"),
    Case("vqa no annotations", lambda t: vqa(t, lambda v: v.update(annotations=[])), 2, "no questions to score"),
    Case("vqa unicode digit id", lambda t: vqa(t, predictions=lambda v: v.append({"question_id": "²", "answer": "x"})),
         2, "question_ids not in annotations.json: ²"),
    Case("vqa nested too deeply", lambda t: vqa(t, predictions=lambda v: None) and (t / "predictions.json").write_text(DEEP)
         and vqa_paths(t), 2, "predictions.json: malformed JSON: nested too deeply"),
    Case("vqa json with bom", lambda t: vqa(t, bom=True), 0, "65.10"),
    Case("textvqa data not a list", lambda t: textvqa(t, {"data": 5}), 2, "the top level: field 'data' is an int, not a list"),
    Case("textvqa ocr_tokens an integer", lambda t: textvqa(t, {"data": [textvqa_question(ocr_tokens=7)]}),
         2, "question 1: field 'ocr_tokens' is an int, not a list"),
    Case("textvqa question not a string", lambda t: textvqa(t, {"data": [textvqa_question(question=["a"])]}),
         2, "question 1: field 'question' is a list, not a string"),
    Case("textvqa no questions", lambda t: textvqa(t, {"data": []}), 2, "no questions to score"),
    Case("visdial rank a string", lambda t: visdial(t, predictions=lambda v: v[0]["ranks"].append("7")),
         2, "entry #0 (image_id 9000, round_id 8) has a 'ranks' value that is not an integer"),
    Case("visdial rank null", lambda t: visdial(t, predictions=lambda v: v[0]["ranks"].__setitem__(0, None)),
         2, "has a 'ranks' value that is not an integer"),
    Case("visdial infinite relevance", lambda t: visdial(t, annotations=infinity_relevance),
         2, "annotations.json: annotation #0 (image_id 9000, round_id 8) has a 'gt_relevance' value that is not a finite number"),
    Case("visdial nan relevance", lambda t: visdial(t, annotations=lambda v: v[1]["gt_relevance"].__setitem__(0, float("nan"))),
         2, "annotation #1"),
    Case("visdial no annotations", lambda t: visdial(t, annotations=lambda v: v.clear()), 2, "annotations.json: expected"),
    Case("winoground infinite score", lambda t: winoground(t, lambda r: r.update(c1_i1=float("inf"))),
         2, "line 1 has 'c1_i1' = inf, not a finite number"),
    Case("winoground nan score", lambda t: winoground(t, lambda r: r.update(c0_i0=float("nan"))),
         2, "line 1 has 'c0_i0' = nan, not a finite number"),
    Case("winoground jsonl with bom", lambda t: with_bom_args(winoground(t)), 0, "15.75"),
    Case("winoground line nested too deeply", lambda t: winoground(t, text=DEEP + "\n"),
         2, "predictions.jsonl: line 1 is malformed JSON: nested too deeply"),
    Case("hateful memes csv with bom", lambda t: memes(t, bom=True), 0, "78.41"),
    Case("hateful memes infinite proba", lambda t: memes(t, row="10000,inf,1"), 2, "line 2 has proba 'inf', not a finite number"),
    Case("hateful memes nan proba", lambda t: memes(t, row="10000,nan,1"), 2, "has proba 'nan', not a finite number"),
    Case("hateful memes unicode digit id", lambda t: memes(t, row="10000,0.511,1\n²,0.5,1"), 2, "not in dev.jsonl: ²"),
]


def vqa_paths(tmp: Path) -> list[str]:
    return ["vqav2", str(tmp / "predictions.json"), str(tmp / "annotations.json")]


def with_bom_args(args: list[str]) -> list[str]:
    with_bom(Path(args[1]))
    return args


# ---------------------------------------------------------------- `evals run` cases: the task readers, on DATA_DIR

def demo_copy(tmp: Path, demo: str, folder: str, names: tuple[str, ...]) -> Path:
    for name in names:
        copy(DEMO / demo / name, tmp / "data" / folder / name)
    return tmp / "data" / folder


def run_args(tmp: Path, task: str) -> list[str]:
    return ["--model", "scripted", "--task", task, "--data-dir", str(tmp / "data"), "--output-dir", str(tmp / "out")]


VQA_DEMO = ("v2_OpenEnded_mscoco_train2014_questions.json", "v2_mscoco_train2014_annotations.json",
            "v2_OpenEnded_mscoco_val2014_questions.json", "v2_mscoco_val2014_annotations.json")
VISDIAL_DEMO = ("visdial_1.0_train.json", "visdial_1.0_val.json", "visdial_1.0_val_dense_annotations.json")


def vqav2_data(tmp: Path, change: Callable, bom: bool = False) -> list[str]:
    folder = demo_copy(tmp, "vqa", "vqav2", VQA_DEMO)
    for split in ("train2014", "val2014"):
        path = edit_json(folder / f"v2_mscoco_{split}_annotations.json", change)
        if bom:
            with_bom(path), with_bom(folder / f"v2_OpenEnded_mscoco_{split}_questions.json")
    return run_args(tmp, "vqav2")


def textvqa_data(tmp: Path, top: dict) -> list[str]:
    folder = tmp / "data" / "textvqa"
    folder.mkdir(parents=True)
    for split in ("train", "val"):
        (folder / f"TextVQA_0.5.1_{split}.json").write_text(json.dumps(top))
    return run_args(tmp, "textvqa")


def visdial_data(tmp: Path, change: Callable) -> list[str]:
    folder = demo_copy(tmp, "visdial", "visdial", VISDIAL_DEMO)
    edit_json(folder / "visdial_1.0_val_dense_annotations.json", change)
    return run_args(tmp, "visdial")


def memes_data(tmp: Path, line: int, change: Callable, bom: bool = False) -> list[str]:
    folder = demo_copy(tmp, "hateful_memes", "hateful_memes", ("train.jsonl", "dev_seen.jsonl"))
    for name in ("train.jsonl", "dev_seen.jsonl"):
        edit_jsonl(folder / name, line, change)
        if bom:
            with_bom(folder / name)
    return run_args(tmp, "hateful_memes")


def winoground_data(tmp: Path, change: Callable) -> list[str]:
    folder = demo_copy(tmp, "winoground", "winoground", ("examples.jsonl",))
    edit_jsonl(folder / "examples.jsonl", 1, change)
    return [*run_args(tmp, "winoground"), "--shots", "0"]


def first_annotation(change: Callable) -> Callable:
    return lambda value: change(value["annotations"][0])


RUN_CASES = [
    Case("run vqav2 answers an integer", lambda t: vqav2_data(t, first_annotation(lambda a: a.update(answers=3))),
         2, "field 'answers' is an int, not a list", "run"),
    Case("run vqav2 answer not a string", lambda t: vqav2_data(t, first_annotation(lambda a: a["answers"][1].update(answer=None))),
         2, "answer #1: field 'answer' is null, not a string", "run"),
    # The byte-order mark is read past: the error is the broken field behind it, not "Unexpected UTF-8 BOM".
    Case("run vqav2 json with bom", lambda t: vqav2_data(t, first_annotation(lambda a: a.update(answers={})), bom=True),
         2, "field 'answers' is a dict, not a list", "run"),
    Case("run textvqa data not a list", lambda t: textvqa_data(t, {"data": {"1": 2}}),
         2, "field 'data' is a dict, not a list", "run"),
    Case("run textvqa ocr_tokens an integer", lambda t: textvqa_data(t, {"data": [textvqa_question(ocr_tokens=7)]}),
         2, "question 1: field 'ocr_tokens' is an int, not a list", "run"),
    Case("run visdial infinite relevance", lambda t: visdial_data(t, infinity_relevance),
         2, "'gt_relevance' is not a list of 100 finite numbers", "run"),
    Case("run hateful memes text not a string", lambda t: memes_data(t, 2, lambda r: r.update(text=12)),
         2, "line 2: field 'text' is an int, not a string", "run"),
    Case("run hateful memes jsonl with bom", lambda t: memes_data(t, 2, lambda r: r.update(img=None), bom=True),
         2, "line 2: field 'img' is null, not a string", "run"),
    Case("run winoground caption not a string", lambda t: winoground_data(t, lambda r: r.update(caption_1=[1])),
         2, "line 1: field 'caption_1' is a list, not a string", "run"),
]


def run_cli(monkeypatch, capsys, command: str, args: list[str]) -> tuple[int, str, str]:
    if command == "score":
        task, predictions, annotations = args
        args = [task, "--predictions", predictions, "--annotations", annotations]
    return call_evals(monkeypatch, capsys, [command, *args])


@pytest.mark.parametrize("case", SCORE_CASES + RUN_CASES, ids=lambda case: case.name)
def test_hostile_data(monkeypatch, capsys, tmp_path, case):
    code, out, err = run_cli(monkeypatch, capsys, case.command, case.build(tmp_path))
    assert "Traceback" not in out + err
    assert code == case.code, err
    if case.code == 0:
        assert case.fragment in out, out
        return
    assert_refused(code, out, err, case.code, case.fragment)
