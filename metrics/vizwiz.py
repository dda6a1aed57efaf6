"""VizWiz-VQA accuracy as its challenge's scorer computes it (Gurari et al. 2018, arXiv 1802.08218).

The VizWiz evaluation code (vqaEval.py in the challenge's VQA API, class VQAEval) normalises the PREDICTION only:
newlines and tabs to spaces, strip, vqaEval's punctuation rule, then lowercase, number words to digits, articles
dropped, contractions; the human answers are compared exactly as written (case included). Leave-one-out removes
one answer by position; min(1, matches / 3) averaged; overall and per answer type x100, rounded to 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from metrics.vqa import (
    CONTRACTIONS,
    VQAReference,
    VQAScore,
    accuracies_in_forms,
    clean_whitespace,
    digits_and_articles,
    score_references,
    strip_punctuation,
)

# VizWiz's scorer took vqaEval.py's contraction table before GT-Vision-Lab/VQA changed its apostrophes to ASCII
# (commit 458a8b2): there most entries use U+2019, so "dont" becomes "don’t". These entries kept the ASCII one.
ASCII_KEYS = frozenset({"couldn'tve", "hadn'tve"})
ASCII_VALUES = frozenset({"aint", "arent", "cant", "couldve", "couldnt", "weve", "wheres", "whove"})


def curly(text: str) -> str:
    return text.replace("'", "\u2019")


VIZWIZ_CONTRACTIONS = {
    key if key in ASCII_KEYS else curly(key): value if key in ASCII_VALUES else curly(value)
    for key, value in CONTRACTIONS.items()
}


@lru_cache(maxsize=1 << 16)
def vizwiz_form(prediction: str) -> str:
    """The scorer's processing of a prediction (never of a human answer)."""
    return digits_and_articles(strip_punctuation(clean_whitespace(prediction)), VIZWIZ_CONTRACTIONS)


def vizwiz_accuracies(predictions: Sequence[str], answer_lists: Sequence[Sequence[str]]) -> list[float]:
    return accuracies_in_forms(predictions, answer_lists, vizwiz_form, None)


def vizwiz_accuracy(predictions: Mapping[str, str], references: Sequence[VQAReference]) -> VQAScore:
    """Score predictions (image name -> answer, as the model gave it) over `references`, in reference order."""
    return score_references(predictions, references, vizwiz_accuracies)
