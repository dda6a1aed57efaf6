"""TextVQA accuracy as its official scorer computes it (Singh et al. 2019, arXiv 1904.08920).

MMF's TextVQAAccuracyEvaluator (mmf/utils/m4c_evaluators.py), which EvalAI runs for TextVQA, puts the
prediction AND every human answer through the EvalAI answer processor, always, then takes the VQA
leave-one-out average of min(1, matches / 3). vqaEval.py's rule (normalise only where the humans
disagree) gives other numbers on real TextVQA submissions (possessives, unanimous answers, commas).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from metrics.vqa import VQAReference, VQAScore, accuracies_in_forms, process_answer, score_references


def textvqa_accuracies(predictions: Sequence[str], answer_lists: Sequence[Sequence[str]]) -> list[float]:
    """The evaluator builds, per unique processed answer, the mean over the answers of min(1, float(matches among
    the others) / 3), and looks the processed prediction up (0.0 when absent): the same sum, in answer order, as
    accuracies_in_forms. process_answer is EvalAI's processor, step for step (lowercase, drop "," and "?", split
    "'s", then vqaEval's punctuation, digit, article and contraction rules)."""
    return accuracies_in_forms(predictions, answer_lists, process_answer, process_answer)


def textvqa_accuracy(predictions: Mapping[str, str], references: Sequence[VQAReference]) -> VQAScore:
    """Score predictions (question id -> answer, as the model gave it) over `references`, in reference order. The
    evaluator's overall number is the plain mean; on this harness's 0-100 scale it is rounded to 2 places."""
    return score_references(predictions, references, textvqa_accuracies)
