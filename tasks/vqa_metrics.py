"""The open-ended VQA tasks' metrics over examples: vqaEval.py's VQA accuracy (VQAv2, OK-VQA and its stemmed
variant), TextVQA's and VizWiz's own scorers, and the rule the harness used for those two before."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache

from evals.records import Example
from metrics.textvqa import textvqa_accuracy
from metrics.vizwiz import vizwiz_accuracy
from metrics.vqa import VQAReference, VQAScore, clean_whitespace, normalize, process_answer, vqa_accuracy
from tasks.base import MetricResult


def score_vqa(predictions: Mapping[str, str], examples: Sequence[Example],
              accuracy: Callable[[Mapping[str, str], Sequence[VQAReference]], VQAScore] = vqa_accuracy) -> MetricResult:
    """vqaEval.py's VQA accuracy (or another scorer's `accuracy`) with its breakdowns."""
    references = [
        VQAReference(e.id, e.references, e.meta.get("question_type", ""), e.meta.get("answer_type", ""))
        for e in examples
    ]
    result = accuracy(predictions, references)
    return MetricResult(
        scores={"vqa_accuracy": result.overall},
        per_sample=result.per_question,
        breakdowns={"by_question_type": result.per_question_type, "by_answer_type": result.per_answer_type},
    )


def score_textvqa_accuracy(predictions: Mapping[str, str], examples: Sequence[Example]) -> MetricResult:
    """MMF's TextVQA evaluator: prediction and human answers through EvalAI's answer processor, always."""
    return score_vqa(predictions, examples, textvqa_accuracy)


def score_vizwiz_accuracy(predictions: Mapping[str, str], examples: Sequence[Example]) -> MetricResult:
    """The VizWiz challenge's scorer: the prediction normalised, the human answers as written."""
    return score_vqa(predictions, examples, vizwiz_accuracy)


def score_vqav2_rule(predictions: Mapping[str, str], examples: Sequence[Example]) -> MetricResult:
    """TextVQA and VizWiz as this harness scored them before using their own scorers: EvalAI's answer processor on
    the prediction (what postprocessing did then), then vqaEval.py's rule (normalise only where the humans disagree)."""
    return score_vqa({qid: process_answer(answer) for qid, answer in predictions.items()}, examples)


@lru_cache(maxsize=1)
def porter():
    from nltk.stem import PorterStemmer  # needs no NLTK data download

    return PorterStemmer()


@lru_cache(maxsize=1 << 16)
def stem_answer(text: str) -> str:
    """The answer normalised as the official scorer does, then each word Porter-stemmed."""
    return " ".join(porter().stem(word) for word in normalize(clean_whitespace(text)).split())


def score_vqa_stemmed(predictions: Mapping[str, str], examples: Sequence[Example]) -> MetricResult:
    """OK-VQA v1.1 answers are stemmed, so OpenFlamingo stems the prediction before the official scorer.
    Its stemmer (WordNet verb lemmas for -ing words, `inflection` singulars for plural nouns, a hand-made
    table) needs NLTK data downloads; this variant Porter-stems prediction and answers alike instead, so
    "riding" meets "ride" and "tennis" meets "tennis". Close to, not identical with, OpenFlamingo's numbers."""
    stemmed = {qid: stem_answer(answer) for qid, answer in predictions.items()}
    return score_vqa(stemmed, [replace(e, references=tuple(stem_answer(a) for a in e.references)) for e in examples])
