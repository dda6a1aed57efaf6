"""MMBench (Liu et al. 2023, arXiv 2307.06281): multiple-choice perception and reasoning questions, answered in
text and scored by circular evaluation: a question with N options is asked N times, its options shifted one
place each time (the gold letter moving with them), and counts only when every pass is right. The option is
inferred by VLMEvalKit's rules (metrics/choice.py), without its LLM judge; an answer they cannot read is wrong.
Headline `circular_accuracy`; `vanilla_accuracy` scores the first pass (the original order) alone.

Layout (the official release): `MMBench_DEV_EN.tsv` (tab-separated; columns index, question, hint, A, B, C, D
(empty where a question has fewer options), answer, category, l2-category, image: base64). The images are
written once to $EVALS_CACHE_DIR/embedded-images. The Hugging Face copy (`--source mmbench=lmms-lab/MMBench:en`, the
hub id and its config, or a `save_to_disk` folder of its dev split) has the same columns, the image decoded.

The release already holds the circular copies of each question as rows of their own (index = original index +
k * 1,000,000, options shifted); VLMEvalKit scores only rows with index < 1,000,000. Both readers keep only those
originals: this harness makes the passes itself, and a copy must never be a question (or a shot) of its own.

Queries are the circular passes of dev (split `dev_circular`, ids `<index>#r<k>`); shots come from dev, one
pass each (ids `<index>`). Each pass names its question as its `source_id`, so no prompt ever shows a
pass its own question as a demonstration.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.records import SOURCE_ID, Example, GenerationParams, ImageRef
from evals.registry import TASKS
from metrics.choice import LETTERS, circular_scores, mmbench_choice
from tasks.base import DataSource, MetricResult, Task, ascii_integer, checked_text, gold_answer, not_empty, per_query_mean
from tasks.hf import HFSpec, Row
from tasks.multiple_choice import answer_line, cache_folder, lettered_options, options_of, write_base64_image

FILES = {"dev": "MMBench_DEV_EN.tsv", "dev_circular": "MMBench_DEV_EN.tsv"}
COPY_OFFSET = 1_000_000  # the release's circular copies: index = original + k * COPY_OFFSET
COLUMNS = ("index", "question", "answer", "image")


def present(value: Any) -> bool:
    """False for the empty cells of a question with fewer options (empty in the TSV, None or "nan" in copies)."""
    return value is not None and str(value).strip() not in ("", "nan")


def is_original(record: Mapping[str, Any], where: str) -> bool:
    """False for the release's own circular copies (index >= COPY_OFFSET); `where` names the file and record."""
    index = ascii_integer(str(record["index"]).strip())
    if index is None:  # int() would also take (or choke on) Unicode digits such as "²"
        raise DataError(f"{where}: field 'index' {record['index']!r} is not an integer")
    return index < COPY_OFFSET


def checked_options(record: Mapping[str, Any], where: str) -> list[str]:
    """The options A, B, ... in order: strings, and no empty letter before a given one (the answer letter would
    point at the wrong text)."""
    given = [letter for letter in LETTERS if present(record.get(letter))]
    for letter in given:
        checked_text(record[letter], letter, where)
    if given != list(LETTERS[: len(given)]):
        gap = next(letter for letter in LETTERS if letter not in given)
        raise DataError(f"{where}: option {gap} is empty but option {given[-1]} is not")
    return [record[letter] for letter in given]


def question_example(record: Mapping[str, Any], image: ImageRef, where: str) -> Example:
    """One question with its options in their original order; `where` names the file and record."""
    options = checked_options(record, where)
    answer = checked_text(record["answer"], "answer", where).strip()
    if answer not in LETTERS[: len(options)]:
        raise DataError(f"{where}: field 'answer' {answer!r} is not one of its {len(options)} option letters")
    hint = checked_text(record["hint"], "hint", where).strip() if present(record.get("hint")) else ""
    question = checked_text(record["question"], "question", where)
    category = checked_text(record.get("category"), "category", where, optional=True)
    fields = {"context": f"Hint: {hint}\n" if hint else "", "question": question, "options": lettered_options(options)}
    meta = {"options": "\n".join(o.replace("\n", " ") for o in options), "category": category,
            "question": str(record["index"]), "pass": "0"}
    return Example(str(record["index"]), (image,), fields, (answer,), meta)


def read_tsv(path: Path) -> list[dict[str, str]]:
    """The TSV's rows as {column: cell}: the header must hold COLUMNS, each row as many cells as the header."""
    csv.field_size_limit(sys.maxsize)  # the image column holds whole base64 images
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:  # a spreadsheet's byte-order mark
            reader = csv.reader(handle, delimiter="\t")
            header = next(reader, None) or []
            missing = [column for column in COLUMNS if column not in header]
            if missing:
                raise DataError(f"{path}: no column '{missing[0]}'")
            return [row_record(cells, header, path, reader.line_num) for cells in reader if cells]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot read as a TSV ({error})") from None


def row_record(cells: list[str], header: list[str], path: Path, line: int) -> dict[str, str]:
    if len(cells) != len(header):  # a shifted row would read one column's cells as another's
        raise DataError(f"{path}: line {line} has {len(cells)} columns, the header {len(header)}")
    return dict(zip(header, cells))


def load_mmbench(root: Path, split: str) -> list[Example]:
    if split not in FILES:
        raise DataError(f"{root}: MMBench has no split '{split}' here (splits: {', '.join(FILES)})")
    path = root / FILES[split]
    records = read_tsv(path)
    folder = cache_folder(path)
    examples = []
    for record in records:
        where = f"{path}: index {record['index']}"
        if not is_original(record, where):
            continue
        image = write_base64_image(folder, str(record["index"]), record["image"], where)
        examples.append(question_example(record, ImageRef(f"mmbench/{record['index']}", image), where))
    return not_empty(examples, str(path))


def hf_mmbench(row: Row) -> Example:
    record = {key: row.get(key) for key in ("index", "question", "answer")}
    record.update({key: row.values.get(key) for key in (*LETTERS, "hint", "category")})
    is_original(record, row.where())  # a malformed index is named here; copies are dropped by CircularTask.read
    return question_example(record, row.image("image", f"mmbench/{record['index']}"), row.where())


def circular_passes(example: Example) -> list[Example]:
    """The question asked once per option, pass k showing the options shifted k places (option k first)."""
    options = example.meta["options"].split("\n")
    gold = LETTERS.index(example.references[0])
    passes = []
    for k in range(len(options)):
        shifted = options[k:] + options[:k]
        meta = {**example.meta, "options": "\n".join(shifted), "pass": str(k), SOURCE_ID: example.id}  # never its own shot
        fields = {**example.fields, "options": lettered_options(shifted)}
        answer = LETTERS[(gold - k) % len(options)]
        passes.append(replace(example, id=f"{example.id}#r{k}", fields=fields, references=(answer,), meta=meta))
    return passes


@dataclass(frozen=True)
class CircularTask(Task):
    """Shots as the questions stand (the release's circular copies dropped); the query split expanded into its
    circular passes."""

    def read(self, source: DataSource, split: str) -> list[Example]:
        # The row reader of a Hugging Face copy cannot skip a row: its copies are dropped here (ids are the index).
        examples = not_empty([e for e in super().read(source, split) if int(e.id) < COPY_OFFSET], f"{source.location} [{split}]")
        return [p for e in examples for p in circular_passes(e)] if split == self.query_split else examples


def complete_questions(examples: Sequence[Example]) -> set[str]:
    """The questions whose every circular pass is among `examples` (`--limit` can cut a question's passes short)."""
    seen: dict[str, set[str]] = {}
    for e in examples:
        seen.setdefault(e.meta["question"], set()).add(e.meta["pass"])
    wanted = {e.meta["question"]: {str(k) for k in range(len(e.meta["options"].split("\n")))} for e in examples}
    return {question for question, passes in seen.items() if passes == wanted[question]}


def score_mmbench(predictions: Mapping[str, str], examples: Sequence[Example]) -> MetricResult:
    """Circular accuracy (0-100; a question counts when all its passes are right), vanilla accuracy (first pass),
    and circular accuracy by category. A question whose passes are not all present (a `--limit` that cuts its
    passes) is left out of every score, as it cannot be scored circularly; breakdown `questions` counts those."""
    complete = complete_questions(examples)
    if not complete:
        raise DataError("mmbench: no question has all its circular passes among the queries (raise --limit)")
    correct = {e.id: mmbench_choice(predictions[e.id], options_of(e)) == e.references[0] for e in examples}
    scored = [e for e in examples if e.meta["question"] in complete]
    question_of = {e.id: e.meta["question"] for e in scored}
    first = {e.id for e in scored if e.meta["pass"] == "0"}
    circular, vanilla = circular_scores({e.id: correct[e.id] for e in scored}, question_of, first)
    by_category: dict[str, dict[str, bool]] = {}
    for e in scored:
        group = by_category.setdefault(e.meta["category"] or "unknown", {})
        group[e.meta["question"]] = group.get(e.meta["question"], True) and correct[e.id]
    breakdown = {name: 100.0 * sum(group.values()) / len(group) for name, group in sorted(by_category.items())}
    dropped = len({e.meta["question"] for e in examples} - complete)
    return MetricResult({"circular_accuracy": circular, "vanilla_accuracy": vanilla},
                        {e.id: 100.0 if correct[e.id] else 0.0 for e in examples},
                        {"by_category": breakdown, "questions": {"scored": float(len(complete)), "incomplete": float(dropped)}},
                        circular_resampling(scored, correct, first))


def circular_resampling(scored: Sequence[Example], correct: Mapping[str, bool], first: set[str]) -> dict:
    """Both scores are means over questions: circular of "every pass right", redrawn by question (grouped by image);
    vanilla of the first pass, redrawn by that query (the runner groups it by image)."""
    right: dict[str, bool] = {}
    image: dict[str, str] = {}
    for e in scored:
        right[e.meta["question"]] = right.get(e.meta["question"], True) and correct[e.id]
        image.setdefault(e.meta["question"], e.images[0].id if e.images else e.meta["question"])
    return {"circular_accuracy": per_query_mean({q: 100.0 * ok for q, ok in right.items()},
                                                "mean over questions of all circular passes right", image),
            "vanilla_accuracy": per_query_mean({i: 100.0 * correct[i] for i in sorted(first)},
                                               "mean over questions of the first pass right")}


TASKS.add("mmbench", CircularTask(
    name="mmbench", paper="Liu et al. 2023, arXiv 2307.06281", kind="generate", load=load_mmbench,
    support_split="dev", query_split="dev_circular", template="mmbench", shot_answer=gold_answer,
    postprocess=answer_line, metric=score_mmbench, headline="circular_accuracy",
    layout=f"{FILES['dev']} (images inline, base64)", data_folder="mmbench",
    generation=GenerationParams(max_new_tokens=10, num_beams=3, length_penalty=0.0),
    hf=HFSpec(hf_mmbench, {"dev": "dev", "dev_circular": "dev"}, hub_id="lmms-lab/MMBench:en"),
))
