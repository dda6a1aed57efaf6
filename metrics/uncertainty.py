"""Uncertainty of scores: bootstrap intervals over queries, demonstration vs query variance, paired tests, Holm.

Pure functions of per-query scores (or of a callable that recomputes a corpus metric), seeded so that the
same inputs give the same numbers in every process. The resampling unit is the query, or a group of queries
that are not independent of each other (the VQA questions about one image): a cluster bootstrap (Davison &
Hinkley 1997, section 3.8) redraws whole groups, so its interval is not too narrow when questions of one image
succeed or fail together.

How each metric family is resampled (the point of `bootstrap_mean` vs `bootstrap_statistic`):
- Mean-decomposable metrics (VQA accuracy, accuracy, ANLS, Winoground's three scores, NDCG averaged over
  rounds): the cell score is the mean of per-query scores, so a resample's score is the mean of the redrawn
  per-query scores; `bootstrap_mean` computes it for all resamples at once.
- Corpus-level metrics (CIDEr-D, whose idf comes from the references of the whole evaluated set; ROC AUC,
  a ranking of all probabilities): the metric is not a mean of per-query numbers, so it is recomputed on each
  resample by `bootstrap_statistic`'s callable, from the redrawn queries' predictions and references. For
  CIDEr-D that means the document frequencies come from the resampled reference set (an image drawn twice
  counts twice), which is what the metric would have said had that set been evaluated; reusing the full set's
  idf would understate the spread.

The random stream: resample b of a cell with m units uses uniforms b*m .. (b+1)*m - 1 of the PCG64 stream
seeded by `seed`; uniform u picks unit floor(u*m) of the units sorted by id (`str` of the id). Any process can
jump to any resample (`PCG64.advance`), so the interval does not depend on the order of the queries, the chunk
size, the batch size or how many processes computed the samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from evals.errors import DataError

RESAMPLES = 1000
LEVEL = 0.95
# Uniforms drawn per chunk of resamples: 2 MB of float64, so the vectorised path stays in cache and in a bounded
# amount of memory whatever the cell size (a VQAv2 val cell is 214,354 queries x 1,000 resamples); a small cell
# gets many resamples per chunk, which is where vectorising over resamples pays.
CHUNK_ELEMENTS = 1 << 18
PERMUTATION_STREAM = 1  # spawn key of the sign-flip test's stream, so it never reuses the bootstrap's draws

Statistic = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval of one score, with what is needed to recompute it exactly.

    `estimate` is the score on all queries; `unit` says what was redrawn ("query" or "group") and `groups`
    how many of them there were.
    """

    estimate: float
    low: float
    high: float
    level: float
    resamples: int
    seed: int
    method: str
    unit: str
    groups: int

    def as_record(self) -> dict:
        """Plain JSON types, for a result record."""
        return asdict(self)


@dataclass(frozen=True)
class Units:
    """The resampling units of a cell, in a canonical order that does not depend on the order of the input.

    `members` lists input positions, unit after unit (units sorted by id, queries in a unit sorted by id);
    unit u owns `members[starts[u]:starts[u] + sizes[u]]`.
    """

    members: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    unit: str

    @property
    def count(self) -> int:
        return len(self.sizes)

    def positions(self, counts: np.ndarray) -> np.ndarray:
        """Input positions of a resample in which unit u was drawn `counts[u]` times (each member repeated)."""
        return np.repeat(self.members, np.repeat(counts, self.sizes))


def id_keys(ids: Sequence, what: str) -> np.ndarray:
    """Ids as strings: 7, np.int64(7) and "7" sort alike in every process."""
    keys = np.array([str(i) for i in ids], dtype=str)
    if keys.size == 0:
        raise DataError(f"no {what} to resample: an interval over 0 queries is undefined")
    return keys


def units_of(ids: Sequence, groups: Sequence | None = None) -> Units:
    """The resampling units: each query alone, or the queries that share a group id (e.g. an image id)."""
    keys = id_keys(ids, "queries")
    _, by_id = np.unique(keys, return_index=True)  # one sort gives both the id order and the duplicate check
    if len(by_id) != len(keys):
        raise DataError("duplicate query ids: a resample must know which query each score belongs to")
    if groups is None:
        return Units(by_id, np.arange(len(keys)), np.ones(len(keys), dtype=np.intp), "query")
    if len(groups) != len(keys):
        raise DataError(f"{len(groups)} group ids for {len(keys)} queries: each query needs its group")
    _, group_of = np.unique(id_keys(groups, "groups")[by_id], return_inverse=True)
    members = by_id[np.argsort(group_of, kind="stable")]  # stable: queries keep their id order inside a group
    sizes = np.bincount(group_of)
    return Units(members, np.concatenate(([0], np.cumsum(sizes)[:-1])), sizes, "group")


def uniforms(seed: int | np.random.SeedSequence, first: int, count: int, units: int) -> np.ndarray:
    """Rows first .. first+count-1 of the stream's uniforms, `units` per row (see the module docstring)."""
    bits = np.random.PCG64(seed)
    bits.advance(first * units)  # one 64-bit output per float64 uniform, so this is an exact jump
    return np.random.Generator(bits).random((count, units))


def draws(seed: int, first: int, count: int, units: int) -> np.ndarray:
    """Unit indices of resamples first .. first+count-1, one row each."""
    scaled = uniforms(seed, first, count, units)
    scaled *= units
    picked = scaled.astype(np.intp)
    np.minimum(picked, units - 1, out=picked)  # u*m can round up to m when m is large
    return picked


def chunks(resamples: int, units: int):
    """(first, count) of the resample chunks: as many resamples per chunk as fit CHUNK_ELEMENTS uniforms."""
    size = max(1, CHUNK_ELEMENTS // units)
    for first in range(0, resamples, size):
        yield first, min(size, resamples - first)


def percentile_interval(estimate: float, stats: np.ndarray, units: Units, level: float, seed: int) -> Interval:
    """The percentile interval (linear interpolation, as `scipy.stats.bootstrap(method="percentile")`)."""
    if not np.all(np.isfinite(stats)):
        bad = int(np.flatnonzero(~np.isfinite(stats))[0])
        raise DataError(f"the statistic of bootstrap resample {bad} is not finite (a degenerate resample?)")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high), level, len(stats), seed, "percentile", units.unit, units.count)


def check_settings(resamples: int, level: float, seed: int) -> None:
    if resamples < 1:
        raise DataError(f"resamples must be at least 1, got {resamples}")
    if not 0 < level < 1:
        raise DataError(f"the interval's level must be between 0 and 1, got {level}")
    if seed < 0:
        raise DataError(f"the bootstrap seed must be a non-negative integer, got {seed}")


def as_scores(values: Sequence[float], count: int, what: str = "scores") -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) != count:
        raise DataError(f"{len(array)} {what} for {count} query ids: one score per query")
    if not np.all(np.isfinite(array)):
        raise DataError(f"a per-query score among the {what} is not finite")
    return array


def mean_resamples(values: np.ndarray, units: Units, resamples: int, seed: int) -> np.ndarray:
    """The mean of every resample, a chunk of resamples at a time.

    A resample's mean is (sum of the drawn units' score sums) / (number of drawn queries): the mean over the
    redrawn queries, which for single-query units is the mean of the drawn scores.
    """
    ordered = values[units.members]
    sums = np.add.reduceat(ordered, units.starts)
    out = np.empty(resamples)
    for first, count in chunks(resamples, units.count):
        picked = draws(seed, first, count, units.count)
        totals = sums[picked].sum(axis=1)
        queries = units.sizes[picked].sum(axis=1) if units.unit == "group" else units.count
        out[first:first + count] = totals / queries
    return out


def bootstrap_mean(values: Sequence[float], ids: Sequence, *, groups: Sequence | None = None, resamples: int = RESAMPLES,
                   level: float = LEVEL, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of a mean-decomposable score (VQA accuracy, accuracy, ANLS: one value per query).

    `ids` name the queries (the resample is drawn over them sorted, so their order in the input does not
    matter); `groups`, one id per query, makes the queries of a group one unit that is redrawn whole.
    """
    check_settings(resamples, level, seed)
    units = units_of(ids, groups)
    scores = as_scores(values, len(units.members))
    return percentile_interval(math.fsum(scores) / len(scores), mean_resamples(scores, units, resamples, seed), units, level, seed)


def statistic_resamples(statistic: Statistic, units: Units, resamples: int, seed: int) -> np.ndarray:
    """`statistic` on every resample, one call each (the same draws as `mean_resamples`)."""
    out = np.empty(resamples)
    for first, count in chunks(resamples, units.count):
        for row, picked in enumerate(draws(seed, first, count, units.count)):
            out[first + row] = statistic(units.positions(np.bincount(picked, minlength=units.count)))
    return out


def bootstrap_statistic(statistic: Statistic, ids: Sequence, *, groups: Sequence | None = None, resamples: int = RESAMPLES,
                        level: float = LEVEL, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of a corpus-level metric (CIDEr-D, ROC AUC, NDCG over a set).

    `statistic(positions)` recomputes the metric (same scale as the cell's score) on the queries at
    `positions`, indices into the caller's arrays in the order of `ids`, with repeats: a query drawn twice
    appears twice, so a metric that looks at the whole set (CIDEr-D's document frequencies, ROC AUC's
    ranking) sees the resampled set. Repeated queries need distinct keys where the metric takes a mapping
    (CIDEr-D: key by draw number, not by image id). The positions come in canonical order (by group, then
    query id), so the same seed gives the same calls whatever the input order. `statistic(all positions)`
    is the estimate.
    """
    check_settings(resamples, level, seed)
    units = units_of(ids, groups)
    estimate = statistic(units.members)
    return percentile_interval(estimate, statistic_resamples(statistic, units, resamples, seed), units, level, seed)


# ---------------------------------------------------------------- demonstration vs query variance over seeds

@dataclass(frozen=True)
class VarianceSplit:
    """Where the uncertainty of a row's seed-mean comes from (all on the squared score scale).

    Components of one score s_ij (seed i, query j): `seed_component` (sigma_a^2, an effect shared by all
    queries of a seed), `query_component` (sigma_b^2, how hard the query is) and `interaction_component`
    (sigma_e^2, the query's own response to the demonstrations it drew). `demonstration_variance` and
    `query_variance` are their shares of the variance of the row's mean; `total` is their sum and
    `sqrt(total)` the row mean's standard error.
    """

    seeds: int
    queries: int
    mean: float
    seed_component: float
    query_component: float
    interaction_component: float
    demonstration_variance: float
    query_variance: float

    @property
    def total(self) -> float:
        return self.demonstration_variance + self.query_variance

    @property
    def demonstration_share(self) -> float:
        """The demonstrations' part of the total (0 when nothing varies)."""
        return self.demonstration_variance / self.total if self.total > 0 else 0.0

    def as_record(self) -> dict:
        return {**asdict(self), "total": self.total, "demonstration_share": self.demonstration_share}


def mean_squares(scores: np.ndarray) -> tuple[float, float, float]:
    """Two-way ANOVA without replication: the mean squares of seeds, queries and the residual."""
    r, n = scores.shape
    grand = scores.mean()
    seed_means = scores.mean(axis=1)
    query_means = scores.mean(axis=0)
    residual = scores - seed_means[:, None] - query_means[None, :] + grand
    ms_seed = n * float(np.sum((seed_means - grand) ** 2)) / (r - 1)
    ms_query = r * float(np.sum((query_means - grand) ** 2)) / (n - 1)
    ms_residual = float(np.sum(residual ** 2)) / ((r - 1) * (n - 1))
    return ms_seed, ms_query, ms_residual


def variance_split(scores: Sequence[Sequence[float]]) -> VarianceSplit:
    """Split the variance of a (task, shots, selection) row's seed-mean into demonstration and query parts.

    `scores[i][j]`: query j's score under seed i, the same queries (matched by id) in every seed.

    Model (two-way crossed random effects, Searle, Casella & McCulloch 1992, ch. 4):
    s_ij = mu + a_i + b_j + e_ij, all effects independent with mean 0; a_i ~ sigma_a^2 (what seed i's
    demonstrations do to every query), b_j ~ sigma_b^2 (query difficulty), e_ij ~ sigma_e^2 (query j's
    response to its own demonstrations under seed i; with random selection seeded per query this is where
    most of the demonstration effect lives). The ANOVA (method of moments) estimators are
    sigma_e^2 = MS_res, sigma_a^2 = (MS_seed - MS_res) / n, sigma_b^2 = (MS_query - MS_res) / r, unbiased
    before each is clipped at 0 (a negative estimate means "no detectable component").

    The row mean over r seeds and n queries has variance sigma_a^2/r + sigma_b^2/n + sigma_e^2/(r n). The
    demonstration part is sigma_a^2/r + sigma_e^2/(r n): it shrinks with more seeds, because for a fixed query
    and fixed demonstrations the model's score is deterministic (greedy or beam decoding, ranking), so any
    change across seeds is the demonstrations'. The query part, sigma_b^2/n, is what more seeds cannot remove:
    the sampling of the evaluation queries from their population.

    Assumptions: queries and seeds are independent draws (cluster queries of one image into one column
    first, averaging them, where they share images), effects are additive (scores near 0 or 100 violate
    this mildly), and the same queries appear in every seed. Needs at least 2 seeds and 2 queries.
    """
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 2 or matrix.shape[1] < 2:
        raise DataError(f"a variance split needs a seeds x queries matrix with at least 2 of each, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise DataError("a per-sample score in the seeds x queries matrix is not finite")
    r, n = matrix.shape
    ms_seed, ms_query, ms_residual = mean_squares(matrix)
    seed_component = max(0.0, (ms_seed - ms_residual) / n)
    query_component = max(0.0, (ms_query - ms_residual) / r)
    return VarianceSplit(
        seeds=r, queries=n, mean=float(matrix.mean()),
        seed_component=seed_component, query_component=query_component, interaction_component=ms_residual,
        demonstration_variance=seed_component / r + ms_residual / (r * n),
        query_variance=query_component / n,
    )


# ---------------------------------------------------------------- paired comparison of two runs

PairedTest = Literal["auto", "mcnemar", "sign-flip", "bootstrap"]


@dataclass(frozen=True)
class PairedComparison:
    """Run B minus run A on the same queries: the difference, its paired-bootstrap interval and a p-value.

    `test` names how the p-value was computed; `a_only` / `b_only` count the discordant queries (right in A
    only, right in B only) where the scores take two values, else they are None.
    """

    difference: float
    interval: Interval
    p_value: float
    test: str
    queries: int
    a_only: int | None = None
    b_only: int | None = None

    def as_record(self) -> dict:
        return {**asdict(self), "interval": self.interval.as_record()}


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact (binomial) McNemar test, two-sided: under "no difference" each discordant pair is equally likely
    to favour either run, so the count favouring B is Binomial(a_only + b_only, 1/2)."""
    from scipy.stats import binomtest  # scipy comes with scikit-learn; imported only where a p-value is asked

    if a_only + b_only == 0:
        return 1.0
    return float(binomtest(b_only, a_only + b_only, 0.5).pvalue)


def two_levels(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether every score of both runs is one of two values (0/1, or 0/100 on this project's scale)."""
    return len(np.unique(np.concatenate([a, b]))) <= 2


def sign_flip_p(differences: np.ndarray, units: Units, permutations: int, seed: int) -> float:
    """Sign-flip permutation test of mean difference 0, by unit: under "no difference" (and symmetric unit
    differences) each unit's summed difference is as likely negated. p = (1 + #{|T*| >= |T|}) / (1 + P)."""
    sums = np.add.reduceat(differences[units.members], units.starts)
    observed = abs(float(sums.sum()))
    tolerance = 1e-9 * max(1.0, float(np.abs(sums).sum()))  # ties of floating sums count as ties
    stream = np.random.SeedSequence(seed, spawn_key=(PERMUTATION_STREAM,))
    extreme = 0
    for first, count in chunks(permutations, units.count):
        signs = np.where(uniforms(stream, first, count, units.count) < 0.5, 1.0, -1.0)
        extreme += int(np.sum(np.abs(signs @ sums) >= observed - tolerance))
    return (1 + extreme) / (1 + permutations)


def bootstrap_p(stats: np.ndarray) -> float:
    """Two-sided paired-bootstrap p-value of "difference 0": twice the smaller tail share of the resampled
    differences on either side of 0 (with the +1 of a permutation p-value), i.e. about the smallest
    1 - level at which the percentile interval excludes 0."""
    below = (1 + int(np.sum(stats <= 0))) / (1 + len(stats))
    above = (1 + int(np.sum(stats >= 0))) / (1 + len(stats))
    return min(1.0, 2 * min(below, above))


def paired_difference(a: Sequence[float], b: Sequence[float], ids: Sequence, *, groups: Sequence | None = None,
                      test: PairedTest = "auto", resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> PairedComparison:
    """Compare two runs' per-query scores of a mean-decomposable metric, matched by query id (B - A).

    The interval is the bootstrap of the per-query differences (paired: a resample redraws queries, each
    with both runs' scores). The p-value: "auto" takes exact McNemar where all scores take two values and
    queries are independent (no `groups`), else the sign-flip permutation test by unit with `resamples`
    permutations; "bootstrap" takes `bootstrap_p` of the resampled differences.
    """
    check_settings(resamples, level, seed)
    units = units_of(ids, groups)
    first = as_scores(a, len(units.members), "scores of run A")
    second = as_scores(b, len(units.members), "scores of run B")
    differences = second - first
    stats = mean_resamples(differences, units, resamples, seed)
    interval = percentile_interval(math.fsum(differences) / len(differences), stats, units, level, seed)
    binary = two_levels(first, second)
    chosen = ("mcnemar" if binary and groups is None else "sign-flip") if test == "auto" else test
    counts: dict = {"a_only": None, "b_only": None}
    if binary:  # with two levels, "higher" means right where the other run is wrong
        counts = {"a_only": int(np.sum(first > second)), "b_only": int(np.sum(second > first))}
    if chosen == "mcnemar":
        if not binary:
            raise DataError("McNemar's test needs scores that take two values (0/1) in both runs")
        p = mcnemar_p(counts["a_only"], counts["b_only"])
    elif chosen == "sign-flip":
        p = sign_flip_p(differences, units, resamples, seed)
    elif chosen == "bootstrap":
        p = bootstrap_p(stats)
    else:
        raise DataError(f"unknown paired test {test!r}: auto, mcnemar, sign-flip or bootstrap")
    return PairedComparison(interval.estimate, interval, p, chosen, len(differences), **counts)


def flips(a: Sequence[float], b: Sequence[float], ids: Sequence) -> tuple[list, list]:
    """The queries that change between two runs (say 0 and k shots): (better in A, better in B), each sorted by id.
    With 0/1 scores these are McNemar's discordant queries."""
    keys = id_keys(ids, "queries")
    first, second = as_scores(a, len(keys), "scores of run A"), as_scores(b, len(keys), "scores of run B")
    order = np.argsort(keys, kind="stable")
    return ([ids[i] for i in order if first[i] > second[i]], [ids[i] for i in order if second[i] > first[i]])


def paired_statistic(score_a: Statistic, score_b: Statistic, ids: Sequence, *, groups: Sequence | None = None,
                     resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> PairedComparison:
    """Compare two runs on a corpus-level metric (CIDEr-D, ROC AUC), matched by query id (B - A).

    `score_a(positions)` and `score_b(positions)` recompute each run's metric on the same resampled queries
    (as `bootstrap_statistic`'s callable), so the difference is paired. The p-value is `bootstrap_p`: a
    permutation test would need the metric on swapped predictions, which a corpus metric's callable may
    not be able to build.
    """
    check_settings(resamples, level, seed)
    units = units_of(ids, groups)
    difference = lambda positions: score_b(positions) - score_a(positions)
    stats = statistic_resamples(difference, units, resamples, seed)
    interval = percentile_interval(difference(units.members), stats, units, level, seed)
    return PairedComparison(interval.estimate, interval, bootstrap_p(stats), "bootstrap", len(units.members))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order: the k-th smallest of m is multiplied by
    m - k + 1, made non-decreasing, capped at 1. Rejecting where adjusted p <= alpha bounds the chance of any
    false rejection among the m comparisons by alpha."""
    p = np.asarray(p_values, dtype=np.float64)
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise DataError("a p-value to correct is not between 0 and 1")
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted.tolist()
