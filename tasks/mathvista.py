"""MathVista (Lu et al. 2023, arXiv 2310.02255): mathematical reasoning over figures, charts and scenes; the
model writes its answer, which is extracted and normalised as the official evaluation does without its GPT-4
step (metrics/choice.py: the official rules, then a documented regex fallback). Accuracy on testmini (1,000
problems, the only split with public answers): shots come from testmini too, never the query itself.

Layout (the official release): `testmini.json` ({pid: problem} or a list of problems) with fields pid, query
(MathVista's prompt: hint, question, lettered choices), choices (list or null), answer, question_type
(multi_choice | free_form), answer_type (integer | float | text | list), precision, unit, metadata, image
("images/<pid>.jpg", relative to the folder). The Hugging Face copy (AI4Math/MathVista, split testmini) has the
same columns, the image decoded in `decoded_image`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.records import Example, GenerationParams, ImageRef
from evals.registry import TASKS
from metrics.choice import mathvista_extract, mathvista_normalize
from tasks.base import (MetricResult, Task, checked_id, checked_text, checked_texts, existing_image, gold_answer, not_empty,
                        read_json, require, require_id, require_text, type_name)
from tasks.hf import HFSpec, Row
from tasks.multiple_choice import accuracy_result, answer_line

PROBLEMS = "{split}.json"
FIELDS = ("query", "answer", "question_type", "answer_type")


QUESTION_TYPES = ("multi_choice", "free_form")
ANSWER_TYPES = ("integer", "float", "text", "list")


def one_of(value: Any, key: str, allowed: Sequence[str], where: str) -> str:
    """A field that names one of a few kinds (question_type, answer_type), else a DataError naming it."""
    if checked_text(value, key, where) not in allowed:
        raise DataError(f"{where}: field '{key}' {value!r} is not one of: {', '.join(allowed)}")
    return value


def checked_precision(value: Any, where: str) -> str:
    """The decimal places a float answer is rounded to ("" for none): a whole number, as 1.0 or 1 (never a bool)."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value) \
            or value < 0:
        raise DataError(f"{where}: field 'precision' {value!r} is not a whole number of decimal places")
    return str(int(value))


def problem_example(pid: str, image: ImageRef, problem: Mapping[str, Any], where: str) -> Example:
    """One problem, each field checked; `where` names the file (or dataset row) and problem in errors."""
    question_type = one_of(problem["question_type"], "question_type", QUESTION_TYPES, where)
    answer = checked_text(problem["answer"], "answer", where)
    choices = [] if problem.get("choices") is None else checked_texts(problem["choices"], "choices", where)
    if question_type == "multi_choice" and not choices:
        raise DataError(f"{where}: a multi_choice problem has no field 'choices'")
    if question_type == "multi_choice" and answer not in choices:
        raise DataError(f"{where}: field 'answer' {answer!r} is not one of its choices")
    metadata = problem.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise DataError(f"{where}: field 'metadata' is {type_name(metadata)}, not an object")
    meta = {
        "question_type": question_type, "answer_type": one_of(problem["answer_type"], "answer_type", ANSWER_TYPES, where),
        "choices": "\n".join(c.replace("\n", " ") for c in choices),
        "precision": checked_precision(problem.get("precision"), where),
        "task": checked_text(metadata.get("task"), "metadata.task", where, optional=True),
    }
    return Example(pid, (image,), {"question": checked_text(problem["query"], "query", where)}, (answer,), meta)


def load_mathvista(root: Path, split: str) -> list[Example]:
    path = root / PROBLEMS.format(split=split)
    problems = read_json(path)
    if isinstance(problems, Mapping):
        problems = [{"pid": pid, **problem} if isinstance(problem, Mapping) else problem for pid, problem in problems.items()]
    if not isinstance(problems, list):
        raise DataError(f"{path}: expected {{pid: problem}} or a list of problems at the top level")
    examples = []
    for i, problem in enumerate(problems):
        pid = require_id(problem, "pid", path, f"problem #{i}")
        for key in FIELDS:
            require(problem, key, path, f"problem {pid}")
        where = f"{path}: problem {pid}"
        file = existing_image(root / require_text(problem, "image", path, f"problem {pid}"), where)
        examples.append(problem_example(pid, ImageRef(f"mathvista/{pid}", file), problem, where))
    return not_empty(examples, str(path))


def hf_mathvista(row: Row) -> Example:
    pid = checked_id(row.get("pid"), "pid", row.where())
    problem = {key: row.get(key) for key in FIELDS}
    problem.update({key: row.values.get(key) for key in ("choices", "precision", "metadata")})
    return problem_example(pid, row.image("decoded_image", f"mathvista/{pid}"), problem, row.where())


def is_correct(example: Example, prediction: str) -> bool:
    meta = example.meta
    choices = meta["choices"].split("\n") if meta["choices"] else []
    extraction = mathvista_extract(prediction, meta["question_type"], meta["answer_type"], choices)
    precision = int(meta["precision"]) if meta["precision"] else None
    normalized = mathvista_normalize(extraction, choices, meta["question_type"], meta["answer_type"], precision)
    return normalized is not None and normalized == example.references[0]


def score_mathvista(predictions: Mapping[str, str], examples: Sequence[Example]) -> MetricResult:
    """Accuracy (0-100) of the normalised extracted answer, by MathVista's task type."""
    return accuracy_result({e.id: is_correct(e, predictions[e.id]) for e in examples}, examples, "task")


TASKS.add("mathvista", Task(
    name="mathvista", paper="Lu et al. 2023, arXiv 2310.02255", kind="generate", load=load_mathvista,
    support_split="testmini", query_split="testmini", template="mathvista", shot_answer=gold_answer,
    postprocess=answer_line, metric=score_mathvista, headline="accuracy",
    layout=f"{PROBLEMS} (split: testmini), images/<pid>.jpg as each problem's 'image' names", data_folder="mathvista",
    generation=GenerationParams(max_new_tokens=20, num_beams=3, length_penalty=0.0),
    hf=HFSpec(hf_mathvista, {"testmini": "testmini"}, image_columns=("decoded_image",), hub_id="AI4Math/MathVista"),
))
