"""Hostile benchmark data: the readers of DocVQA, MathVista, MMMU, ScienceQA and MMBench (official files and
Hugging Face copies) refuse a bad field with one line naming the file (or dataset and split), the record and the
field (exit 2), never a traceback or a score."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import assert_refused, call_evals
from tests.test_hostile_data import edit_json
from tests.test_tasks_docvqa import VAL_ANSWERS, write_split
from tests.test_tasks_mathvista import write_testmini
from tests.test_tasks_mmbench import HEADER, ROWS, png_base64, write_tsv
from tests.test_tasks_mmmu import VALIDATION, row
from tests.test_tasks_scienceqa import scienceqa_tree


def run_args(tmp: Path, task: str) -> list[str]:
    return ["run", "--model", "scripted", "--task", task, "--data-dir", str(tmp / "data"),
            "--output-dir", str(tmp / "out"), "--limit", "2", "--shots", "0,2"]


def first(change: Callable[[dict], None]) -> Callable[[list], None]:
    return lambda records: change(records[0])


def put(key: str, value) -> Callable[[dict], None]:
    return lambda record: record.__setitem__(key, value)


def save_hf(folder: Path, splits: dict[str, list[dict]], features: dict | None = None) -> None:
    """A save_to_disk copy; `features` (column: datasets feature) where inference would guess another type."""
    import datasets

    datasets.disable_progress_bars()
    columns = {column for rows in splits.values() for r in rows for column in r}
    typed = datasets.Features({k: v for k, v in features.items() if k in columns} if features else {})
    parts = {name: datasets.Dataset.from_list(rows, features=typed or None) if rows else
             datasets.Dataset.from_dict({column: [] for column in typed}, features=typed) for name, rows in splits.items()}
    datasets.DatasetDict(parts).save_to_disk(str(folder))


def strings(*columns: str) -> dict:
    import datasets

    return {column: datasets.Value("string") for column in columns}


def image_feature():
    import datasets

    return datasets.Image()


# ---------------------------------------------------------------- DocVQA

def docvqa(tmp: Path, change: Callable[[list], None]) -> list[str]:
    root = tmp / "data" / "docvqa"
    write_split(root, "train", [["a"], ["b"], ["c"]])
    write_split(root, "val", VAL_ANSWERS)
    edit_json(root / "val" / "val_v1.0.json", lambda value: change(value["data"]))
    return run_args(tmp, "docvqa")


def docvqa_hf(tmp: Path, question=None, drop: str | None = None, empty: str = "") -> list[str]:
    from PIL import Image

    rows = [{"questionId": n, "question": question, "answers": ["x"],
             "image": Image.new("RGB", (8, 8))} for n in (1, 2, 3)]
    rows = [{k: v for k, v in r.items() if k != drop} for r in rows]
    save_hf(tmp / "data" / "docvqa", {split: [] if split == empty else rows for split in ("train", "validation")})
    return run_args(tmp, "docvqa")


def missing_document(tmp: Path) -> list[str]:
    args = docvqa(tmp, lambda data: None)
    (tmp / "data" / "docvqa" / "val" / "documents" / "doc0.png").unlink()
    return args


# ---------------------------------------------------------------- MathVista

def mathvista(tmp: Path, change: Callable[[dict], None]) -> list[str]:
    root = tmp / "data" / "mathvista"
    write_testmini(root)
    edit_json(root / "testmini.json", lambda problems: change(problems["1"]))
    return run_args(tmp, "mathvista")


def mathvista_hf(tmp: Path, answer=None, image: str | None = None) -> list[str]:
    import datasets
    from PIL import Image

    rows = [{"pid": str(n), "query": "How many?", "choices": None, "answer": answer if n == 1 else "3",
             "question_type": "free_form", "answer_type": "integer", "precision": None,
             "decoded_image": image or Image.new("RGB", (8, 8))} for n in (1, 2, 3)]
    features = {**strings("pid", "query", "question_type", "answer_type"), "choices": datasets.Sequence(datasets.Value("string")),
                "answer": datasets.Value("int64" if isinstance(answer, int) else "string"),
                "precision": datasets.Value("float64"),
                "decoded_image": datasets.Value("string") if image else image_feature()}
    save_hf(tmp / "data" / "mathvista", {"testmini": rows}, features)
    return run_args(tmp, "mathvista")


# ---------------------------------------------------------------- MMMU (a save_to_disk copy only)

def mmmu(tmp: Path, change: Callable[[dict], None] = lambda r: None, types: dict | None = None,
         every: Callable[[dict], dict] = lambda r: r, validation: list[dict] | None = None) -> list[str]:
    """A copy whose first validation row `change` edits; `every` rewrites each row of both splits (a column's type)."""
    rows = [dict(r) for r in VALIDATION] if validation is None else validation
    if rows:
        change(rows[0])
    dev = [row(n, "dev", "Which? <image 1>", "['a', 'b']", "A", "multiple-choice") for n in (1, 2, 3, 4, 5)]
    features = {**strings("id", "question", "options", "answer", "question_type"),
                **{f"image_{k}": image_feature() for k in range(1, 8)}, **(types or {})}
    save_hf(tmp / "data" / "mmmu", {"dev": [every(r) for r in dev], "validation": [every(r) for r in rows]}, features)
    return run_args(tmp, "mmmu")


def int64():
    import datasets

    return datasets.Value("int64")


def mmmu_without_options(tmp: Path) -> list[str]:
    return mmmu(tmp, every=lambda r: {k: v for k, v in r.items() if k != "options"})


def mmmu_int_question(tmp: Path) -> list[str]:
    return mmmu(tmp, types={"question": int64()}, every=lambda r: {**r, "question": 7})


def mmmu_image_text(tmp: Path) -> list[str]:
    images = {f"image_{k}": "picture.png" for k in range(1, 8)}
    return mmmu(tmp, types={column: strings("x")["x"] for column in images}, every=lambda r: {**r, **images})


# ---------------------------------------------------------------- ScienceQA

def scienceqa(tmp: Path, problems: Callable[[dict], None] = lambda p: None,
              splits: Callable[[dict], None] = lambda s: None) -> list[str]:
    root = scienceqa_tree(tmp / "data" / "scienceqa")
    edit_json(root / "problems.json", problems)
    edit_json(root / "pid_splits.json", splits)
    return run_args(tmp, "scienceqa")


def problem_10(change: Callable[[dict], None]) -> Callable[[dict], None]:
    return lambda problems: change(problems["10"])


def scienceqa_missing_image(tmp: Path) -> list[str]:
    args = scienceqa(tmp)
    (tmp / "data" / "scienceqa" / "images" / "test" / "10" / "image.png").unlink()
    return args


def scienceqa_hf(tmp: Path, hint=None) -> list[str]:
    import datasets
    from PIL import Image

    rows = [{"question": f"Which {n}?", "choices": ["a", "b"], "answer": 1, "hint": hint,
             "solution": "", "image": Image.new("RGB", (8, 8))} for n in range(6)]
    features = {**strings("question", "solution"), "choices": datasets.Sequence(datasets.Value("string")),
                "answer": datasets.Value("int64"), "hint": datasets.Value("int64" if isinstance(hint, int) else "string"),
                "image": image_feature()}
    save_hf(tmp / "data" / "scienceqa", {"train": rows, "test": rows}, features)
    return run_args(tmp, "scienceqa")


# ---------------------------------------------------------------- MMBench

def mmbench(tmp: Path, change: Callable[[list], None] = lambda r: None) -> list[str]:
    rows = [list(r) for r in ROWS]
    change(rows)
    write_tsv(tmp / "data" / "mmbench", rows)
    return run_args(tmp, "mmbench")


def mmbench_text(tmp: Path, lines: list[str]) -> list[str]:
    root = tmp / "data" / "mmbench"
    root.mkdir(parents=True)
    (root / "MMBench_DEV_EN.tsv").write_text("\n".join(lines) + "\n")
    return run_args(tmp, "mmbench")


def tsv_line(cells: list[str], image: str | None = None) -> str:
    return "\t".join([*cells, png_base64() if image is None else image])


def mmbench_hf(tmp: Path, question=None) -> list[str]:
    import datasets
    from PIL import Image

    rows = [{"index": n, "question": question, "hint": None, "A": "yes", "B": "no",
             "C": None, "D": None, "answer": "A", "category": "color", "image": Image.new("RGB", (8, 8))} for n in range(3)]
    features = {"index": datasets.Value("int64"), **strings("hint", "A", "B", "C", "D", "answer", "category"),
                "question": datasets.Value("int64" if isinstance(question, int) else "string"), "image": image_feature()}
    save_hf(tmp / "data" / "mmbench", {"dev": rows}, features)
    return run_args(tmp, "mmbench")


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], list[str]]  # the arguments of `evals`, data written under tmp_path
    fragment: str  # in the one error line
    code: int = 2


CASES = [
    # DocVQA, the official JSON
    Case("docvqa question a list", lambda t: docvqa(t, first(put("question", ["a"]))),
         "val_v1.0.json: question 3000: field 'question' is a list, not a string"),
    Case("docvqa image null", lambda t: docvqa(t, first(put("image", None))),
         "question 3000: field 'image' is null, not a string"),
    Case("docvqa questionId a bool", lambda t: docvqa(t, first(put("questionId", True))),
         "val_v1.0.json: entry #0: field 'questionId' is a bool, not an integer or a string"),
    Case("docvqa questionId a float", lambda t: docvqa(t, first(put("questionId", 3000.5))),
         "entry #0: field 'questionId' is a float, not an integer or a string"),
    Case("docvqa questionId a list", lambda t: docvqa(t, first(put("questionId", [1]))),
         "entry #0: field 'questionId' is a list"),
    Case("docvqa entry not an object", lambda t: docvqa(t, lambda data: data.__setitem__(0, "q")),
         "val_v1.0.json: entry #0 is not a JSON object"),
    Case("docvqa document missing", missing_document, "question 3000: image file"),
    Case("docvqa answers hold a number", lambda t: docvqa(t, first(put("answers", ["a", 5]))),
         "question 3000: an entry of 'answers' is neither a string"),
    Case("docvqa question_types a string", lambda t: docvqa(t, first(put("question_types", "form"))),
         "question 3000: field 'question_types' is a str, not a list"),
    Case("docvqa empty split", lambda t: docvqa(t, lambda data: data.clear()), "val_v1.0.json: no examples in this split"),
    # DocVQA, a Hugging Face copy
    Case("docvqa hf question a number", lambda t: docvqa_hf(t, question=12),
         "row 0: field 'question' is an int, not a string"),
    Case("docvqa hf no answers column", lambda t: docvqa_hf(t, question="Total?", drop="answers"),
         "[train] row 0: no field 'answers'"),
    Case("docvqa hf empty split", lambda t: docvqa_hf(t, question="Total?", empty="validation"),
         "a split of the folder holds no rows"),
    # MathVista, the official JSON
    Case("mathvista pid a bool", lambda t: mathvista(t, put("pid", True)),
         "testmini.json: problem #0: field 'pid' is a bool, not an integer or a string"),
    Case("mathvista query null", lambda t: mathvista(t, put("query", None)),
         "testmini.json: problem 1: field 'query' is null, not a string"),
    Case("mathvista choices a string", lambda t: mathvista(t, put("choices", "yes, no")),
         "problem 1: field 'choices' is a str, not a list"),
    Case("mathvista choices hold a number", lambda t: mathvista(t, put("choices", ["yes", 2])),
         "problem 1: field 'choices' holds a value that is not a string"),
    Case("mathvista answer a number", lambda t: mathvista(t, put("answer", 3)),
         "problem 1: field 'answer' is an int, not a string"),
    Case("mathvista answer not among choices", lambda t: mathvista(t, put("answer", "maybe")),
         "problem 1: field 'answer' 'maybe' is not one of its choices"),
    Case("mathvista question_type unknown", lambda t: mathvista(t, put("question_type", "multiple")),
         "problem 1: field 'question_type' 'multiple' is not one of"),
    Case("mathvista answer_type unknown", lambda t: mathvista(t, put("answer_type", "number")),
         "problem 1: field 'answer_type' 'number' is not one of"),
    Case("mathvista precision a string", lambda t: mathvista(t, put("precision", "two")),
         "problem 1: field 'precision' 'two' is not a whole number of decimal places"),
    Case("mathvista precision a bool", lambda t: mathvista(t, put("precision", True)),
         "problem 1: field 'precision' True is not a whole number"),
    Case("mathvista precision a fraction", lambda t: mathvista(t, put("precision", 1.5)),
         "problem 1: field 'precision' 1.5 is not a whole number"),
    Case("mathvista metadata a list", lambda t: mathvista(t, put("metadata", ["figure QA"])),
         "problem 1: field 'metadata' is a list, not an object"),
    Case("mathvista image missing", lambda t: mathvista(t, put("image", "images/none.jpg")),
         "problem 1: image file"),
    Case("mathvista image a number", lambda t: mathvista(t, put("image", 1)),
         "problem 1: field 'image' is an int, not a string"),
    # MathVista, a Hugging Face copy
    Case("mathvista hf answer a number", lambda t: mathvista_hf(t, answer=3),
         "[testmini] row 0: field 'answer' is an int, not a string"),
    Case("mathvista hf image column holds text", lambda t: mathvista_hf(t, answer="3", image="1.jpg"),
         "[testmini]: column 'decoded_image' holds string values, not images"),
    # MMMU (Hugging Face copies)
    Case("mmmu options not a list literal", lambda t: mmmu(t, put("options", "red, blue")),
         "[validation] row 0: field 'options' is not a Python list of strings"),
    Case("mmmu options hold a number", lambda t: mmmu(t, put("options", "['red', 2]")),
         "row 0: field 'options' is not a Python list of strings"),
    Case("mmmu options malformed", lambda t: mmmu(t, put("options", "['red', 'blue'")),
         "row 0: field 'options' is not a Python list of strings"),
    Case("mmmu answer letter not an option", lambda t: mmmu(t, put("answer", "E")),
         "row 0: field 'answer' 'E' is not one of its 2 option letters"),
    Case("mmmu question a number", mmmu_int_question, "row 0: field 'question' is an int, not a string"),
    Case("mmmu id null", lambda t: mmmu(t, put("id", None)), "[validation] row 0: field 'id' is null"),
    Case("mmmu no options column", mmmu_without_options, "row 0: no field 'options'"),
    Case("mmmu image column holds text", mmmu_image_text, "column 'image_1' holds"),
    Case("mmmu empty split", lambda t: mmmu(t, validation=[]), "a split of the folder holds no rows"),
    # ScienceQA, the official files
    Case("scienceqa split list a string", lambda t: scienceqa(t, splits=put("test", "10 11")),
         "pid_splits.json: the top level: field 'test' is a str, not a list"),
    Case("scienceqa pid null", lambda t: scienceqa(t, splits=lambda s: s["test"].insert(0, None)),
         "pid_splits.json: 'test' entry #0 is null, not an integer or a string"),
    Case("scienceqa question a list", lambda t: scienceqa(t, problem_10(put("question", ["a"]))),
         "problems.json: problem 10: field 'question' is a list, not a string"),
    Case("scienceqa hint a number", lambda t: scienceqa(t, problem_10(put("hint", 4))),
         "problem 10: field 'hint' is an int, not a string"),
    Case("scienceqa split a list", lambda t: scienceqa(t, problem_10(put("split", ["test"]))),
         "problem 10: field 'split' is a list, not a string"),
    Case("scienceqa answer a bool", lambda t: scienceqa(t, problem_10(put("answer", True))),
         "problem 10: field 'answer' True is not an index"),
    Case("scienceqa answer out of range", lambda t: scienceqa(t, problem_10(put("answer", 3))),
         "problem 10: field 'answer' 3 is not an index into its 3 choices"),
    Case("scienceqa image missing", scienceqa_missing_image, "problem 10: image file"),
    Case("scienceqa hf hint a number", lambda t: scienceqa_hf(t, hint=4), "[train] row 0: field 'hint' is an int, not a string"),
    # MMBench, the official TSV
    Case("mmbench no answer column", lambda t: mmbench_text(t, ["\t".join(h for h in HEADER if h != "answer")]),
         "MMBench_DEV_EN.tsv: no column 'answer'"),
    Case("mmbench row short of a column", lambda t: mmbench_text(t, ["\t".join(HEADER), tsv_line(ROWS[0][:-1])]),
         "MMBench_DEV_EN.tsv: line 2 has 10 columns, the header 11"),
    Case("mmbench row a column too many", lambda t: mmbench_text(t, ["\t".join(HEADER), tsv_line([*ROWS[0], "x"])]),
         "MMBench_DEV_EN.tsv: line 2 has 12 columns, the header 11"),
    Case("mmbench image not base64", lambda t: mmbench_text(t, ["\t".join(HEADER), tsv_line(ROWS[0], "@@@")]),
         "index 1: field 'image' is not base64-encoded image data"),
    Case("mmbench image base64 of text", lambda t: mmbench_text(t, ["\t".join(HEADER), tsv_line(ROWS[0], "aGVsbG8=")]),
         "index 1: field 'image' is not base64-encoded image data"),
    Case("mmbench answer not an option", lambda t: mmbench(t, lambda rows: rows[0].__setitem__(7, "C")),
         "index 1: field 'answer' 'C' is not one of its 2 option letters"),
    Case("mmbench option skipped", lambda t: mmbench(t, lambda rows: rows[2].__setitem__(4, "")),
         "index 3: option B is empty but option C is not"),
    Case("mmbench index not an integer", lambda t: mmbench(t, lambda rows: rows[0].__setitem__(0, "1.0")),
         "field 'index' '1.0' is not an integer"),
    Case("mmbench empty split", lambda t: mmbench_text(t, ["\t".join(HEADER)]), "MMBench_DEV_EN.tsv: no examples in this split"),
    # MMBench, a Hugging Face copy
    Case("mmbench hf question a number", lambda t: mmbench_hf(t, question=5),
         "[dev] row 0: field 'question' is an int, not a string"),
]


@pytest.fixture(autouse=True)
def image_cache(tmp_path, monkeypatch):
    monkeypatch.setattr("tasks.multiple_choice.IMAGE_CACHE", tmp_path / "cache")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_hostile_benchmark_data(monkeypatch, capsys, tmp_path, case):
    assert_refused(*call_evals(monkeypatch, capsys, case.build(tmp_path)), case.code, case.fragment)


def test_valid_copies_still_run(monkeypatch, capsys, tmp_path):
    """The builders' untouched data runs: each case fails for its one edit, not for the builder."""
    for task, build in (("docvqa", lambda t: docvqa(t, lambda d: None)), ("mathvista", lambda t: mathvista(t, lambda p: None)),
                        ("mmmu", mmmu), ("scienceqa", scienceqa), ("mmbench", mmbench)):
        code, out, err = call_evals(monkeypatch, capsys, build(tmp_path / task))
        assert code == 0 and task in out, err
