"""ANLS, the DocVQA metric (Biten et al. 2019, arXiv 1905.13648; DocVQA: Mathew et al. 2021, arXiv 2007.00398).

Per question, step for step as the official RRC scorer (DocVQA task 1, InfographicVQA task 3; `evaluate_method`)
computes it, so that Unicode case mapping gives the same numbers:
  1. for each gold answer, NL = edit distance between the two strings stripped, lower-cased and with their
     whitespace runs collapsed to one space, divided by max(len(gold.upper()), len(prediction.upper())) of the
     RAW strings (trailing spaces, inner whitespace runs and case mappings that change the length all count
     there; 0 when that length is 0);
  2. the question scores 1 - min NL, or 0 when that is below tau = 0.5 (exactly 0.5 keeps 0.5).
The corpus score is the mean over questions, on the 0-100 scale.
"""

from __future__ import annotations

from collections.abc import Sequence

ANLS_THRESHOLD = 0.5


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def normalize(text: str) -> str:
    """The form the edit distance is taken on: stripped, then lower-cased, then whitespace runs as one space."""
    return " ".join(text.strip().lower().split())


def normalized_distance(prediction: str, gold: str) -> float:
    """NL for one pair: the distance of the normalised strings over the upper-cased RAW strings' longer length.

    It can exceed 1 where lower() lengthens a string ("İ" lower-cases to two characters, upper-cases to one)."""
    length = max(len(gold.upper()), len(prediction.upper()))
    return 0.0 if length == 0 else levenshtein(normalize(gold), normalize(prediction)) / length


def anls(prediction: str, golds: Sequence[str], threshold: float = ANLS_THRESHOLD) -> float:
    """One question's score: 1 - the smallest NL over its gold answers, 0 below threshold (none: 0)."""
    if not golds:
        return 0.0
    score = 1.0 - min(normalized_distance(prediction, gold) for gold in golds)
    return 0.0 if score < threshold else score
