"""METEOR 1.5's corpus score from its per-image statistics, in Python, so a bootstrap can recompute it on redrawn images.

Denkowski & Lavie 2014, "Meteor Universal: Language Specific Translation Evaluation for Any Target Language" (WMT).
The jar (pycocoevalcap's meteor-1.5.jar, run with `-l en -norm`) answers a `SCORE` line with one image's statistics
and an `EVAL` line with the corpus score of the statistics summed over images (edu.cmu.meteor.scorer.MeteorStats
.addStats, then MeteorScorer.computeMetrics). Both steps are redone here with the jar's arithmetic, in its order,
on numpy float64 (whose 0/0 and x/0 give NaN and inf as Java's doubles do), so the score equals the jar's EVAL
answer on any multiset of images, repeats included; the jar itself is called once per image per cell, never per
resample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evals.errors import EvalsError

STAGES = 4  # exact, stem, synonym, paraphrase: the modules of -l en
# A statistics line (MeteorStats.toString): test length, reference length, test and reference function words, then
# per stage (test content, reference content, test function, reference function) matches, then chunks and the test
# and reference word matches.
LENGTHS = slice(0, 4)
STAGE_MATCHES = slice(4, 4 + 4 * STAGES)
CHUNKS, TEST_WORD_MATCHES, REFERENCE_WORD_MATCHES = 4 + 4 * STAGES, 5 + 4 * STAGES, 6 + 4 * STAGES
STATS_LENGTH = 7 + 4 * STAGES


@dataclass(frozen=True)
class MeteorParameters:
    """alpha (precision vs recall), beta and gamma (fragmentation penalty's shape and weight), delta (content vs
    function words) and one weight per stage: the jar's ranking-task defaults for English (Constants.PARAM_RANK,
    WEIGHT_RANK), which `-l en -norm` selects; its banner prints them ("Parameters: 0.85 0.2 0.6 0.75", "Weights:
    1.0 0.6 0.8 0.6")."""

    alpha: float = 0.85
    beta: float = 0.2
    gamma: float = 0.6
    delta: float = 0.75
    weights: tuple[float, ...] = (1.0, 0.6, 0.8, 0.6)


ENGLISH = MeteorParameters()


def parse_stats(line: str) -> tuple[float, ...]:
    """One image's statistics from the jar's SCORE answer (space-separated doubles such as "7.0")."""
    try:
        values = tuple(float(word) for word in line.split())
    except ValueError:
        values = ()
    if len(values) != STATS_LENGTH:
        raise EvalsError(f"METEOR (java, meteor-1.5.jar) answered {line[:80]!r} to SCORE, not {STATS_LENGTH} numbers")
    return values


def summable(stats: Sequence[Sequence[float]]) -> np.ndarray:
    """Images' statistics as rows whose plain sum is the jar's aggregate: addStats leaves out the chunk of an image
    whose words all matched in one chunk (a perfect match adds no fragmentation), so that row's chunks become 0."""
    table = np.array(stats, dtype=np.float64).reshape(-1, STATS_LENGTH)
    table[perfect_single_chunk(table), CHUNKS] = 0.0
    return table


def perfect_single_chunk(stats: np.ndarray) -> np.ndarray:
    """MeteorStats' test for "nothing to penalise": every test and reference word matched, in one chunk."""
    test_matches, reference_matches = stage_totals(stats)
    return (test_matches == stats[..., 0]) & (reference_matches == stats[..., 1]) & (stats[..., CHUNKS] == 1.0)


def stage_totals(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Test and reference matches over all stages and both word classes (integral counts: any order is exact)."""
    stages = stats[..., STAGE_MATCHES]
    return stages[..., 0::2].sum(axis=-1), stages[..., 1::2].sum(axis=-1)


def meteor_from_totals(totals: np.ndarray, parameters: MeteorParameters = ENGLISH) -> np.ndarray | float:
    """MeteorScorer.computeMetrics on summed statistics (`summable` rows summed; any leading axes are resamples):
    the score on the jar's 0-1 scale, operation for operation in its order so that the last bit agrees."""
    stats = np.asarray(totals, dtype=np.float64)
    delta = parameters.delta
    with np.errstate(divide="ignore", invalid="ignore"):
        test_length = delta * (stats[..., 0] - stats[..., 2]) + (1.0 - delta) * stats[..., 2]
        reference_length = delta * (stats[..., 1] - stats[..., 3]) + (1.0 - delta) * stats[..., 3]
        test_matches, reference_matches = weighted_matches(stats, parameters)
        precision, recall = test_matches / test_length, reference_matches / reference_length
        f_mean = 1.0 / ((1.0 - parameters.alpha) / precision + parameters.alpha / recall)
        average_matches = (stats[..., TEST_WORD_MATCHES] + stats[..., REFERENCE_WORD_MATCHES]) / 2.0
        fragmentation = np.where(perfect_single_chunk(stats), 0.0, stats[..., CHUNKS] / average_matches)
        score = f_mean * (1.0 - parameters.gamma * libm_power(fragmentation, parameters.beta))
    # No match at all makes precision 0 and the fragmentation 0/0: NaN, which the jar reports as 0.
    score = np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))
    return float(score) if score.ndim == 0 else score


def libm_power(base: np.ndarray, exponent: float) -> np.ndarray:
    """`base ** exponent` by the C library's pow, as Java's Math.pow rounds it: numpy's vectorised power can land one
    ulp away, which would move the score's last printed digit."""
    import math

    flat = [math.pow(value, exponent) for value in np.ravel(base)]
    return np.reshape(np.array(flat, dtype=np.float64), np.shape(base))


def weighted_matches(stats: np.ndarray, parameters: MeteorParameters) -> tuple[np.ndarray, np.ndarray]:
    """Test and reference matches weighted by stage and by delta (content) or 1 - delta (function words), summed
    as the jar sums them: all stages' content words first, then all stages' function words."""
    delta = parameters.delta
    test, reference = np.zeros(stats.shape[:-1]), np.zeros(stats.shape[:-1])
    for word_class, factor in ((0, delta), (2, 1.0 - delta)):
        for stage, weight in enumerate(parameters.weights):
            column = 4 + 4 * stage + word_class
            test = test + stats[..., column] * weight * factor
            reference = reference + stats[..., column + 1] * weight * factor
    return test, reference


def corpus_meteor(stats: Sequence[Sequence[float]], parameters: MeteorParameters = ENGLISH) -> float:
    """The jar's EVAL answer for these images' statistics (0-1), repeats counted as often as they appear."""
    return meteor_from_totals(summable(stats).sum(axis=0), parameters)
