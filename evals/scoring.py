"""`evals score`: score a benchmark submission file with no model, exactly as the official scorer would.

One reader per submission format (a task names its own in `Task.submission_format`): the file is
checked against the reference file (every id once, no unknown id, well-formed values) and scored as
given, so a malformed submission fails with one line instead of a silently wrong number.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from evals.errors import ConfigError, DataError
from evals.records import Example
from evals.registry import TASKS
from metrics.vqa import VQAReference, VQAScore, vqa_accuracy
from tasks.base import read_json, require
from tasks.vqa import TextVQAFiles, VizWizFiles, human_answers


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


@dataclass(frozen=True)
class Entry:
    """One record of a file and where it stands there ("line 3", "entry #2"), for one-line errors."""

    path: Path
    where: str
    record: Any

    def fail(self, problem: str) -> NoReturn:
        raise DataError(f"{self.path}: {self.where} {problem}")

    def known_as(self, name: str) -> Entry:
        """The same entry, its errors also naming it by `name` (e.g. its id)."""
        return replace(self, where=f"{self.where} ({name})")

    def get(self, key: str) -> Any:
        return require(self.record, key, self.path, self.where)

    def items(self, key: str) -> list:
        value = self.get(key)
        if not isinstance(value, list):
            self.fail(f"has a '{key}' that is not a list")
        return value

    def number(self, key: str) -> float:
        value = self.get(key)
        if not is_number(value):
            self.fail(f"has '{key}' = {value!r}, not a number")
        return float(value)

    def label(self, key: str) -> str:
        value = self.get(key)
        if not is_label(value):
            self.fail(f"has '{key}' = {value!r}, not a label (a string or an integer)")
        return str(value)

    def binary(self, key: str) -> int:
        value = self.get(key)
        if value not in (0, 1, "0", "1") or isinstance(value, (bool, float)):
            self.fail(f"has '{key}' = {value!r}, expected 0 or 1")
        return int(value)

    def text(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            self.fail(f"has a non-string '{key}'")
        return value

    def id(self, key: str = "id") -> str:
        """The record's id as text, so that the JSON 8291, the string "8291" and a CSV's "08291" are one id."""
        value = self.get(key)
        if not is_label(value):
            self.fail(f"has {key} {value!r}, neither a number nor a string")
        text = str(value).strip()
        return str(int(text)) if text.isdigit() else text


# ---------------------------------------------------------------- reading and checking files

def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not (isinstance(value, float) and math.isnan(value))


def is_label(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def id_preview(ids: Collection) -> str:
    shown = sorted(ids, key=str)[:5]
    return ", ".join(str(i) for i in shown) + (" ..." if len(ids) > 5 else "")


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read ({error})") from None


def read_jsonl(path: Path) -> list[Entry]:
    """A JSON Lines file, one entry per non-blank line, failing on the first malformed line."""
    entries = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(Entry(path, f"line {number}", json.loads(line)))
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: line {number} is malformed JSON at column {error.colno}: {error.msg}") from None
    if not entries:
        raise DataError(f"{path}: no records")
    return entries


def read_json_list(path: Path, fields: tuple[str, ...], what: str = "entry") -> list[Entry]:
    """A JSON file holding a list of objects (results files, VisDial annotations), as entries "entry #i"."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON list of {{{', '.join(fields)}}} objects")
    return [Entry(path, f"{what} #{i}", row) for i, row in enumerate(rows)]


def top_level_list(path: Path, key: str, what: str) -> list[Entry]:
    """The list `key` of a JSON file's top-level object (COCO `images`, VQA `annotations`), as entries "what #i"."""
    return [Entry(path, f"{what} #{i}", row) for i, row in enumerate(Entry(path, "the top level", read_json(path)).items(key))]


def index_by_id(entries: Iterable[Entry], key: str = "id") -> dict[str, Entry]:
    """{id: entry}, failing on an entry without the id field or an id seen twice."""
    indexed: dict[str, Entry] = {}
    for entry in entries:
        rid = entry.id(key)
        if rid in indexed:
            entry.fail(f"repeats {key} {rid} of {indexed[rid].where}")
        indexed[rid] = entry
    return indexed


def check_same_ids(predicted: Collection, expected: Collection, submission: Submission, what: str) -> None:
    """Every id of the reference file predicted once, and no other id."""
    missing, unknown = set(expected) - set(predicted), set(predicted) - set(expected)
    name = submission.annotations.name
    if missing:
        raise DataError(f"{submission.predictions}: no prediction for {len(missing)} {what}s of {name}: {id_preview(missing)}")
    if unknown:
        raise DataError(f"{submission.predictions}: {len(unknown)} {what}s not in {name}: {id_preview(unknown)}")


def matched(submission: Submission, predicted: Iterable[Entry], gold: Iterable[Entry]) -> dict[str, tuple[Entry, Entry]]:
    """{id: (reference entry, prediction entry)} in reference order, after checking the two files hold the same ids."""
    predicted_by_id, gold_by_id = index_by_id(predicted), index_by_id(gold)
    check_same_ids(predicted_by_id, gold_by_id, submission, "id")
    return {rid: (entry, predicted_by_id[rid]) for rid, entry in gold_by_id.items()}


def read_answer_list(path: Path, id_key: str, text_key: str) -> dict[str, str]:
    """A JSON list of {id_key, text_key} objects with string texts, one per id (EvalAI and COCO results files)."""
    entries = index_by_id(read_json_list(path, (id_key, text_key)), id_key)
    return {rid: entry.known_as(f"{id_key} {rid}").text(text_key) for rid, entry in entries.items()}


# ---------------------------------------------------------------- VQA: VQAv2 / OK-VQA, TextVQA, VizWiz

def read_vqa_references(annotations_path: Path, questions_path: Path | None) -> list[VQAReference]:
    annotations = index_by_id(top_level_list(annotations_path, "annotations", "annotation"), "question_id")
    references = [
        VQAReference(qid, human_answers(entry.record, annotations_path),
                     str(entry.record.get("question_type", "")), str(entry.record.get("answer_type", "")))
        for qid, entry in annotations.items()
    ]
    if questions_path is not None:
        asked = {entry.id("question_id") for entry in top_level_list(questions_path, "questions", "question")}
        unannotated = asked - annotations.keys()
        if unannotated:
            raise DataError(f"{annotations_path}: no annotation for question_ids {id_preview(unannotated)} of {questions_path}")
    return references


def loaded_references(examples: Sequence[Example], path: Path, id_key: str) -> list[VQAReference]:
    """The questions a task loader read from `path` (entry i = example i), each id once: a repeat would be scored twice."""
    ids = index_by_id((Entry(path, f"entry #{i}", {id_key: e.id}) for i, e in enumerate(examples)), id_key)
    return [VQAReference(qid, e.references, answer_type=e.meta.get("answer_type", "")) for qid, e in zip(ids, examples)]


def vqa_scores(submission: Submission, references: Sequence[VQAReference], id_key: str) -> VQAScore:
    """Predictions [{id_key, answer}] scored as given (no answer processing: that belongs to producing the file),
    every question of the reference file once."""
    if not references:
        raise DataError(f"{submission.annotations}: no questions to score")
    answers = read_answer_list(submission.predictions, id_key, "answer")
    check_same_ids(answers, [r.question_id for r in references], submission, id_key)
    return vqa_accuracy(answers, references)


def score_vqa(submission: Submission) -> dict[str, Any]:
    """VQAv2 / OK-VQA: EvalAI results [{question_id, answer}] against the official annotations (+ questions)."""
    result = vqa_scores(submission, read_vqa_references(submission.annotations, submission.questions), "question_id")
    return {
        "scores": {"vqa_accuracy": result.overall},
        "by_question_type": result.per_question_type,
        "by_answer_type": result.per_answer_type,
        "per_question": result.per_question,
    }


def score_textvqa(submission: Submission) -> dict[str, Any]:
    """TextVQA: EvalAI results [{question_id, answer}] against TextVQA_0.5.1_val.json (`data`, 10 answer strings each),
    read by the task's own loader. The file has no question or answer types, so no breakdowns."""
    examples = TextVQAFiles().read(submission.annotations, submission.annotations.parent, "val")
    result = vqa_scores(submission, loaded_references(examples, submission.annotations, "question_id"), "question_id")
    return {"scores": {"vqa_accuracy": result.overall}, "per_question": result.per_question}


def score_vizwiz(submission: Submission) -> dict[str, Any]:
    """VizWiz: the challenge's [{image, answer}] against Annotations/val.json, read by the task's own loader.
    Its answers carry no answer_id: metrics.vqa's leave-one-out removes one answer by position."""
    examples = VizWizFiles().read(submission.annotations, submission.annotations.parent, "val")
    result = vqa_scores(submission, loaded_references(examples, submission.annotations, "image"), "image")
    return {"scores": {"vqa_accuracy": result.overall}, "by_answer_type": result.per_answer_type,
            "per_question": result.per_question}


# ---------------------------------------------------------------- captions (COCO results format)

def read_caption_references(path: Path) -> dict[str, list[str]]:
    """A COCO-format caption file: `images` (the evaluated set, in order) and `annotations` {image_id, caption}."""
    references: dict[str, list[str]] = {rid: [] for rid in index_by_id(top_level_list(path, "images", "image"))}
    for entry in top_level_list(path, "annotations", "annotation"):
        image_id, caption = entry.id("image_id"), entry.text("caption")
        if image_id not in references:
            entry.fail(f"is for image_id {image_id}, which 'images' does not list")
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


def read_hateful_memes_csv(path: Path) -> list[Entry]:
    """The challenge submission: a CSV with exactly the columns id, proba, label, one row per meme."""
    try:
        rows = list(csv.reader(read_text(path).splitlines()))
    except csv.Error as error:
        raise DataError(f"{path}: malformed CSV ({error})") from None
    header = [name.strip() for name in rows[0]] if rows else []
    if sorted(header) != sorted(HATEFUL_MEMES_COLUMNS):
        missing = [c for c in HATEFUL_MEMES_COLUMNS if c not in header]
        extra = [c for c in header if c not in HATEFUL_MEMES_COLUMNS]
        raise DataError(f"{path}: the header must name the columns id,proba,label; got {','.join(header) or 'nothing'}"
                        f" (missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'})")
    entries = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}: line {number} has {len(row)} fields, the header {len(header)}")
        entries.append(Entry(path, f"line {number}", {name: value.strip() for name, value in zip(header, row)}))
    return entries


def probability(entry: Entry) -> float:
    text = entry.get("proba")
    try:
        value = float(text)
    except ValueError:
        entry.fail(f"has proba '{text}', not a number")
    if not 0.0 <= value <= 1.0:
        entry.fail(f"has proba {text}, outside [0, 1]")
    return value


def score_hateful_memes(submission: Submission) -> dict[str, Any]:
    """ROC AUC of `proba` (the challenge metric) and accuracy of `label`, against dev.jsonl's labels."""
    from metrics.ranking import accuracy, roc_auc

    pairs = matched(submission, read_hateful_memes_csv(submission.predictions), read_jsonl(submission.annotations)).values()
    truth = [gold.binary("label") for gold, _ in pairs]
    probabilities = [probability(predicted) for _, predicted in pairs]
    labels = [predicted.binary("label") for _, predicted in pairs]
    if len(set(truth)) < 2:
        raise DataError(f"{submission.annotations}: every label is {truth[0]}; ROC AUC needs both classes")
    return {"scores": {"roc_auc": roc_auc(truth, probabilities), "accuracy": accuracy(labels, truth)}}


# ---------------------------------------------------------------- VisDial v1.0 (dense annotations)

def visdial_entries(path: Path, field: str, what: str) -> Iterator[tuple[Entry, tuple[str, int], list]]:
    """(entry, (image_id, round_id), the entry's `field` list) for each entry of a VisDial JSON list, each round once."""
    seen: set[tuple[str, int]] = set()
    for entry in read_json_list(path, ("image_id", "round_id", field), what):
        round_id = entry.get("round_id")
        if isinstance(round_id, bool) or not isinstance(round_id, int):
            entry.fail(f"has round_id {round_id!r}, not an integer")
        key = (entry.id("image_id"), round_id)
        if key in seen:
            entry.fail(f"repeats image_id {key[0]} round_id {round_id}")
        seen.add(key)
        yield entry.known_as(f"image_id {key[0]}, round_id {round_id}"), key, entry.items(field)


def read_visdial_ranks(path: Path, options: int) -> dict[tuple[str, int], list[int]]:
    """The official submission: [{image_id, round_id, ranks}], ranks a permutation of 1..options (1 = best)."""
    ranks = {}
    for entry, key, given in visdial_entries(path, "ranks", "entry"):
        if sorted(r for r in given if isinstance(r, int) and not isinstance(r, bool)) != list(range(1, options + 1)):
            entry.fail(f"has 'ranks' that are not a permutation of 1..{options}")
        ranks[key] = given
    return ranks


def read_dense_relevance(path: Path) -> dict[tuple[str, int], list[float]]:
    """The dense annotations: for one round of each dialog, the relevance of each of the (100) options."""
    relevance = {}
    for entry, key, values in visdial_entries(path, "gt_relevance", "annotation"):
        if not all(is_number(v) for v in values):
            entry.fail("has a 'gt_relevance' value that is not a number")
        if not any(v > 0 for v in values):
            entry.fail("has no relevant option: NDCG is undefined")
        relevance[key] = [float(v) for v in values]
    if not relevance or len({len(v) for v in relevance.values()}) != 1:
        raise DataError(f"{path}: expected annotations whose gt_relevance lists all have one length (the number of options)")
    return relevance


def score_visdial(submission: Submission) -> dict[str, Any]:
    """NDCG of the densely annotated round of each dialog; the submission's other rounds are ignored,
    as the challenge server does (a val submission ranks every round)."""
    from metrics.ranking import ndcg_sklearn, visdial_ndcg

    relevance = read_dense_relevance(submission.annotations)
    ranks = read_visdial_ranks(submission.predictions, len(next(iter(relevance.values()))))
    missing = [key for key in relevance if key not in ranks]
    if missing:
        shown = ", ".join(f"image_id {i} round_id {r}" for i, r in missing[:5])
        raise DataError(f"{submission.predictions}: no ranks for {len(missing)} annotated rounds of "
                        f"{submission.annotations.name}: {shown}")
    check_same_ids({image_id for image_id, _ in ranks}, {image_id for image_id, _ in relevance}, submission, "image_id")
    ndcg = ndcg_sklearn if submission.variant == "ndcg_sklearn" else visdial_ndcg
    overall, per_round = ndcg([ranks[key] for key in relevance], list(relevance.values()))
    return {"scores": {"ndcg": overall}, "per_round": {f"{i}_{r}": value for (i, r), value in zip(relevance, per_round)}}


# ---------------------------------------------------------------- Winoground

PAIR_KEYS = ("c0_i0", "c0_i1", "c1_i0", "c1_i1")


def score_winoground(submission: Submission) -> dict[str, Any]:
    """Text, image and group scores from the four scores s(caption_i, image_j) of each example."""
    from metrics.ranking import PairScores, winoground_outcome, winoground_scores

    pairs = {}
    examples = matched(submission, read_jsonl(submission.predictions), read_jsonl(submission.annotations))
    for rid, (example, predicted) in examples.items():
        for key in ("caption_0", "caption_1", "image_0", "image_1"):
            example.get(key)
        pairs[rid] = PairScores(*(predicted.number(key) for key in PAIR_KEYS))
    return {"scores": winoground_scores(list(pairs.values())),
            "per_example": {rid: winoground_outcome(p) for rid, p in pairs.items()}}


# ---------------------------------------------------------------- classification (ImageNet, RenderedSST2, ScienceQA)

def top5_labels(entry: Entry) -> list[str]:
    ranked = entry.items("top5")
    if not all(is_label(value) for value in ranked):
        entry.fail("has a 'top5' entry that is not a label (a string or an integer)")
    labels = [str(value) for value in ranked]
    if len(labels) != 5 or len(set(labels)) != 5:
        entry.fail(f"has a 'top5' of {len(labels)} labels ({len(set(labels))} distinct), expected 5 distinct labels")
    return labels


def score_classification(submission: Submission) -> dict[str, Any]:
    """Top-1 accuracy of `label`, and top-5 accuracy when every prediction has a `top5` list."""
    from metrics.ranking import accuracy, percent, top_k_hits

    pairs = matched(submission, read_jsonl(submission.predictions), read_jsonl(submission.annotations)).values()
    truth = [gold.label("label") for gold, _ in pairs]
    scores = {"accuracy": accuracy([predicted.label("label") for _, predicted in pairs], truth)}
    if all("top5" in predicted.record for _, predicted in pairs):
        ranked = [top5_labels(predicted) for _, predicted in pairs]
        scores["top5_accuracy"] = percent(sum(top_k_hits(ranked, truth, 5)), len(truth))
    return {"scores": scores}


# ---------------------------------------------------------------- entry points

SUBMISSION_SCORERS: dict[str, SubmissionFormat] = {
    "vqa": SubmissionFormat(score_vqa, takes_questions=True),
    "textvqa": SubmissionFormat(score_textvqa),
    "vizwiz": SubmissionFormat(score_vizwiz),
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
