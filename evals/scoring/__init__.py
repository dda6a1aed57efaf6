"""`evals score`: score a benchmark submission file with no model, exactly as the official scorer would.

One reader per submission format (a task names its own in `Task.submission_format`): the file is
checked against the reference file (every id once, no unknown id, well-formed values) and scored as
given, so a malformed submission fails with one line instead of a silently wrong number. With `partial`, a file
that predicts part of the reference ids is scored over those, as the official scorers score the ids of their
results file, and the result says how many: {"coverage": {"covered", "annotated", "fraction"}}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evals.errors import ConfigError
from evals.registry import TASKS
from evals.scoring.captions import score_captions
from evals.scoring.files import Submission, SubmissionFormat
from evals.scoring.ranked import score_classification, score_hateful_memes, score_visdial, score_winoground
from evals.scoring.vqa import score_textvqa, score_vizwiz, score_vqa

SUBMISSION_SCORERS: dict[str, SubmissionFormat] = {
    "vqa": SubmissionFormat(score_vqa, takes_questions=True),
    "textvqa": SubmissionFormat(score_textvqa, variants=("vqav2_rule",)),
    "vizwiz": SubmissionFormat(score_vizwiz, variants=("vqav2_rule",)),
    "captions": SubmissionFormat(score_captions),
    "hateful_memes": SubmissionFormat(score_hateful_memes),
    "visdial": SubmissionFormat(score_visdial, variants=("ndcg_sklearn",)),
    "winoground": SubmissionFormat(score_winoground),
    "classification": SubmissionFormat(score_classification),
}


def score_file(format_name: str, predictions: Path, annotations: Path, questions: Path | None = None,
               metric_variant: str | None = None, partial: bool = False) -> dict[str, Any]:
    """Score a submission in the named format: {"scores": {metric: 0-100}, ...breakdowns}."""
    if format_name not in SUBMISSION_SCORERS:
        raise ConfigError(f"no submission format '{format_name}' (formats: {', '.join(SUBMISSION_SCORERS)})")
    form = SUBMISSION_SCORERS[format_name]
    if questions is not None and not form.takes_questions:
        raise ConfigError(f"--questions is for VQA submissions; the {format_name} format has no questions file")
    if metric_variant is not None and metric_variant not in form.variants:
        raise ConfigError(f"the {format_name} format has no metric variant '{metric_variant}' "
                          f"(variants: {', '.join(form.variants) or 'none'})")
    result = form.score(Submission(Path(predictions), Path(annotations), questions, metric_variant, partial))
    return {**result, "metric_variant": metric_variant} if metric_variant else result


def score_submission(task_name: str, predictions: Path, annotations: Path, questions: Path | None = None,
                     metric_variant: str | None = None, partial: bool = False) -> dict[str, Any]:
    """Score a task's submission file in the task's own format: {"task", "scores", ...breakdowns}."""
    task = TASKS.get(task_name)
    if task.submission_format not in SUBMISSION_SCORERS:
        scoreable = sorted(name for name, t in TASKS.items() if t.submission_format in SUBMISSION_SCORERS)
        raise ConfigError(f"task '{task_name}' has no submission scorer (scoreable: {', '.join(scoreable)})")
    return {"task": task_name, **score_file(task.submission_format, predictions, annotations, questions, metric_variant, partial)}


def result_json(result: dict[str, Any]) -> str:
    """The result as indented JSON, but its per-question map on one line: json's indenting encoder is pure
    Python, and a VQAv2 val submission has 214,354 questions."""
    if "per_question" not in result:
        return json.dumps(result, indent=1) + "\n"
    head = json.dumps({key: value for key, value in result.items() if key != "per_question"}, indent=1)
    return f'{head[:-2]},\n "per_question": {json.dumps(result["per_question"])}\n}}\n'
