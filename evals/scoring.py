"""`evals score`: score a benchmark submission file with no model, exactly as the official scorer would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evals.errors import ConfigError, DataError
from evals.registry import TASKS
from metrics.vqa import VQAReference, vqa_accuracy
from tasks.base import read_json, require
from tasks.vqa import human_answers


def id_preview(ids: set) -> str:
    shown = sorted(ids, key=str)[:5]
    return ", ".join(str(i) for i in shown) + (" ..." if len(ids) > 5 else "")


def read_vqa_predictions(path: Path) -> dict[Any, str]:
    """An EvalAI results file: a JSON list of {"question_id", "answer"}, one per question."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON list of {{\"question_id\", \"answer\"}} objects")
    predictions: dict[Any, str] = {}
    for i, row in enumerate(rows):
        qid = require(row, "question_id", path, f"entry #{i}")
        answer = require(row, "answer", path, f"entry #{i} (question_id {qid})")
        if not isinstance(answer, str):
            raise DataError(f"{path}: entry #{i} (question_id {qid}) has a non-string 'answer'")
        if qid in predictions:
            raise DataError(f"{path}: question_id {qid} is answered twice")
        predictions[qid] = answer
    return predictions


def read_vqa_references(annotations_path: Path, questions_path: Path | None) -> list[VQAReference]:
    annotations = require(read_json(annotations_path), "annotations", annotations_path, "the top level")
    references = []
    for i, a in enumerate(annotations):
        qid = require(a, "question_id", annotations_path, f"annotation #{i}")
        references.append(VQAReference(qid, human_answers(a, annotations_path), str(a.get("question_type", "")), str(a.get("answer_type", ""))))
    if questions_path is not None:
        questions = require(read_json(questions_path), "questions", questions_path, "the top level")
        asked = {require(q, "question_id", questions_path, f"question #{i}") for i, q in enumerate(questions)}
        unannotated = asked - {r.question_id for r in references}
        if unannotated:
            raise DataError(f"{annotations_path}: no annotation for question_ids {id_preview(unannotated)} of {questions_path}")
    return references


def score_vqa_submission(predictions: Path, annotations: Path, questions: Path | None = None) -> dict[str, Any]:
    """Score as given (no answer processing: that belongs to producing the file), every question once."""
    answers = read_vqa_predictions(predictions)
    references = read_vqa_references(annotations, questions)
    expected = {r.question_id for r in references}
    missing, unknown = expected - answers.keys(), answers.keys() - expected
    if missing:
        raise DataError(f"{predictions}: no prediction for {len(missing)} question_ids of {annotations.name}: {id_preview(missing)}")
    if unknown:
        raise DataError(f"{predictions}: {len(unknown)} question_ids not in {annotations.name}: {id_preview(unknown)}")
    result = vqa_accuracy({str(k): v for k, v in answers.items()}, [
        VQAReference(str(r.question_id), r.answers, r.question_type, r.answer_type) for r in references
    ])
    return {
        "scores": {"vqa_accuracy": result.overall},
        "by_question_type": result.per_question_type,
        "by_answer_type": result.per_answer_type,
        "per_question": result.per_question,
    }


SUBMISSION_SCORERS: dict[str, Callable[..., dict[str, Any]]] = {"vqa": score_vqa_submission}


def score_submission(task_name: str, **files: Path | None) -> dict[str, Any]:
    task = TASKS.get(task_name)
    scorer = SUBMISSION_SCORERS.get(task.submission_format)
    if scorer is None:
        scoreable = sorted(name for name, t in TASKS.items() if t.submission_format in SUBMISSION_SCORERS)
        raise ConfigError(f"task '{task_name}' has no submission scorer (scoreable: {', '.join(scoreable)})")
    return {"task": task_name, **scorer(**files)}
