"""`evals score`: score a benchmark submission file with no model, exactly as the official scorer would.

One reader per submission format (a task names its own in `Task.submission_format`): the file is
checked against the reference file (every id once, no unknown id, well-formed values) and scored as
given, so a malformed submission fails with one line instead of a silently wrong number.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.errors import ConfigError, DataError
from evals.registry import TASKS
from metrics.vqa import VQAReference, vqa_accuracy
from tasks.base import read_json, require
from tasks.vqa import human_answers


@dataclass(frozen=True)
class Submission:
    """The files of one `evals score` call, and the options some formats take."""

    predictions: Path
    annotations: Path
    questions: Path | None = None  # VQA: the official questions file, checked against the annotations
    variant: str | None = None  # a peers' metric variant, where the format has one


@dataclass(frozen=True)
class SubmissionFormat:
    """How one format is scored: `score(submission) -> {"scores": {...}, ...breakdowns}`."""

    score: Callable[[Submission], dict[str, Any]]
    takes_questions: bool = False
    variants: tuple[str, ...] = ()


# ---------------------------------------------------------------- reading and checking files

def id_preview(ids: Collection) -> str:
    shown = sorted(ids, key=str)[:5]
    return ", ".join(str(i) for i in shown) + (" ..." if len(ids) > 5 else "")


def record_id(value: Any, path: Path, where: str) -> str:
    """An id as text, so that the JSON 8291, the string "8291" and a CSV's "08291" are one id."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"{path}: {where} has an id that is neither a number nor a string: {value!r}")
    text = str(value).strip()
    return str(int(text)) if text.isdigit() else text


def require_list(record: Any, key: str, path: Path, where: str) -> list:
    value = require(record, key, path, where)
    if not isinstance(value, list):
        raise DataError(f"{path}: '{key}' of {where} is not a list")
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN != NaN


def require_number(record: Any, key: str, path: Path, where: str) -> float:
    value = require(record, key, path, where)
    if not is_number(value):
        raise DataError(f"{path}: {where} has '{key}' = {value!r}, not a number")
    return float(value)


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read ({error})") from None


def read_jsonl(path: Path) -> list[tuple[str, Any]]:
    """A JSON Lines file as ("line N", record) pairs (blank lines skipped), failing on the first bad line."""
    records = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: line {number} is malformed JSON at column {error.colno}: {error.msg}") from None
    if not records:
        raise DataError(f"{path}: no records")
    return records


def index_by_id(rows: Iterable[tuple[str, Any]], path: Path, key: str = "id") -> dict[str, tuple[str, Any]]:
    """{id: (where, record)}, failing on a record without the id field or an id seen twice."""
    indexed: dict[str, tuple[str, Any]] = {}
    for where, record in rows:
        rid = record_id(require(record, key, path, where), path, where)
        if rid in indexed:
            raise DataError(f"{path}: {key} {rid} appears twice ({indexed[rid][0]} and {where})")
        indexed[rid] = (where, record)
    return indexed


def check_same_ids(predicted: Collection, expected: Collection, submission: Submission, what: str) -> None:
    """Every id of the reference file predicted once, and no other id."""
    missing, unknown = set(expected) - set(predicted), set(predicted) - set(expected)
    name = submission.annotations.name
    if missing:
        raise DataError(f"{submission.predictions}: no prediction for {len(missing)} {what}s of {name}: {id_preview(missing)}")
    if unknown:
        raise DataError(f"{submission.predictions}: {len(unknown)} {what}s not in {name}: {id_preview(unknown)}")


def read_answer_list(path: Path, id_key: str, text_key: str) -> dict[str, str]:
    """A JSON list of {id_key, text_key} objects with string texts, one per id (EvalAI and COCO results files)."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON list of {{\"{id_key}\", \"{text_key}\"}} objects")
    indexed = index_by_id(((f"entry #{i}", row) for i, row in enumerate(rows)), path, id_key)
    answers = {}
    for rid, (where, row) in indexed.items():
        text = require(row, text_key, path, f"{where} ({id_key} {rid})")
        if not isinstance(text, str):
            raise DataError(f"{path}: {where} ({id_key} {rid}) has a non-string '{text_key}'")
        answers[rid] = text
    return answers


def binary_label(record: Any, key: str, path: Path, where: str) -> int:
    value = require(record, key, path, where)
    if value not in (0, 1, "0", "1") or isinstance(value, (bool, float)):
        raise DataError(f"{path}: {where} has '{key}' = {value!r}, expected 0 or 1")
    return int(value)


# ---------------------------------------------------------------- VQA (EvalAI results format)

def read_vqa_references(annotations_path: Path, questions_path: Path | None) -> list[VQAReference]:
    annotations = require_list(read_json(annotations_path), "annotations", annotations_path, "the top level")
    references = []
    for i, a in enumerate(annotations):
        qid = record_id(require(a, "question_id", annotations_path, f"annotation #{i}"), annotations_path, f"annotation #{i}")
        references.append(VQAReference(qid, human_answers(a, annotations_path), str(a.get("question_type", "")),
                                       str(a.get("answer_type", ""))))
    if questions_path is not None:
        questions = require_list(read_json(questions_path), "questions", questions_path, "the top level")
        asked = {record_id(require(q, "question_id", questions_path, f"question #{i}"), questions_path, f"question #{i}")
                 for i, q in enumerate(questions)}
        unannotated = asked - {r.question_id for r in references}
        if unannotated:
            raise DataError(f"{annotations_path}: no annotation for question_ids {id_preview(unannotated)} of {questions_path}")
    return references


def score_vqa(submission: Submission) -> dict[str, Any]:
    """Score as given (no answer processing: that belongs to producing the file), every question once."""
    answers = read_answer_list(submission.predictions, "question_id", "answer")
    references = read_vqa_references(submission.annotations, submission.questions)
    check_same_ids(answers, [r.question_id for r in references], submission, "question_id")
    result = vqa_accuracy(answers, references)
    return {
        "scores": {"vqa_accuracy": result.overall},
        "by_question_type": result.per_question_type,
        "by_answer_type": result.per_answer_type,
        "per_question": result.per_question,
    }


# ---------------------------------------------------------------- captions (COCO results format)

def read_caption_references(path: Path) -> dict[str, list[str]]:
    """A COCO-format caption file: `images` (the evaluated set, in order) and `annotations` {image_id, caption}."""
    data = read_json(path)
    images = require_list(data, "images", path, "the top level")
    annotations = require_list(data, "annotations", path, "the top level")
    references: dict[str, list[str]] = {rid: [] for rid in index_by_id(((f"image #{i}", im) for i, im in enumerate(images)), path)}
    for i, annotation in enumerate(annotations):
        where = f"annotation #{i}"
        image_id = record_id(require(annotation, "image_id", path, where), path, where)
        caption = require(annotation, "caption", path, where)
        if not isinstance(caption, str):
            raise DataError(f"{path}: {where} (image_id {image_id}) has a non-string 'caption'")
        if image_id not in references:
            raise DataError(f"{path}: {where} is for image_id {image_id}, which 'images' does not list")
        references[image_id].append(caption)
    uncaptioned = [rid for rid, captions in references.items() if not captions]
    if uncaptioned:
        raise DataError(f"{path}: no caption annotation for image_ids {id_preview(uncaptioned)}")
    return references


def score_captions(submission: Submission) -> dict[str, Any]:
    """pycocoevalcap over every image of the reference file (CIDEr-D's idf needs the whole set)."""
    from metrics.captioning import caption_scores

    captions = read_answer_list(submission.predictions, "image_id", "caption")
    references = read_caption_references(submission.annotations)
    check_same_ids(captions, references, submission, "image_id")
    result = caption_scores(captions, references)
    return {
        "scores": {key: result.scores[key] for key in ("CIDEr", "Bleu_4", "ROUGE_L", "METEOR")},
        "by_bleu_order": {f"Bleu_{n}": result.scores[f"Bleu_{n}"] for n in range(1, 5)},
        "per_image_cider": dict(result.per_image_cider),
    }


# ---------------------------------------------------------------- Hateful Memes (challenge CSV)

HATEFUL_MEMES_COLUMNS = ("id", "proba", "label")


def read_hateful_memes_csv(path: Path) -> list[tuple[str, dict[str, str]]]:
    """The challenge submission: a CSV with exactly the columns id, proba, label, one row per meme."""
    rows = list(csv.reader(read_text(path).splitlines()))
    header = [name.strip() for name in rows[0]] if rows else []
    if sorted(header) != sorted(HATEFUL_MEMES_COLUMNS):
        missing = [c for c in HATEFUL_MEMES_COLUMNS if c not in header]
        extra = [c for c in header if c not in HATEFUL_MEMES_COLUMNS]
        raise DataError(f"{path}: the header must name the columns id,proba,label; got {','.join(header) or 'nothing'}"
                        f" (missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'})")
    records = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}: line {number} has {len(row)} fields, the header {len(header)}")
        records.append((f"line {number}", {name: value.strip() for name, value in zip(header, row)}))
    return records


def probability(record: Mapping[str, str], path: Path, where: str) -> float:
    try:
        value = float(record["proba"])
    except ValueError:
        raise DataError(f"{path}: {where} has proba '{record['proba']}', not a number") from None
    if not 0.0 <= value <= 1.0:
        raise DataError(f"{path}: {where} has proba {record['proba']}, outside [0, 1]")
    return value


def score_hateful_memes(submission: Submission) -> dict[str, Any]:
    """ROC AUC of `proba` (the challenge metric) and accuracy of `label`, against dev.jsonl's labels."""
    from metrics.ranking import accuracy, roc_auc

    predicted = index_by_id(read_hateful_memes_csv(submission.predictions), submission.predictions)
    gold = index_by_id(read_jsonl(submission.annotations), submission.annotations)
    check_same_ids(predicted, gold, submission, "id")
    truth = [binary_label(record, "label", submission.annotations, where) for where, record in gold.values()]
    probabilities = [probability(predicted[i][1], submission.predictions, predicted[i][0]) for i in gold]
    labels = [binary_label(predicted[i][1], "label", submission.predictions, predicted[i][0]) for i in gold]
    if len(set(truth)) < 2:
        raise DataError(f"{submission.annotations}: every label is {truth[0]}; ROC AUC needs both classes")
    return {"scores": {"roc_auc": roc_auc(truth, probabilities), "accuracy": accuracy(labels, truth)}}


# ---------------------------------------------------------------- VisDial v1.0 (dense annotations)

def read_visdial_ranks(path: Path, options: int) -> dict[tuple[str, int], list[int]]:
    """The official submission: [{image_id, round_id, ranks}], ranks a permutation of 1..options (1 = best)."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON list of {{\"image_id\", \"round_id\", \"ranks\"}} objects")
    ranks: dict[tuple[str, int], list[int]] = {}
    for i, row in enumerate(rows):
        where = f"entry #{i}"
        key = (record_id(require(row, "image_id", path, where), path, where), round_number(row, path, where))
        given = require_list(row, "ranks", path, f"{where} (image_id {key[0]}, round_id {key[1]})")
        if sorted(r for r in given if isinstance(r, int) and not isinstance(r, bool)) != list(range(1, options + 1)):
            raise DataError(f"{path}: {where} (image_id {key[0]}, round_id {key[1]}): 'ranks' is not a permutation of 1..{options}")
        if key in ranks:
            raise DataError(f"{path}: image_id {key[0]} round_id {key[1]} appears twice")
        ranks[key] = given
    return ranks


def round_number(row: Any, path: Path, where: str) -> int:
    value = require(row, "round_id", path, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{path}: {where} has round_id {value!r}, not an integer")
    return value


def read_dense_relevance(path: Path) -> dict[tuple[str, int], list[float]]:
    """The dense annotations: one round per dialog with the 100 options' relevance."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON list of {{\"image_id\", \"round_id\", \"gt_relevance\"}} objects")
    relevance: dict[tuple[str, int], list[float]] = {}
    for i, row in enumerate(rows):
        where = f"annotation #{i}"
        key = (record_id(require(row, "image_id", path, where), path, where), round_number(row, path, where))
        values = require_list(row, "gt_relevance", path, where)
        if not all(is_number(v) for v in values):
            raise DataError(f"{path}: {where} (image_id {key[0]}) has a 'gt_relevance' value that is not a number")
        relevance[key] = [float(v) for v in values]
        if not any(v > 0 for v in values):
            raise DataError(f"{path}: {where} (image_id {key[0]}) has no relevant option: NDCG is undefined")
    if not relevance or len({len(v) for v in relevance.values()}) != 1:
        raise DataError(f"{path}: expected annotations with one gt_relevance length (the number of options)")
    return relevance


def score_visdial(submission: Submission) -> dict[str, Any]:
    """NDCG of the densely annotated round of each dialog; the submission's other rounds are ignored,
    as the challenge server does (a val submission ranks every round)."""
    from metrics.ranking import ndcg_sklearn, visdial_ndcg

    relevance = read_dense_relevance(submission.annotations)
    ranks = read_visdial_ranks(submission.predictions, len(next(iter(relevance.values()))))
    dialogs = {image_id for image_id, _ in relevance}
    unknown = {image_id for image_id, _ in ranks} - dialogs
    missing = [key for key in relevance if key not in ranks]
    if missing:
        shown = ", ".join(f"image_id {i} round_id {r}" for i, r in missing[:5])
        raise DataError(f"{submission.predictions}: no ranks for {len(missing)} annotated rounds of {submission.annotations.name}: {shown}")
    if unknown:
        raise DataError(f"{submission.predictions}: {len(unknown)} image_ids not in {submission.annotations.name}: {id_preview(unknown)}")
    ndcg = ndcg_sklearn if submission.variant == "ndcg_sklearn" else visdial_ndcg
    overall, per_round = ndcg([ranks[key] for key in relevance], list(relevance.values()))
    return {"scores": {"ndcg": overall}, "per_round": {f"{i}_{r}": value for (i, r), value in zip(relevance, per_round)}}


# ---------------------------------------------------------------- Winoground

PAIR_KEYS = ("c0_i0", "c0_i1", "c1_i0", "c1_i1")


def score_winoground(submission: Submission) -> dict[str, Any]:
    """Text, image and group scores from the four scores s(caption_i, image_j) of each example."""
    from metrics.ranking import PairScores, winoground_outcome, winoground_scores

    predicted = index_by_id(read_jsonl(submission.predictions), submission.predictions)
    examples = index_by_id(read_jsonl(submission.annotations), submission.annotations)
    for where, example in examples.values():
        for key in ("caption_0", "caption_1", "image_0", "image_1"):
            require(example, key, submission.annotations, where)
    check_same_ids(predicted, examples, submission, "id")
    pairs = {i: PairScores(*(require_number(predicted[i][1], key, submission.predictions, predicted[i][0]) for key in PAIR_KEYS))
             for i in examples}
    return {"scores": winoground_scores(list(pairs.values())),
            "per_example": {i: winoground_outcome(p) for i, p in pairs.items()}}


# ---------------------------------------------------------------- classification (ImageNet, RenderedSST2, ScienceQA)

def is_label(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def label_text(record: Any, key: str, path: Path, where: str) -> str:
    value = require(record, key, path, where)
    if not is_label(value):
        raise DataError(f"{path}: {where} has '{key}' = {value!r}, not a label (a string or an integer)")
    return str(value)


def top5_labels(record: Any, path: Path, where: str) -> list[str]:
    ranked = require_list(record, "top5", path, where)
    if not all(is_label(value) for value in ranked):
        raise DataError(f"{path}: {where} has a 'top5' entry that is not a label (a string or an integer)")
    labels = [str(value) for value in ranked]
    if len(labels) != 5 or len(set(labels)) != 5:
        raise DataError(f"{path}: {where} has a 'top5' of {len(labels)} labels ({len(set(labels))} distinct), expected 5 distinct labels")
    return labels


def score_classification(submission: Submission) -> dict[str, Any]:
    """Top-1 accuracy of `label`, and top-5 accuracy when every prediction has a `top5` list."""
    from metrics.ranking import accuracy, percent, top_k_hits

    predicted = index_by_id(read_jsonl(submission.predictions), submission.predictions)
    gold = index_by_id(read_jsonl(submission.annotations), submission.annotations)
    check_same_ids(predicted, gold, submission, "id")
    truth = [label_text(record, "label", submission.annotations, where) for where, record in gold.values()]
    labels = [label_text(predicted[i][1], "label", submission.predictions, predicted[i][0]) for i in gold]
    scores = {"accuracy": accuracy(labels, truth)}
    if all("top5" in record for _, record in predicted.values()):
        ranked = [top5_labels(predicted[i][1], submission.predictions, predicted[i][0]) for i in gold]
        scores["top5_accuracy"] = percent(sum(top_k_hits(ranked, truth, 5)), len(truth))
    return {"scores": scores}


# ---------------------------------------------------------------- entry points

SUBMISSION_SCORERS: dict[str, SubmissionFormat] = {
    "vqa": SubmissionFormat(score_vqa, takes_questions=True),
    "captions": SubmissionFormat(score_captions),
    "hateful_memes": SubmissionFormat(score_hateful_memes),
    "visdial": SubmissionFormat(score_visdial, variants=("ndcg_sklearn",)),
    "winoground": SubmissionFormat(score_winoground),
    "classification": SubmissionFormat(score_classification),
}


def score_file(format_name: str, predictions: Path, annotations: Path, questions: Path | None = None,
               metric_variant: str | None = None) -> dict[str, Any]:
    """Score a submission in the named format: {"scores": {metric: 0-100}, ...breakdowns}."""
    if format_name not in SUBMISSION_SCORERS:
        raise ConfigError(f"no submission format '{format_name}' (formats: {', '.join(SUBMISSION_SCORERS)})")
    form = SUBMISSION_SCORERS[format_name]
    if questions is not None and not form.takes_questions:
        raise ConfigError(f"--questions is for VQA submissions; the {format_name} format has no questions file")
    if metric_variant is not None and metric_variant not in form.variants:
        raise ConfigError(f"the {format_name} format has no metric variant '{metric_variant}' "
                          f"(variants: {', '.join(form.variants) or 'none'})")
    result = form.score(Submission(Path(predictions), Path(annotations), questions, metric_variant))
    return {**result, "metric_variant": metric_variant} if metric_variant else result


def score_submission(task_name: str, predictions: Path, annotations: Path, questions: Path | None = None,
                     metric_variant: str | None = None) -> dict[str, Any]:
    """Score a task's submission file in the task's own format: {"task", "scores", ...breakdowns}."""
    task = TASKS.get(task_name)
    if task.submission_format not in SUBMISSION_SCORERS:
        scoreable = sorted(name for name, t in TASKS.items() if t.submission_format in SUBMISSION_SCORERS)
        raise ConfigError(f"task '{task_name}' has no submission scorer (scoreable: {', '.join(scoreable)})")
    return {"task": task_name, **score_file(task.submission_format, predictions, annotations, questions, metric_variant)}
