"""DocVQA (Mathew et al. 2021, arXiv 2007.00398): questions on document images, answered with a short text span
and scored by ANLS (metrics/anls.py). Shots from train, queries from val (test has no answers).

Layout (the official release, one folder per split): `{split}/{split}_v1.0.json` ({"dataset_name", "dataset_split",
"data": [{"questionId", "question", "image": "documents/xxx.png", "docId", "answers": [...], ...}]}), the image
path relative to that folder; the JSON may also sit at the top as `{split}_v1.0.json`. The Hugging Face copy
(`--source docvqa=lmms-lab/DocVQA:DocVQA`, the hub id and its config) has the columns questionId, question, answers,
image, but only validation and test splits: for shots (and the zero-shot text-only ones), save its validation split
with `save_to_disk` together with a train split and pass that folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.records import Example, GenerationParams, ImageRef
from evals.registry import TASKS
from metrics.anls import anls
from tasks.base import (MetricResult, Task, checked_id, checked_text, checked_texts, existing_image, gold_answer, not_empty,
                        read_json, require, require_id, require_list, require_text)
from tasks.hf import HFSpec, Row
from tasks.multiple_choice import answer_line
from tasks.vqa import answer_strings

QUESTIONS = "{split}_v1.0.json"
LAYOUT = f"{{split}}/{QUESTIONS} (split: train, val) with the documents/ images its entries name"


def questions_file(root: Path, split: str) -> Path:
    """The split's JSON in its own folder (as the release unpacks) or at the top of the task folder."""
    nested = root / split / QUESTIONS.format(split=split)
    return nested if nested.is_file() else root / QUESTIONS.format(split=split)


def load_docvqa(root: Path, split: str) -> list[Example]:
    path = questions_file(root, split)
    entries = require_list(read_json(path), "data", path, "the top level")
    return not_empty([question_example(entry, i, path, split) for i, entry in enumerate(entries)], str(path))


def question_example(entry: Any, i: int, path: Path, split: str) -> Example:
    """Entry `i` of the split's file, each field checked; errors name the file, the question and the field."""
    qid = require_id(entry, "questionId", path, f"entry #{i}")
    where = f"question {qid}"
    image = require_text(entry, "image", path, where)
    types = entry.get("question_types")
    return Example(
        id=qid,
        images=(ImageRef(f"{split}/{image}", existing_image(path.parent / image, f"{path}: {where}")),),
        fields={"question": require_text(entry, "question", path, where)},
        references=answer_strings(require(entry, "answers", path, where), f"{path}: {where}"),
        meta={"question_type": ",".join(checked_texts(types, "question_types", f"{path}: {where}") if types else ())},
    )


def hf_docvqa(row: Row) -> Example:
    """A lmms-lab/DocVQA row: the same id, question and answers as the official file."""
    qid = checked_id(row.get("questionId"), "questionId", row.where())
    question = checked_text(row.get("question"), "question", row.where())
    return Example(qid, (row.image("image", f"{row.split}/{qid}"),), {"question": question},
                   answer_strings(row.get("answers"), row.where()))


def score_anls(predictions: Mapping[str, str], examples: Sequence[Example]) -> MetricResult:
    """ANLS (0-100): each question's best normalised similarity to a gold answer, averaged."""
    per_sample = {e.id: 100.0 * anls(predictions[e.id], e.references) for e in examples}
    return MetricResult({"anls": sum(per_sample.values()) / len(examples)}, per_sample)


TASKS.add("docvqa", Task(
    name="docvqa", paper="Mathew et al. 2021, arXiv 2007.00398", kind="generate", load=load_docvqa,
    support_split="train", query_split="val", template="docvqa", shot_answer=gold_answer,
    postprocess=answer_line, metric=score_anls, headline="anls", layout=LAYOUT, data_folder="docvqa",
    # Answers are spans of a document (names, dates, amounts): longer than VQA's one or two words.
    generation=GenerationParams(max_new_tokens=20, num_beams=3, length_penalty=0.0),
    hf=HFSpec(hf_docvqa, {"train": "train", "val": "validation"}, hub_id="lmms-lab/DocVQA:DocVQA"),
))
