"""VQA accuracy exactly as the official GT-Vision-Lab scorer (vqaEval.py) computes it.

Antol et al. 2015 / Goyal et al. 2017: a prediction's accuracy is min(1, matches / 3) against each
leave-one-out subset of the 10 human answers, averaged. The scorer's text normalisation is
reproduced quirk for quirk (see PROTOCOL.md), because a "fixed" normaliser gives different numbers.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress, repeat
from operator import eq, itemgetter, setitem
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


def digits_and_articles(text: str, contractions: Mapping[str, str] = CONTRACTIONS) -> str:
    """The scorer's processDigitArticle: lowercase, number words to digits, drop articles, fix contractions
    (VizWiz's scorer has its own table)."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [contractions.get(word, word) for word in words if word not in ARTICLES]
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


def pattern_accuracy(matches: tuple[bool, ...]) -> float:
    """The accuracy of a prediction equal to the human answers at the True positions: the same sum,
    in answer order, as question_accuracy, so the same float to the last bit."""
    total = sum(matches)
    return sum(min(1, float(total - hit) / 3) for hit in matches) / len(matches)


def exhaust(iterator: Iterable) -> None:
    """Run a lazy map for its effects, at C level."""
    deque(iterator, maxlen=0)


def texts_each(memo: Memo, texts: Iterable[Iterable[str]]) -> list[tuple[str, ...]]:
    """Every text of every question through `memo`, by C-level maps (a Python loop per question costs as much as the scoring)."""
    return list(map(tuple, map(map, repeat(memo.__getitem__), texts)))


def question_accuracies(predictions: Sequence[str], answer_lists: Sequence[Sequence], answer_key: str | None = None) -> list[float]:
    """question_accuracy of many questions at once, the same floats: each distinct text is cleaned and
    normalised once, and each question's accuracy is looked up by its match pattern (the True/False
    of each human answer against the prediction; at most 2**10 of them), all by C-level maps.

    With `answer_key`, each answer is a record {answer_key: text} (the official annotations' shape), read here
    rather than copied into tuples first. A non-string answer or prediction raises AttributeError (or TypeError
    when unhashable; a record without the key KeyError): callers convert or reject them first.
    """
    cleaned, normalized = Memo(clean_whitespace), Memo(normalize.__wrapped__)
    if answer_key is not None:
        answer_lists = map(map, repeat(itemgetter(answer_key)), answer_lists)
    answers = texts_each(cleaned, answer_lists)
    guesses = list(map(cleaned.__getitem__, predictions))
    # Compared normalised only where the humans disagree: those questions' cleaned forms are overwritten in place.
    disagree = compress(range(len(answers)), map((1).__lt__, map(len, map(set, answers))))
    where = list(disagree)
    exhaust(map(setitem, repeat(answers), where, texts_each(normalized, map(answers.__getitem__, where))))
    exhaust(map(setitem, repeat(guesses), where, map(normalized.__getitem__, map(guesses.__getitem__, where))))
    return matched_accuracies(guesses, answers)


def matched_accuracies(guesses: Iterable[str], answers: Iterable[Sequence[str]]) -> list[float]:
    """pattern_accuracy of each question's guess against its answers, both already in the form they are compared in."""
    patterns = map(tuple, map(map, repeat(eq), answers, map(repeat, guesses)))
    return list(map(Memo(pattern_accuracy).__getitem__, patterns))


def accuracies_in_forms(predictions: Sequence[str], answer_lists: Sequence[Sequence[str]],
                        prediction_form: Callable[[str], str], answer_form: Callable[[str], str] | None) -> list[float]:
    """Per-question accuracy when the prediction and each human answer are put in a fixed form whatever the humans
    agree on (TextVQA's and VizWiz's scorers; `answer_form` None: the answers as given). Each distinct text is put
    in its form once; the accuracy is question_accuracy's leave-one-out average, the same floats."""
    answers = texts_each(Memo(answer_form), answer_lists) if answer_form is not None else list(map(tuple, answer_lists))
    return matched_accuracies(map(Memo(prediction_form).__getitem__, predictions), answers)


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
    members = Memo(lambda group: [])
    exhaust(map(list.append, map(members.__getitem__, groups), accuracies))
    return {group: mean_percent(values) for group, values in members.items()}


def summarize(ids: Sequence[str], accuracies: Sequence[float], question_types: Sequence[str],
              answer_types: Sequence[str]) -> VQAScore:
    """The scorer's outputs from per-question accuracies, all in question order."""
    rounded = Memo(lambda accuracy: round(100 * accuracy, 2))  # a few dozen distinct accuracies (k/30)
    return VQAScore(
        overall=mean_percent(accuracies),
        per_question_type=grouped_percent(accuracies, question_types),
        per_answer_type=grouped_percent(accuracies, answer_types),
        per_question=dict(zip(ids, map(rounded.__getitem__, accuracies))),
    )


def vqa_accuracy(predictions: Mapping[str, str], references: Sequence[VQAReference]) -> VQAScore:
    """Score predictions (question id -> answer) over `references`, in reference order as the scorer does."""
    return score_references(predictions, references, question_accuracies)


def score_references(predictions: Mapping[str, str], references: Sequence[VQAReference],
                     accuracies: Callable[[list[str], list[tuple[str, ...]]], list[float]]) -> VQAScore:
    """`accuracies(predictions, answer lists)` of every reference's question, in reference order, summarised."""
    ids = [ref.question_id for ref in references]
    per_question = accuracies([predictions[qid] for qid in ids], [tuple(ref.answers) for ref in references])
    return summarize(ids, per_question, [ref.question_type for ref in references], [ref.answer_type for ref in references])
