"""VQA accuracy exactly as the official GT-Vision-Lab scorer (vqaEval.py) computes it.

Antol et al. 2015 / Goyal et al. 2017: a prediction's accuracy is min(1, matches / 3) against each
leave-one-out subset of the 10 human answers, averaged. The scorer's text normalisation is
reproduced quirk for quirk (see PROTOCOL.md), because a "fixed" normaliser gives different numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
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


class Memo(dict):
    """key -> compute(key), computed once per distinct key. VQA answers repeat massively (yes, no, 2,
    white ...), so the official per-question normalisation redoes the same work millions of times."""

    def __init__(self, compute: Callable) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, key: Hashable):
        value = self[key] = self.compute(key)
        return value


@lru_cache(maxsize=1024)
def pattern_accuracy(matches: tuple[bool, ...]) -> float:
    """The accuracy of a prediction equal to the human answers at the True positions: the same sum,
    in answer order, as question_accuracy, so the same float to the last bit."""
    total = sum(matches)
    return sum(min(1, float(total - hit) / 3) for hit in matches) / len(matches)


def matched_accuracy(prediction: str, answers: list[str]) -> float:
    """pattern_accuracy without building the pattern where the order of the terms cannot change the sum:
    with 0, 1 or more than 3 matches the terms are equal or zero; with 2 or 3 they mix 1/3 and 2/3, or 2/3 and 1."""
    total = answers.count(prediction)
    if total in (2, 3):
        return pattern_accuracy(tuple([a == prediction for a in answers]))
    return pattern_accuracy((True,) * total + (False,) * (len(answers) - total))


def question_accuracies(predictions: Sequence[str], answer_lists: Sequence[tuple[str, ...]]) -> list[float]:
    """question_accuracy of many questions at once, the same floats: each distinct text is cleaned and
    normalised once, and a (prediction, answers) pair seen before is not scored again.

    A non-string answer or prediction raises AttributeError (or TypeError when unhashable): callers
    convert or reject them first.
    """
    cleaned, normalized = Memo(clean_whitespace), Memo(normalize.__wrapped__)

    def score(pair: tuple[str, tuple[str, ...]]) -> float:
        answers = [cleaned[a] for a in pair[1]]
        if answers.count(answers[0]) == len(answers):  # all identical: compared as they are
            return matched_accuracy(cleaned[pair[0]], answers)
        return matched_accuracy(normalized[cleaned[pair[0]]], [normalized[a] for a in answers])

    scored = Memo(score)
    return [scored[pair] for pair in zip(predictions, answer_lists)]


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


def grouped_percent(accuracies: Sequence[float], groups: Sequence[str]) -> dict[str, float]:
    """mean_percent per group, groups in order of first appearance and values in question order (as the scorer sums)."""
    members: dict[str, list[float]] = {}
    for group, accuracy in zip(groups, accuracies):
        members.setdefault(group, []).append(accuracy)
    return {group: mean_percent(values) for group, values in members.items()}


def summarize(ids: Sequence[str], accuracies: Sequence[float], question_types: Sequence[str],
              answer_types: Sequence[str]) -> VQAScore:
    """The scorer's outputs from per-question accuracies, all in question order."""
    rounded = Memo(lambda accuracy: round(100 * accuracy, 2))  # a few dozen distinct accuracies (k/30)
    return VQAScore(
        overall=mean_percent(accuracies),
        per_question_type=grouped_percent(accuracies, question_types),
        per_answer_type=grouped_percent(accuracies, answer_types),
        per_question={qid: rounded[accuracy] for qid, accuracy in zip(ids, accuracies)},
    )


def vqa_accuracy(predictions: Mapping[str, str], references: Sequence[VQAReference]) -> VQAScore:
    """Score predictions (question id -> answer) over `references`, in reference order as the scorer does."""
    ids = [ref.question_id for ref in references]
    accuracies = question_accuracies([predictions[qid] for qid in ids], [tuple(ref.answers) for ref in references])
    return summarize(ids, accuracies, [ref.question_type for ref in references], [ref.answer_type for ref in references])
