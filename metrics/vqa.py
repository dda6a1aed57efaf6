"""VQA accuracy exactly as the official GT-Vision-Lab scorer (vqaEval.py) computes it.

Antol et al. 2015 / Goyal et al. 2017: a prediction's accuracy is min(1, matches / 3) against each
leave-one-out subset of the 10 human answers, averaged. The scorer's text normalisation is
reproduced quirk for quirk (see PROTOCOL.md), because a "fixed" normaliser gives different numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
CONTRACTIONS: dict[str, str] = json.loads(Path(__file__).with_name("vqa_contractions.json").read_text())["contractions"]
# The scorer writes "(?!<=\d)" meaning a look-behind, but it is a look-ahead for "<=digit": in effect
# every period not followed by a digit is removed.
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
# The scorer passes re.UNICODE (32) where `sub` expects its count: at most 32 periods are removed.
_PERIOD_SUB_COUNT = 32


def strip_punctuation(text: str) -> str:
    """The scorer's processPunctuation: a mark next to a space (or any text with a 1,000-style
    number) is deleted, otherwise replaced by a space; then periods not before a digit go."""
    delete = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        if delete or mark + " " in text or " " + mark in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out, count=_PERIOD_SUB_COUNT)


def digits_and_articles(text: str) -> str:
    """The scorer's processDigitArticle: lowercase, number words to digits, drop articles, fix contractions."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES]
    return " ".join(words)


def clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


@lru_cache(maxsize=1 << 17)
def normalize(text: str) -> str:
    """Official normalisation of one answer (applied only when the human answers disagree)."""
    return digits_and_articles(strip_punctuation(text))


def process_answer(prediction: str) -> str:
    """EvalAI's answer processor, applied to a model's output before it is written or scored, as
    submission pipelines do: lowercase, drop commas and question marks, then the official rules."""
    text = prediction.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    return normalize(clean_whitespace(text))


def question_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Accuracy in [0, 1] of one prediction against its human answers.

    Leave-one-out removes exactly one answer by position (the scorer removes by `answer_id`, the
    same thing when ids are unique; VizWiz answers carry no id, where dict equality would drop all
    duplicates at once).
    """
    prediction = clean_whitespace(prediction)
    answers = [clean_whitespace(a) for a in answers]
    if len(set(answers)) > 1:
        prediction = normalize(prediction)
        answers = [normalize(a) for a in answers]
    matches = sum(a == prediction for a in answers)
    return sum(min(1, float(matches - (a == prediction)) / 3) for a in answers) / len(answers)


@dataclass(frozen=True)
class VQAReference:
    question_id: str
    answers: tuple[str, ...]
    question_type: str = ""
    answer_type: str = ""


@dataclass(frozen=True)
class VQAScore:
    """The scorer's outputs on the 0-100 scale, rounded to 2 places as it prints them."""

    overall: float
    per_question_type: dict[str, float]
    per_answer_type: dict[str, float]
    per_question: dict[str, float]


def mean_percent(values: Sequence[float]) -> float:
    return round(100 * float(sum(values)) / len(values), 2)


def vqa_accuracy(predictions: Mapping[str, str], references: Sequence[VQAReference]) -> VQAScore:
    """Score predictions (question id -> answer) over `references`, in reference order as the scorer does."""
    overall: list[float] = []
    by_question_type: dict[str, list[float]] = {}
    by_answer_type: dict[str, list[float]] = {}
    per_question: dict[str, float] = {}
    for ref in references:
        accuracy = question_accuracy(predictions[ref.question_id], ref.answers)
        overall.append(accuracy)
        by_question_type.setdefault(ref.question_type, []).append(accuracy)
        by_answer_type.setdefault(ref.answer_type, []).append(accuracy)
        per_question[ref.question_id] = round(100 * accuracy, 2)
    return VQAScore(
        overall=mean_percent(overall),
        per_question_type={k: mean_percent(v) for k, v in by_question_type.items()},
        per_answer_type={k: mean_percent(v) for k, v in by_answer_type.items()},
        per_question=per_question,
    )
