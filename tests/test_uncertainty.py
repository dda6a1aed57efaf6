"""Bootstrap intervals, variance split, paired tests and Holm: against scipy, closed forms and hand-computed cases."""

import math

import numpy as np
import pytest

from evals.errors import DataError
from metrics import uncertainty
from metrics.uncertainty import (
    bootstrap_mean,
    bootstrap_statistic,
    flips,
    holm,
    mcnemar_p,
    paired_difference,
    paired_statistic,
    units_of,
    variance_split,
)


def binary_scores(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    return (rng.random(n) < p) * 100.0


def clustered_scores(rng: np.random.Generator, images: int, per_image: int) -> tuple[np.ndarray, list[int]]:
    """Questions of one image share most of their score (an image the model gets, or not)."""
    image_effect = np.repeat(rng.normal(0, 20, images), per_image)
    return 50 + image_effect + rng.normal(0, 5, images * per_image), [q // per_image for q in range(images * per_image)]


# ---------------------------------------------------------------- McNemar

def exact_sign_test(a_only: int, b_only: int) -> float:
    """From the definition: twice the smaller binomial tail of the discordant pairs, at most 1."""
    n, k = a_only + b_only, min(a_only, b_only)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def test_mcnemar_matches_a_hand_computed_case():
    # 2 discordant pairs favour A, 8 favour B: p = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 112 / 1024
    assert mcnemar_p(2, 8) == pytest.approx(112 / 1024, abs=1e-15)
    assert mcnemar_p(8, 2) == pytest.approx(112 / 1024, abs=1e-15)
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(5, 5) == 1.0


@pytest.mark.parametrize("a_only, b_only", [(0, 6), (3, 17), (40, 61), (120, 80)])
def test_mcnemar_matches_the_binomial_definition(a_only, b_only):
    assert mcnemar_p(a_only, b_only) == pytest.approx(exact_sign_test(a_only, b_only), rel=1e-10)


def test_mcnemar_matches_statsmodels_when_installed():
    contingency = pytest.importorskip("statsmodels.stats.contingency_tables")
    table = [[30, 3], [17, 50]]  # both right 30, A only 3, B only 17, both wrong 50
    assert mcnemar_p(3, 17) == pytest.approx(contingency.mcnemar(table, exact=True).pvalue, rel=1e-10)


def test_paired_difference_of_0_1_scores_is_mcnemar_on_the_discordant_queries():
    a = np.array([100] * 30 + [100] * 2 + [0] * 8 + [0] * 60, dtype=float)
    b = np.array([100] * 30 + [0] * 2 + [100] * 8 + [0] * 60, dtype=float)
    result = paired_difference(a, b, [f"q{i}" for i in range(100)])
    assert (result.test, result.a_only, result.b_only) == ("mcnemar", 2, 8)
    assert result.p_value == pytest.approx(112 / 1024)
    assert result.difference == pytest.approx(6.0)  # (8 - 2) of 100 queries, x100
    assert result.interval.low < 6.0 < result.interval.high


def test_flips_name_the_discordant_queries_and_groups_turn_mcnemar_into_a_sign_flip_by_group():
    a = [100.0, 0.0, 100.0, 0.0, 100.0, 0.0]
    b = [100.0, 100.0, 0.0, 100.0, 100.0, 0.0]
    ids = ["q5", "q3", "q1", "q2", "q4", "q0"]
    assert flips(a, b, ids) == (["q1"], ["q2", "q3"])
    by_image = paired_difference(a, b, ids, groups=["i1", "i1", "i2", "i2", "i3", "i3"], resamples=200)
    assert (by_image.test, by_image.a_only, by_image.b_only) == ("sign-flip", 1, 2)  # McNemar assumes independent queries


def test_paired_test_is_far_more_sensitive_than_an_unpaired_one_on_paired_data():
    """Two runs that agree on most queries: McNemar sees the 14 vs 1 flips that an unpaired z-test drowns."""
    rng = np.random.default_rng(3)
    a = binary_scores(rng, 400, 0.6)
    b = a.copy()
    right_in_a, wrong_in_a = np.flatnonzero(a == 100), np.flatnonzero(a == 0)
    b[wrong_in_a[:14]], b[right_in_a[:1]] = 100.0, 0.0
    pa, pb = a.mean() / 100, b.mean() / 100
    pooled = (pa + pb) / 2
    z = (pb - pa) / math.sqrt(2 * pooled * (1 - pooled) / 400)
    unpaired_p = math.erfc(abs(z) / math.sqrt(2))
    paired_p = paired_difference(a, b, range(400)).p_value
    assert unpaired_p > 0.3  # a 3.25-point gain looks like noise to a test that ignores the pairing
    assert paired_p == pytest.approx(2 * (1 + 15) / 2 ** 15)  # 14 vs 1 of 15 discordant: 0.00098


# ---------------------------------------------------------------- the percentile bootstrap

def test_percentile_bootstrap_of_a_mean_matches_scipy_within_monte_carlo_error():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, 10.0, 200)  # skewed, so the percentile interval is not symmetric
    resamples = 20_000
    ours = bootstrap_mean(values, range(200), resamples=resamples, seed=1)
    theirs = bootstrap(values[None], np.mean, method="percentile", n_resamples=resamples, random_state=2).confidence_interval
    standard_error = values.std(ddof=1) / math.sqrt(200)
    # Each endpoint, a 2.5% quantile of 20,000 draws, has MC sd of about 0.019 standard errors; allow > 5 sd of the gap.
    assert ours.low == pytest.approx(theirs.low, abs=0.15 * standard_error)
    assert ours.high == pytest.approx(theirs.high, abs=0.15 * standard_error)
    assert ours.estimate == pytest.approx(values.mean())


def test_the_95_percent_interval_covers_the_true_binomial_mean_95_percent_of_the_time():
    rng = np.random.default_rng(2024)
    data_sets, n, p = 1000, 100, 0.3
    data = (rng.random((data_sets, n)) < p) * 100.0
    covered = sum(interval.low <= 100 * p <= interval.high
                  for interval in (bootstrap_mean(row, range(n), seed=seed) for seed, row in enumerate(data)))
    monte_carlo_sd = math.sqrt(0.95 * 0.05 / data_sets)  # 0.0069
    assert abs(covered / data_sets - 0.95) < 3 * monte_carlo_sd


# ---------------------------------------------------------------- determinism

def test_same_seed_same_interval_and_another_seed_another():
    rng = np.random.default_rng(5)
    values, ids = rng.normal(50, 10, 500), [f"q{i}" for i in range(500)]
    assert bootstrap_mean(values, ids, seed=7) == bootstrap_mean(values, ids, seed=7)
    assert bootstrap_mean(values, ids, seed=7) != bootstrap_mean(values, ids, seed=8)


@pytest.mark.parametrize("grouped", [False, True])
def test_permuting_the_queries_with_their_ids_gives_the_identical_interval(grouped):
    rng = np.random.default_rng(6)
    values, groups = clustered_scores(rng, 60, 4)
    ids = [f"q{i}" for i in range(len(values))]
    shuffled = rng.permutation(len(values))
    kwargs = {"resamples": 300, "seed": 11}
    first = bootstrap_mean(values, ids, groups=groups if grouped else None, **kwargs)
    second = bootstrap_mean(values[shuffled], [ids[i] for i in shuffled],
                            groups=[groups[i] for i in shuffled] if grouped else None, **kwargs)
    assert first == second  # exactly: the resample is drawn over sorted ids, summed in that order


def test_the_chunking_of_resamples_does_not_change_them(monkeypatch):
    """Resample b is found by jumping the stream, so any chunk size (or process computing a share) draws it alike."""
    rng = np.random.default_rng(8)
    values, groups = clustered_scores(rng, 50, 3)
    whole = bootstrap_mean(values, range(150), groups=groups, resamples=250, seed=4)
    monkeypatch.setattr(uncertainty, "CHUNK_ELEMENTS", 7 * 50)  # 7 resamples per chunk, the last chunk short
    assert bootstrap_mean(values, range(150), groups=groups, resamples=250, seed=4) == whole


def test_the_callable_path_draws_the_same_resamples_as_the_vectorised_mean():
    rng = np.random.default_rng(9)
    values, groups = clustered_scores(rng, 40, 5)
    for by_group in (None, groups):
        vectorised = bootstrap_mean(values, range(200), groups=by_group, resamples=400, seed=3)
        looped = bootstrap_statistic(lambda positions: float(values[positions].mean()), range(200), groups=by_group,
                                     resamples=400, seed=3)
        assert looped.low == pytest.approx(vectorised.low, abs=1e-9)
        assert looped.high == pytest.approx(vectorised.high, abs=1e-9)
        assert (looped.unit, looped.groups) == (vectorised.unit, vectorised.groups)


def test_a_corpus_statistic_sees_the_same_queries_whatever_the_input_order():
    ids = [f"q{i}" for i in range(30)]
    seen = []
    bootstrap_statistic(lambda positions: seen.append([ids[p] for p in positions]) or 0.0, ids, resamples=5, seed=2)
    shuffled = list(reversed(ids))
    seen_shuffled = []
    bootstrap_statistic(lambda positions: seen_shuffled.append([shuffled[p] for p in positions]) or 0.0, shuffled,
                        resamples=5, seed=2)
    assert seen == seen_shuffled
    assert sorted(seen[0]) == sorted(ids)  # the first call is the estimate, on every query once


def test_a_corpus_metric_is_recomputed_on_each_resample():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(10)
    labels = (rng.random(300) < 0.4).astype(int)
    probabilities = np.clip(0.35 * labels + rng.random(300) * 0.65, 0, 1)
    auc = lambda positions: 100 * roc_auc_score(labels[positions], probabilities[positions])
    interval = bootstrap_statistic(auc, range(300), resamples=200, seed=0)
    assert interval.estimate == pytest.approx(100 * roc_auc_score(labels, probabilities))
    assert interval.low < interval.estimate < interval.high and interval.high - interval.low > 1.0


# ---------------------------------------------------------------- cluster bootstrap

def test_resampling_by_image_is_wider_when_questions_of_an_image_are_correlated():
    rng = np.random.default_rng(12)
    values, images = clustered_scores(rng, 100, 8)
    iid = bootstrap_mean(values, range(800), seed=0)
    clustered = bootstrap_mean(values, range(800), groups=images, seed=0)
    # Design effect 1 + (8 - 1) * rho with rho = 400 / 425: the clustered width should be about 2.7 times the iid one.
    assert (clustered.high - clustered.low) > 2 * (iid.high - iid.low)
    assert (clustered.unit, clustered.groups, iid.unit, iid.groups) == ("group", 100, "query", 800)


def test_resampling_by_group_changes_little_when_groups_are_unrelated_to_scores():
    rng = np.random.default_rng(13)
    values = rng.normal(50, 20, 800)
    iid = bootstrap_mean(values, range(800), seed=0)
    clustered = bootstrap_mean(values, range(800), groups=[q // 8 for q in range(800)], seed=0)
    assert (clustered.high - clustered.low) == pytest.approx(iid.high - iid.low, rel=0.25)


def test_units_keep_each_group_whole_and_in_id_order():
    units = units_of(["b2", "a1", "b1", "a2", "c1"], groups=["img-b", "img-a", "img-b", "img-a", "img-c"])
    assert units.members.tolist() == [1, 3, 2, 0, 4]  # img-a: a1, a2; img-b: b1, b2; img-c: c1
    assert units.sizes.tolist() == [2, 2, 1]
    assert units.positions(np.array([0, 2, 1])).tolist() == [2, 2, 0, 0, 4]


# ---------------------------------------------------------------- sign-flip and paired bootstrap

def test_sign_flip_p_value_matches_the_exact_enumeration_within_monte_carlo_error():
    differences = np.array([3.0, -1.0, 4.0, 1.5, -0.5, 2.0, 6.0, -2.5, 1.0, 3.5])
    signs = np.array([[1 if (mask >> k) & 1 else -1 for k in range(10)] for mask in range(1024)])
    exact = float(np.mean(np.abs(signs @ differences) >= abs(differences.sum()) - 1e-12))
    result = paired_difference(np.zeros(10), differences, range(10), resamples=20_000, seed=1)
    assert result.test == "sign-flip"
    assert result.p_value == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-4)


def test_paired_corpus_comparison_agrees_with_the_per_query_path_for_a_mean():
    rng = np.random.default_rng(14)
    a, b = rng.normal(50, 10, 300), rng.normal(52, 10, 300)
    per_query = paired_difference(a, b, range(300), test="bootstrap", seed=5)
    corpus = paired_statistic(lambda p: float(a[p].mean()), lambda p: float(b[p].mean()), range(300), seed=5)
    assert corpus.difference == pytest.approx(b.mean() - a.mean())
    assert (corpus.interval.low, corpus.interval.high) == pytest.approx((per_query.interval.low, per_query.interval.high), abs=1e-9)
    assert corpus.p_value == per_query.p_value and corpus.test == "bootstrap"


def test_no_difference_is_not_significant_and_a_clear_one_is():
    rng = np.random.default_rng(15)
    a = rng.normal(50, 10, 500)
    same = paired_difference(a, a + rng.normal(0, 1, 500) * 1e-3, range(500))
    better = paired_difference(a, a + 2 + rng.normal(0, 3, 500), range(500))
    assert same.p_value > 0.01 and better.p_value < 0.001 and better.interval.low > 1.0


# ---------------------------------------------------------------- Holm

def test_holm_matches_a_hand_example():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0] and holm([0.2]) == [0.2] and holm([]) == []


# ---------------------------------------------------------------- demonstration vs query variance

def synthetic_row(rng, seeds, queries, seed_sd, query_sd, interaction_sd):
    return (60 + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, query_sd, (1, queries))
            + rng.normal(0, interaction_sd, (seeds, queries)))


def test_variance_split_recovers_known_components():
    split = variance_split(synthetic_row(np.random.default_rng(16), 60, 2000, 2.0, 10.0, 5.0))
    assert split.seed_component == pytest.approx(4.0, rel=0.4)  # 60 seeds: relative sd of a variance ~ sqrt(2/59)
    assert split.query_component == pytest.approx(100.0, rel=0.1)
    assert split.interaction_component == pytest.approx(25.0, rel=0.02)


def test_variance_split_total_is_the_variance_of_the_row_mean():
    """Over many simulated rows, the estimated parts average to the closed form, which the row means' spread matches."""
    rng = np.random.default_rng(17)
    seeds, queries, replicates = 4, 50, 2000
    rows = [synthetic_row(rng, seeds, queries, 1.5, 8.0, 6.0) for _ in range(replicates)]
    splits = [variance_split(row) for row in rows]
    demonstration = 1.5 ** 2 / seeds + 6.0 ** 2 / (seeds * queries)
    query = 8.0 ** 2 / queries
    assert np.mean([s.demonstration_variance for s in splits]) == pytest.approx(demonstration, rel=0.1)
    assert np.mean([s.query_variance for s in splits]) == pytest.approx(query, rel=0.05)
    # The variance of 2,000 row means has relative sd sqrt(2 / 1999), about 3%.
    assert np.var([row.mean() for row in rows], ddof=1) == pytest.approx(demonstration + query, rel=0.12)


def test_zero_shot_rows_have_no_demonstration_variance():
    rng = np.random.default_rng(18)
    row = np.tile(rng.normal(50, 10, 100), (3, 1))  # every seed scores every query alike: no demonstrations to draw
    split = variance_split(row)
    assert split.demonstration_variance == pytest.approx(0.0, abs=1e-12) and split.demonstration_share == pytest.approx(0.0, abs=1e-12)
    assert split.query_variance == pytest.approx(np.var(row[0], ddof=1) / 100)


def test_variance_split_needs_two_seeds_and_two_queries():
    with pytest.raises(DataError, match="at least 2"):
        variance_split([[1.0, 2.0, 3.0]])


# ---------------------------------------------------------------- bad input

def test_bad_input_is_one_clear_error():
    with pytest.raises(DataError, match="duplicate query ids"):
        bootstrap_mean([1.0, 2.0], ["q1", "q1"])
    with pytest.raises(DataError, match="one score per query"):
        bootstrap_mean([1.0, 2.0, 3.0], ["q1", "q2"])
    with pytest.raises(DataError, match="each query needs its group"):
        bootstrap_mean([1.0, 2.0], ["q1", "q2"], groups=["i1"])
    with pytest.raises(DataError, match="0 queries"):
        bootstrap_mean([], [])
    with pytest.raises(DataError, match="not finite"):
        bootstrap_mean([1.0, float("nan")], ["q1", "q2"])
    with pytest.raises(DataError, match="level"):
        bootstrap_mean([1.0, 2.0], ["q1", "q2"], level=95)
    with pytest.raises(DataError, match="two values"):
        paired_difference([0.0, 50.0, 100.0], [0.0, 100.0, 100.0], range(3), test="mcnemar")


def test_interval_record_is_plain_json():
    import json

    record = bootstrap_mean([10.0, 20.0, 30.0], ["a", "b", "c"], resamples=50, seed=3).as_record()
    assert json.loads(json.dumps(record)) == record
    assert {"low", "high", "level", "resamples", "seed", "method", "unit", "groups", "estimate"} == set(record)
    assert (record["resamples"], record["seed"], record["level"], record["method"]) == (50, 3, 0.95, "percentile")


def test_the_benchmark_loop_written_from_the_documented_stream_gives_the_same_numbers():
    """benchmarks/bootstrap.py's plain loop reads PCG64(seed) in order, one resample at a time: equal to the bit."""
    from benchmarks.bootstrap import compare, synthetic_cell

    values, ids, images = synthetic_cell(3000, 600, seed=1)
    for groups in (None, images):
        result = compare(values, ids, groups, resamples=200, seed=9, repeats=1)
        assert result["same_numbers"] and result["max_abs_gap_per_resample"] == 0.0
