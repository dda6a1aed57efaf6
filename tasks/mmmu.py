"""MMMU (Yue et al. 2023, arXiv 2311.16502): college-level multi-discipline questions over one to seven images,
multiple choice or open, answered in text; the answer is extracted as MMMU's eval_utils.py does (metrics/choice.py).
Shots from dev (5 per subject), queries from validation (900); accuracy over validation, by subject.

Read from a Hugging Face copy: the hub's MMMU/MMMU has one config per subject (30), so save the subjects'
dev and validation splits, concatenated, with `save_to_disk` into DATA_DIR/mmmu (or pass the folder); one subject
reads straight from the hub with `--source mmmu=MMMU/MMMU:<Subject>` (e.g. MMMU/MMMU:Accounting). Columns:
id ("validation_Art_1"), question (with "<image 1>" placeholders), options (a Python-list string), answer (a
letter, or the open answer), question_type (multiple-choice | open), image_1..image_7, subfield.

Images go where the text names them: each "<image n>" in the question or options becomes the prompt's image
marker, in reading order; an image the text never names is shown before the question. The prompt's closing
instruction (field `instruction`) follows question_type: the option letter for multiple choice, a single word
or phrase for open questions. Where MMMU's rules find
no option the official code picks one at random: here that is a wrong answer (`accuracy`); the variant
`accuracy_random_fallback` draws the official random choice, seeded by the query id.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from evals.errors import DataError
from evals.records import Example, GenerationParams
from evals.registry import TASKS
from metrics.choice import LETTERS, mmmu_choice, mmmu_open_correct, mmmu_open_predictions, seeded_choice
from tasks.base import MetricResult, Task, checked_id, checked_text, gold_answer
from tasks.hf import HFSpec, Row, open_split
from tasks.multiple_choice import accuracy_result, answer_line, lettered_options, options_of

IMAGE_COLUMNS = tuple(f"image_{n}" for n in range(1, 8))
PLACEHOLDER = re.compile(r"<image (\d+)>")
# The instruction each question's prompt ends with, by question_type (the lmms-eval / LLaVA MMMU prompts).
INSTRUCTIONS = {"multiple-choice": "Answer with the option's letter from the given choices directly.",
                "open": "Answer the question using a single word or phrase."}
LAYOUT = "a save_to_disk folder (splits dev, validation) of MMMU/MMMU's 30 subject configs, concatenated"


@lru_cache(maxsize=16)
def image_columns_present(location: str, split: str) -> tuple[tuple[str, ...], ...]:
    """Per row, the image columns that hold an image, read from the columns' nulls without decoding one."""
    table = open_split(location, split).data
    columns = [c for c in IMAGE_COLUMNS if c in table.column_names]
    nulls = {c: table.column(c).is_null().to_pylist() for c in columns}
    return tuple(tuple(c for c in columns if not nulls[c][row]) for row in range(table.num_rows))


def place_images(text: str, order: list[int]) -> str:
    """`text` with each "<image n>" replaced by the image marker, n appended to `order` (reading order)."""
    def marker(match: re.Match) -> str:
        order.append(int(match.group(1)))
        return "<image>"
    return PLACEHOLDER.sub(marker, text)


def parse_list(text: object, where: str, field: str) -> list[str]:
    """An open answer: a Python-list string ("['24/7', '3.43']") as its items, a plain string as a one-item list."""
    if isinstance(text, list):
        return [str(item) for item in text]
    text = checked_text(text, field, where).strip()
    if not text.startswith("["):
        return [text]
    value = list_literal(text)
    if value is None:
        raise DataError(f"{where}: field '{field}' is not a Python list: {text[:60]}")
    return [str(item) for item in value]


def list_literal(text: str) -> list | None:
    """The list a Python-list literal stands for, else None."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, list) else None


def parse_options(value: object, where: str) -> list[str]:
    """The options: a list of strings, or a Python-list string of strings ("['red', 'blue']"; "[]" for open questions)."""
    items = value if isinstance(value, list) else list_literal(value.strip()) if isinstance(value, str) else None
    if items is None or not all(isinstance(item, str) for item in items):
        raise DataError(f"{where}: field 'options' is not a Python list of strings: {str(value)[:60]!r}")
    return items


def checked_answers(value: object, options: list[str], question_type: str, where: str) -> list[str]:
    """The gold answers: an option letter for a multiple-choice question, the open answer(s) otherwise."""
    answers = parse_list(value, where, "answer")
    if question_type == "multiple-choice" and (len(answers) != 1 or answers[0] not in LETTERS[: len(options)]):
        raise DataError(f"{where}: field 'answer' {value!r} is not one of its {len(options)} option letters")
    return answers


def subject_of(example_id: str) -> str:
    """The subject inside an id "<split>_<Subject>_<n>", whose name may itself hold underscores (Art_Theory)."""
    return "_".join(example_id.split("_")[1:-1])


def hf_mmmu(row: Row) -> Example:
    where = row.where()
    example_id = checked_id(row.get("id"), "id", where)
    options = parse_options(row.get("options"), where)
    question_type = checked_text(row.get("question_type"), "question_type", where)
    if question_type not in INSTRUCTIONS:
        raise DataError(f"{where}: field 'question_type' {question_type!r} is not one of: {', '.join(INSTRUCTIONS)}")
    order: list[int] = []
    question = place_images(checked_text(row.get("question"), "question", where), order)
    shown_options = place_images(lettered_options(options), order) if question_type == "multiple-choice" else ""
    present = image_columns_present(row.location, row.split)[row.index]
    named = [f"image_{n}" for n in order]
    missing = [column for column in named if column not in present]
    if missing:
        raise DataError(f"{where}: the text names <image {missing[0][6:]}> but column '{missing[0]}' holds no image")
    unnamed = [column for column in present if column not in named]
    images = tuple(row.image(column, f"{example_id}/{column}") for column in unnamed + named)
    answers = checked_answers(row.get("answer"), options, question_type, where)
    meta = {"question_type": question_type, "options": "\n".join(o.replace("\n", " ") for o in options),
            "subject": subject_of(example_id)}
    fields = {"question": "<image>" * len(unnamed) + question, "options": shown_options,
              "instruction": INSTRUCTIONS[question_type]}
    return Example(example_id, images, fields, tuple(answers), meta)


def load_mmmu(root: Path, split: str) -> list[Example]:
    raise DataError(f"{root}: MMMU is read from a Hugging Face copy (a save_to_disk folder of the subjects' {split} "
                    "splits), not from loose files")


def is_correct(example: Example, prediction: str, fallback: bool) -> bool:
    if example.meta["question_type"] != "multiple-choice":
        return mmmu_open_correct(example.references, mmmu_open_predictions(prediction))
    options = options_of(example)
    chosen = mmmu_choice(prediction, options)
    if chosen is None and fallback:
        chosen = seeded_choice(list(options), example.id)
    return chosen == example.references[0]


def score_mmmu(predictions: Mapping[str, str], examples: Sequence[Example]) -> MetricResult:
    """Accuracy (0-100) by subject; a multiple-choice answer no rule can read is wrong."""
    return accuracy_result({e.id: is_correct(e, predictions[e.id], False) for e in examples}, examples, "subject")


def score_mmmu_random_fallback(predictions: Mapping[str, str], examples: Sequence[Example]) -> MetricResult:
    """The official fallback: an unreadable multiple-choice answer becomes a random option (seeded by the id)."""
    return accuracy_result({e.id: is_correct(e, predictions[e.id], True) for e in examples}, examples, "subject")


TASKS.add("mmmu", Task(
    name="mmmu", paper="Yue et al. 2023, arXiv 2311.16502", kind="generate", load=load_mmmu,
    support_split="dev", query_split="validation", template="mmmu", shot_answer=gold_answer,
    postprocess=answer_line, metric=score_mmmu, headline="accuracy", layout=LAYOUT,
    metric_variants={"accuracy_random_fallback": score_mmmu_random_fallback}, data_folder="mmmu",
    generation=GenerationParams(max_new_tokens=10, num_beams=3, length_penalty=0.0),
    hf=HFSpec(hf_mmmu, {"dev": "dev", "validation": "validation"}, image_columns=IMAGE_COLUMNS, hub_id="MMMU/MMMU"),
))
