"""Metrics of ranked (closed-ended) tasks: accuracy, ROC AUC, VisDial NDCG and Winoground, as the benchmarks' scorers define them.

Each is a pure function on the 0-100 scale; input it cannot score (no examples, a NaN score, malformed
rankings) raises DataError, one line the CLI prints. The tasks that use them: ImageNet, RenderedSST2 and
ScienceQA (accuracy), Hateful Memes (ROC AUC, Kiela et al. 2020, arXiv 2005.04790), VisDial v1.0
(NDCG over the dense annotations, Das et al. 2017, arXiv 1611.08669) and Winoground (Thrush et al.
2022, arXiv 2204.03162).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from evals.errors import DataError

# What a NaN score means where it comes from a run: a half-precision model can return non-finite log-likelihoods.
NAN_SCORE = "(model returned non-finite log-likelihoods)"


def reject_nan(values: Sequence[float], what: str) -> None:
    """DataError when a value is NaN: it compares false with everything, so a ranking or threshold would be arbitrary."""
    if any(math.isnan(v) for v in values):
        raise DataError(f"{what} is NaN {NAN_SCORE}")


def percent(hits: int, total: int) -> float:
    """`hits / total` on 0-100, multiplied first so that e.g. 83 of 400 is exactly 20.75."""
    if total == 0:
        raise DataError(f"no examples to score: a percentage of 0 examples ({hits} hits) is undefined")
    return 100 * hits / total


def accuracy(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Share of exact matches, 0-100 (classification: the argmax candidate against the label)."""
    if len(predicted) != len(gold):
        raise DataError(f"{len(predicted)} predictions for {len(gold)} labels: accuracy needs one per label")
    return percent(sum(p == g for p, g in zip(predicted, gold)), len(gold))


def top_k_hits(ranked: Sequence[Sequence[str]], gold: Sequence[str], k: int) -> list[bool]:
    """For each example, whether its label is among the first k of its ranked candidates (ImageNet top-5)."""
    if len(ranked) != len(gold):
        raise DataError(f"{len(ranked)} rankings for {len(gold)} labels: top-k needs one per label")
    return [label in list(candidates)[:k] for candidates, label in zip(ranked, gold)]


def order_by_score(scores: Sequence[float]) -> list[int]:
    """Candidate indices, best (highest) score first; a tie goes to the lower index, so the order never
    depends on the sort algorithm."""
    reject_nan(scores, "a candidate score")
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def ranks_from_scores(scores: Sequence[float]) -> list[int]:
    """VisDial's ranks: for each option its place 1..N in the ranking, 1 = best (ties as `order_by_score`)."""
    ranks = [0] * len(scores)
    for place, index in enumerate(order_by_score(scores), start=1):
        ranks[index] = place
    return ranks


def yes_probability(yes_score: float, no_score: float) -> float:
    """P("yes") from the two answers' log-likelihoods: the softmax over the pair, written so that
    neither exp overflows (Hateful Memes scores this probability by ROC AUC)."""
    reject_nan((yes_score, no_score), "the score of 'yes' or 'no'")
    if yes_score >= no_score:
        return 1.0 / (1.0 + math.exp(no_score - yes_score))
    odds = math.exp(yes_score - no_score)
    return odds / (1.0 + odds)


def roc_auc(labels: Sequence[int], probabilities: Sequence[float]) -> float:
    """Area under the ROC curve, 0-100, by scikit-learn (ties between probabilities count half)."""
    from sklearn.metrics import roc_auc_score  # sklearn is slow to import; only this metric needs it

    if len(set(labels)) != 2:
        raise DataError(f"ROC AUC needs both classes among the labels, got {sorted(set(labels))}")
    reject_nan(probabilities, "a probability")
    if not all(0.0 <= p <= 1.0 for p in probabilities):  # Infinity is no probability either
        raise DataError("a probability is outside [0, 1]: ROC AUC ranks probabilities")
    return 100 * float(roc_auc_score(list(labels), list(probabilities)))


def check_ranking_rows(ranks: Sequence[Sequence[int]], relevance: Sequence[Sequence[float]]) -> None:
    """One ranking per relevance row, each a permutation of 1..N for its N options."""
    if len(ranks) != len(relevance):
        raise DataError(f"{len(ranks)} rankings for {len(relevance)} relevance rows: NDCG needs one ranking per row")
    for row, (r, rel) in enumerate(zip(ranks, relevance)):
        if not all(type(place) is int for place in r):  # a string or None would not even sort beside the integers
            raise DataError(f"ranking row {row}: a rank is not an integer")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in rel):
            raise DataError(f"relevance row {row}: a relevance is not a finite number (NDCG would be undefined)")
        if sorted(r) != list(range(1, len(rel) + 1)):
            raise DataError(f"ranking row {row}: the ranks are not a permutation of 1..{len(rel)} (one place per option)")


def ndcg_row(ranks: Sequence[int], relevance: Sequence[float]) -> float:
    """Official VisDial NDCG@k of one round, 0-1: k = number of options with relevance > 0, gain =
    relevance, discount log2(place + 1); the ideal ranking sorts the relevance."""
    k = sum(r > 0 for r in relevance)
    if k == 0:
        raise DataError("no option has relevance > 0: NDCG is undefined")
    by_rank = sorted(range(len(ranks)), key=lambda i: ranks[i])
    gained = sum(relevance[option] / math.log2(place + 1) for place, option in enumerate(by_rank[:k], start=1))
    ideal = sum(rel / math.log2(place + 1) for place, rel in enumerate(sorted(relevance, reverse=True)[:k], start=1))
    return gained / ideal


def visdial_ndcg(ranks: Sequence[Sequence[int]], relevance: Sequence[Sequence[float]]) -> tuple[float, list[float]]:
    """The official VisDial NDCG (0-100) averaged over rounds, and each round's.

    `ranks[i][j]` is option j's place (1 = best) in round i, `relevance[i][j]` its dense relevance.
    Cutting at k = the number of relevant options is what the challenge reports; m4's full-list
    variant is `ndcg_sklearn`.
    """
    check_ranking_rows(ranks, relevance)
    per_row = [100 * ndcg_row(r, rel) for r, rel in zip(ranks, relevance)]
    return sum(per_row) / len(per_row), per_row


def ndcg_sklearn(ranks: Sequence[Sequence[int]], relevance: Sequence[Sequence[float]]) -> tuple[float, list[float]]:
    """m4's VisDial variant: scikit-learn's `ndcg_score` over all options (no cut at k), 0-100.

    Higher than the official number, because the irrelevant tail counts too. Same arguments as
    `visdial_ndcg`; the ranking is given to scikit-learn as the score -place.
    """
    from sklearn.metrics import ndcg_score  # slow to import; only this variant needs it

    check_ranking_rows(ranks, relevance)
    per_row = [100 * float(ndcg_score([list(rel)], [[-place for place in r]])) for r, rel in zip(ranks, relevance)]
    return sum(per_row) / len(per_row), per_row


@dataclass(frozen=True)
class PairScores:
    """Winoground: the model's score s(caption_i, image_j) for the four caption-image pairs."""

    c0_i0: float
    c0_i1: float
    c1_i0: float
    c1_i1: float


def winoground_outcome(p: PairScores) -> dict[str, bool]:
    """Winoground's three tests, strict (a tie is wrong).

    text: for each image, its own caption scores higher than the other caption;
    image: for each caption, its own image scores higher than the other image (m4 swapped the two);
    group: both.
    """
    reject_nan((p.c0_i0, p.c0_i1, p.c1_i0, p.c1_i1), "a caption-image score")
    text = p.c0_i0 > p.c1_i0 and p.c1_i1 > p.c0_i1
    image = p.c0_i0 > p.c0_i1 and p.c1_i1 > p.c1_i0
    return {"text": text, "image": image, "group": text and image}


def winoground_scores(pairs: Sequence[PairScores]) -> dict[str, float]:
    """Text, image and group scores (0-100) over the examples."""
    outcomes = [winoground_outcome(p) for p in pairs]
    return {key: percent(sum(o[key] for o in outcomes), len(outcomes)) for key in ("text", "image", "group")}
