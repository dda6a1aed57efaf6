"""ScienceQA (Lu et al. 2022, arXiv 2209.09513): multiple-choice science questions, each choice ranked by
log-likelihood; the problems with an image, as IDEFICS evaluated it (the test split's image subset).

Layout (the official release): `problems.json` ({pid: {question, choices, answer (index), hint, image (file
name or null), split, subject, grade, lecture, solution, ...}}), `pid_splits.json` ({split: [pid, ...]}) and
images `images/{split}/{pid}/{image}` (`image.png`), where the release's tools/download.sh unzips them; a copy
without the `images/` folder may hold `{split}/{pid}/{image}` beside the JSON files. The Hugging Face copy
(derek-thomas/ScienceQA) has the same fields as columns, the image inline (null when the problem has none),
and no pid: ids are `<split>/<row>`.

The solution may be shown in shots (`scienceqa_explained`), never in the query: it is a field placed after
the answer by the template, and `rank_queries` blanks it in the query example, whatever the template says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.records import Example, ImageRef
from evals.registry import TASKS
from metrics.ranking import order_by_score
from tasks.base import (DataSource, MetricResult, RankQuery, Task, checked_text, existing_image, gold_answer,
                        not_empty, read_json, require, require_list, type_name)
from tasks.classification import top1_accuracy
from tasks.hf import HFSpec, Row, open_split

PROBLEMS, PID_SPLITS, IMAGES, IMAGE = "problems.json", "pid_splits.json", "images", "{split}/{pid}/{image}"
LETTERS = "ABCDEFGHIJ"


def checked_choices(problem: Mapping[str, Any], where: str) -> tuple[list[str], int]:
    """The choices and the gold index; `where` names the file and problem in errors."""
    choices, answer = problem["choices"], problem["answer"]
    if not isinstance(choices, list) or not 1 <= len(choices) <= len(LETTERS) or not all(isinstance(c, str) for c in choices):
        raise DataError(f"{where}: field 'choices' is {repr(choices)[:60]}, not a list of 1 to {len(LETTERS)} strings")
    # bool is an int in Python: `true` would otherwise pass as choice 1
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise DataError(f"{where}: field 'answer' {answer!r} is not an index into its {len(choices)} choices")
    return choices, answer


def problem_example(example_id: str, image: ImageRef, problem: Mapping[str, Any], where: str) -> Example:
    """One problem: fields question, context (the hint), options and solution; the gold choice as reference."""
    choices, answer = checked_choices(problem, where)
    hint = checked_text(problem.get("hint"), "hint", where, optional=True).strip()
    fields = {
        "question": checked_text(problem["question"], "question", where),
        "context": f"\nContext: {hint}" if hint else "",
        "options": "\nOptions: " + " ".join(f"({letter}) {c}" for letter, c in zip(LETTERS, choices)),
        "solution": checked_text(problem.get("solution"), "solution", where, optional=True).strip(),
    }
    meta = {"choices": json.dumps(choices), **{key: checked_text(problem.get(key), key, where, optional=True)
                                               for key in ("subject", "grade")}}
    return Example(example_id, (image,), fields, (choices[answer],), meta)


def image_path(images: Path, problem: Mapping[str, Any], pid: str, split: str, where: str) -> Path:
    """The problem's image file, checked now so that a missing one is named before any model runs."""
    if not isinstance(problem["image"], str):
        raise DataError(f"{where}: field 'image' is {problem['image']!r}, not a file name or null")
    folder = checked_text(problem.get("split", split), "split", where)
    return existing_image(images / IMAGE.format(split=folder, pid=pid, image=problem["image"]), where)


def split_pids(splits: Any, split: str, path: Path) -> list[str]:
    """The pids pid_splits.json lists under `split`, each an integer or a string."""
    pids = require_list(splits, split, path, "the top level")
    for i, pid in enumerate(pids):
        if isinstance(pid, bool) or not isinstance(pid, (int, str)):
            raise DataError(f"{path}: '{split}' entry #{i} is {type_name(pid)}, not an integer or a string")
    return [str(pid) for pid in pids]


def load_scienceqa(root: Path, split: str) -> list[Example]:
    """The split's problems that have an image, in pid_splits order."""
    problems_path, splits_path = root / PROBLEMS, root / PID_SPLITS
    images = root / IMAGES if (root / IMAGES).is_dir() else root
    problems, splits = read_json(problems_path), read_json(splits_path)
    pids = split_pids(splits, split, splits_path)
    if not isinstance(problems, Mapping):
        raise DataError(f"{problems_path}: expected a JSON object {{pid: problem}} at the top level")
    examples = []
    for pid in pids:
        if pid not in problems:
            raise DataError(f"{problems_path}: no problem {pid} (listed under '{split}' in {splits_path.name})")
        problem = problems[pid]
        for key in ("question", "choices", "answer", "image"):
            require(problem, key, problems_path, f"problem {pid}")
        if problem["image"] is None:
            continue  # the text-only problems are not part of the image subset
        where = f"{problems_path}: problem {pid}"
        image = ImageRef(f"scienceqa/{pid}", image_path(images, problem, pid, split, where))
        examples.append(problem_example(pid, image, problem, where))
    return examples


@lru_cache(maxsize=16)
def rows_with_image(location: str, split: str) -> tuple[bool, ...]:
    """Which rows of a Hugging Face split have an image, read from the column's nulls without decoding one."""
    table = open_split(location, split).data
    if "image" not in table.column_names:
        raise DataError(f"{location} [{split}]: no column 'image'")
    return tuple(not null for null in table.column("image").is_null().to_pylist())


def hf_problem(row: Row) -> Example:
    """A derek-thomas/ScienceQA row; a row without an image becomes an image-less example, dropped by `read`."""
    example_id = f"{row.split}/{row.index}"
    problem = {key: row.get(key) for key in ("question", "choices", "answer", "hint", "solution")}
    problem.update(subject=row.values.get("subject", ""), grade=row.values.get("grade", ""))
    example = problem_example(example_id, row.image("image", example_id), problem, row.where())
    return example if rows_with_image(row.location, row.split)[row.index] else replace(example, images=())


@dataclass(frozen=True)
class ImageSubsetTask(Task):
    """A task over the examples that have an image, from official files or a Hugging Face copy alike."""

    def read(self, source: DataSource, split: str) -> list[Example]:
        examples = [e for e in super().read(source, split) if e.images]
        return not_empty(examples, f"{source.location} [{split}], its problems with an image")


def choices_of(example: Example) -> tuple[str, ...]:
    return tuple(json.loads(example.meta["choices"]))


def choice_queries(example: Example) -> list[RankQuery]:
    """The problem as the query shows it (its solution blanked) with its choices as the candidates."""
    return [RankQuery(replace(example, fields={**example.fields, "solution": ""}), choices_of(example))]


def best_choice(example: Example, scores: Sequence[Sequence[float]]) -> dict[str, Any]:
    (row,) = scores
    index = order_by_score(row)[0]
    return {"label": choices_of(example)[index], "index": index}


def by_meta(key: str, per_sample: Mapping[str, float], examples: Sequence[Example]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for e in examples:
        groups.setdefault(e.meta.get(key) or "unknown", []).append(per_sample[e.id])
    return {group: sum(scores) / len(scores) for group, scores in sorted(groups.items())}


def score_scienceqa(predictions: Mapping[str, Any], examples: Sequence[Example]) -> MetricResult:
    """Accuracy (0-100) of the chosen answer, with the paper's breakdowns by subject and grade."""
    result = top1_accuracy(predictions, examples)
    groups = {"by_subject": "subject", "by_grade": "grade"}
    return replace(result, breakdowns={name: by_meta(key, result.per_sample, examples) for name, key in groups.items()})


def scienceqa_task(name: str, **overrides) -> Task:
    """Declare and register a ScienceQA-format benchmark."""
    settings = {
        "name": name, "paper": "Lu et al. 2022, arXiv 2209.09513", "kind": "rank", "load": load_scienceqa,
        "support_split": "train", "query_split": "test", "template": "scienceqa", "shot_answer": gold_answer,
        "rank_queries": choice_queries, "decide": best_choice, "metric": score_scienceqa, "headline": "accuracy",
        "layout": f"{PROBLEMS}, {PID_SPLITS}, {IMAGES}/{IMAGE}", "zero_shot_text_shots": 0,
        "submission_format": "classification", "data_folder": "scienceqa",
        "hf": HFSpec(hf_problem, {"train": "train", "val": "validation", "test": "test"}, hub_id="derek-thomas/ScienceQA"),
    }
    return TASKS.add(name, ImageSubsetTask(**{**settings, **overrides}))


scienceqa_task("scienceqa")
# The shots also show their solution after the answer (ScienceQA's answer-then-explanation format); longer
# prompts, so fewer shots fit IDEFICS's 2,048-token context.
scienceqa_task("scienceqa_explained", template="scienceqa_explained")
