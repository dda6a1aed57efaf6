"""VQA-family submissions scored by their official scorers: VQAv2/OK-VQA EvalAI files by vqaEval.py's VQA accuracy,
TextVQA by MMF's TextVQA evaluator, VizWiz by its challenge's scorer (`vqav2_rule`: vqaEval.py's rule for those two)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.records import Example
from evals.scoring.files import (
    Coverage,
    Entry,
    Retained,
    Submission,
    covered_ids,
    cycle_collection_paused,
    id_preview,
    index_by_id,
    read_answer_list,
    top_level_list,
)
from metrics.textvqa import textvqa_accuracy
from metrics.vizwiz import vizwiz_accuracy
from metrics.vqa import VQAReference, VQAScore, question_accuracies, summarize, vqa_accuracy
from tasks.base import read_json
from tasks.vqa import TextVQAFiles, VizWizFiles, human_answers


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


Accuracy = Callable[[Mapping[str, str], Sequence[VQAReference]], VQAScore]


def vqa_scores(submission: Submission, references: Sequence[VQAReference], id_key: str,
               accuracy: Accuracy = vqa_accuracy) -> tuple[VQAScore, Coverage]:
    """Predictions [{id_key, answer}] scored as given (any answer processing is the scorer's own), every question of
    the reference file once, or with --partial the questions the file holds. The official vqaEval.py scores
    `evaluate(quesIds=None)`, `quesIds = [quesId for quesId in self.params['question_id']]`, where
    `self.params = {'question_id': vqa.getQuesIds()}` (the annotations'; and the current vqa.py's loadRes asserts
    that the results hold exactly those): part of a set is scored by passing the results' question ids as quesIds,
    each question's accuracy averaged over those alone, which is what --partial does."""
    if not references:
        raise DataError(f"{submission.annotations}: no questions to score")
    answers = read_answer_list(submission.predictions, id_key, "answer")
    coverage = covered_ids(answers, [r.question_id for r in references], submission, id_key)
    return accuracy(answers, [r for r in references if r.question_id in answers]), coverage


def score_vqa(submission: Submission) -> dict[str, Any]:
    """VQAv2 / OK-VQA: EvalAI results [{question_id, answer}] against the official annotations (+ questions)."""
    with cycle_collection_paused():
        result = plain_vqa_score(submission)  # None for a partial file too: its ids are not the annotations'
        if result is not None:
            coverage = Coverage(list(result.per_question), len(result.per_question), submission.partial)
        else:
            references = read_vqa_references(submission.annotations, submission.questions)
            result, coverage = vqa_scores(submission, references, "question_id")
    return {
        "scores": {"vqa_accuracy": result.overall},
        **coverage.report(),
        "by_question_type": result.per_question_type,
        "by_answer_type": result.per_answer_type,
        "per_question": result.per_question,
    }


class Irregular(Exception):
    """The files are not in the plain shape the fast reader takes: the careful reader names the problem (or reads them)."""


@dataclass(frozen=True)
class VQAColumns:
    """One column per field, in annotation order: the shape metrics.vqa scores fastest."""

    ids: list[int]
    answers: list[list[dict]]  # each question's answer records {"answer": text, ...}, as in the file
    question_types: list[str]
    answer_types: list[str]


def plain_vqa_score(submission: Submission) -> VQAScore | None:
    """The score of files in the shape the official tools write (integer ids, each once, string answers), read column by
    column without a per-record wrapper; None for any other shape, which the careful reader then checks record by
    record. Files are read in the careful reader's order, so a missing or malformed file fails there the same way."""
    try:
        columns = annotation_columns(Retained.hold(read_json(submission.annotations)))
        if submission.questions is not None:
            asked = set(map(itemgetter("question_id"), plain_list(Retained.hold(read_json(submission.questions))["questions"], empty=True)))
            if not (set(map(type, asked)) <= {int} and asked <= set(columns.ids)):  # not True or 1.0 for 1
                raise Irregular
        rows = plain_list(Retained.hold(read_json(submission.predictions)))
        answers = dict(zip(map(itemgetter("question_id"), rows), map(itemgetter("answer"), rows)))
        if (len(answers) != len(rows) or set(map(type, answers)) != {int} or answers.keys() != set(columns.ids)
                or set(map(type, answers.values())) != {str}):
            raise Irregular
        accuracies = question_accuracies(list(map(answers.__getitem__, columns.ids)), columns.answers, answer_key="answer")
    except (Irregular, KeyError, TypeError, AttributeError):  # Attribute/TypeError: an answer that is not a string
        return None
    return summarize(list(map(str, columns.ids)), accuracies, columns.question_types, columns.answer_types)


def plain_list(rows: Any, empty: bool = False) -> list:
    if type(rows) is not list or not (rows or empty):
        raise Irregular
    return rows


def annotation_columns(annotations: Any) -> VQAColumns:
    """Columns by C-level getters (map, itemgetter): a per-record Python loop would cost as much as the scoring."""
    rows = plain_list(annotations["annotations"])
    ids = list(map(itemgetter("question_id"), rows))
    if set(map(type, ids)) != {int} or len(set(ids)) != len(ids):  # string ids are read by the careful reader
        raise Irregular
    answer_lists = list(map(itemgetter("answers"), rows))
    if set(map(type, answer_lists)) != {list} or not all(answer_lists):
        raise Irregular
    return VQAColumns(ids, answer_lists, text_column(rows, "question_type"), text_column(rows, "answer_type"))


def text_column(rows: list[dict], key: str) -> list[str]:
    """The field as text, "" where absent, as the careful reader takes it."""
    values = list(map(dict.get, rows, repeat(key), repeat("")))
    return values if set(map(type, values)) <= {str} else list(map(str, values))


def official_or_vqav2_rule(submission: Submission, official: Accuracy) -> Accuracy:
    """The format's own scorer, or vqaEval.py's rule on the answers as given with `--metric-variant vqav2_rule`."""
    return vqa_accuracy if submission.variant == "vqav2_rule" else official


def score_textvqa(submission: Submission) -> dict[str, Any]:
    """TextVQA: EvalAI results [{question_id, answer}] against TextVQA_0.5.1_val.json (`data`, 10 answer strings each),
    read by the task's own loader, scored by MMF's TextVQA evaluator. The file has no question or answer types."""
    examples = TextVQAFiles().read(submission.annotations, submission.annotations.parent, "val")
    result, coverage = vqa_scores(submission, loaded_references(examples, submission.annotations, "question_id"), "question_id",
                                  official_or_vqav2_rule(submission, textvqa_accuracy))
    return {"scores": {"vqa_accuracy": result.overall}, **coverage.report(), "per_question": result.per_question}


def score_vizwiz(submission: Submission) -> dict[str, Any]:
    """VizWiz: the challenge's [{image, answer}] against Annotations/val.json, read by the task's own loader, scored by
    the challenge's scorer. Its answers carry no answer_id: the leave-one-out removes one answer by position."""
    examples = VizWizFiles().read(submission.annotations, submission.annotations.parent, "val")
    result, coverage = vqa_scores(submission, loaded_references(examples, submission.annotations, "image"), "image",
                                  official_or_vqav2_rule(submission, vizwiz_accuracy))
    return {"scores": {"vqa_accuracy": result.overall}, **coverage.report(), "by_answer_type": result.per_answer_type,
            "per_question": result.per_question}


# ---------------------------------------------------------------- captions (COCO results format)
