"""Ranking metrics: the conformance vectors (scikit-learn ROC AUC, official VisDial NDCG, Winoground) and hand-computed cases."""

from __future__ import annotations

import json
import math

import pytest

from evals.errors import DataError, EvalsError
from metrics.ranking import (
    PairScores,
    accuracy,
    ndcg_sklearn,
    order_by_score,
    percent,
    ranks_from_scores,
    roc_auc,
    top_k_hits,
    visdial_ndcg,
    winoground_outcome,
    winoground_scores,
    yes_probability,
)

LOG2_3 = math.log2(3)


def load(conformance, name):
    return json.loads((conformance / "ranking" / name).read_text())


# ---------------------------------------------------------------- conformance

def test_visdial_ndcg_conformance(conformance):
    data = load(conformance, "visdial_ndcg.json")
    ranks = [ranks_from_scores(row["scores"]) for row in data["rows"]]
    overall, per_row = visdial_ndcg(ranks, [row["relevance"] for row in data["rows"]])
    # The reference computes in float32: its README asks for 1e-5 on the 0-1 scale.
    assert abs(overall / 100 - data["expected_ndcg"]) < 1e-5
    assert len(per_row) == len(data["expected_per_row"]) == 300
    assert max(abs(ours / 100 - theirs) for ours, theirs in zip(per_row, data["expected_per_row"])) < 1e-5
    assert f"{overall:.2f}" == f"{data['expected_ndcg'] * 100:.2f}" == "21.65"


def test_sklearn_variant_is_higher_on_the_conformance_rows(conformance):
    data = load(conformance, "visdial_ndcg.json")
    ranks = [ranks_from_scores(row["scores"]) for row in data["rows"]]
    relevance = [row["relevance"] for row in data["rows"]]
    official, _ = visdial_ndcg(ranks, relevance)
    full_list, per_row = ndcg_sklearn(ranks, relevance)
    assert full_list > official + 10
    assert len(per_row) == 300 and all(0 <= v <= 100 for v in per_row)


def test_roc_auc_conformance(conformance):
    data = load(conformance, "roc_auc.json")
    assert roc_auc(data["labels"], data["probabilities"]) == data["expected_roc_auc"] * 100


def test_winoground_conformance(conformance):
    data = load(conformance, "winoground.json")
    pairs = [PairScores(row["c0_i0"], row["c0_i1"], row["c1_i0"], row["c1_i1"]) for row in data["rows"]]
    for pair, row in zip(pairs, data["rows"]):
        assert winoground_outcome(pair) == {"text": row["text"], "image": row["image"], "group": row["group"]}, row["id"]
    expected = data["expected"]
    assert winoground_scores(pairs) == {
        "text": expected["text_score"] * 100, "image": expected["image_score"] * 100, "group": expected["group_score"] * 100,
    }
    assert winoground_scores(pairs) == {"text": 20.75, "image": 24.5, "group": 15.75}


# ---------------------------------------------------------------- hand-computed

def test_accuracy_and_top_k():
    assert accuracy(["a", "b", "c"], ["a", "x", "c"]) == 200 / 3
    assert accuracy(["cat"] * 83 + ["dog"] * 317, ["cat"] * 400) == 20.75  # exact, not 20.749999999999996
    assert top_k_hits([["a", "b", "c"], ["x", "y", "z"]], ["c", "y"], 2) == [False, True]
    assert top_k_hits([["a", "b", "c"], ["x", "y", "z"]], ["c", "y"], 3) == [True, True]
    with pytest.raises(DataError, match="^1 predictions for 2 labels"):
        accuracy(["a"], ["a", "b"])
    with pytest.raises(DataError, match="^1 rankings for 2 labels"):
        top_k_hits([["a"]], ["a", "b"], 1)


def test_ties_go_to_the_lower_index():
    assert order_by_score([0.1, 0.5, 0.5, -1.0]) == [1, 2, 0, 3]
    assert ranks_from_scores([0.1, 0.5, 0.5, -1.0]) == [3, 1, 2, 4]
    assert ranks_from_scores([-3.0, -1.0, -2.0]) == [3, 1, 2]
    with pytest.raises(DataError, match=r"^a candidate score is NaN \(model returned non-finite log-likelihoods\)$"):
        order_by_score([0.0, float("nan")])
    with pytest.raises(DataError, match="candidate score is NaN"):
        ranks_from_scores([float("nan"), -1.0])
    assert order_by_score([float("-inf"), -2.0]) == [1, 0]  # -inf (an fp16 underflow) still orders: only NaN cannot


def test_input_errors_are_one_line_evals_errors():
    """The CLI prints an EvalsError as one line; a plain ValueError would be a traceback."""
    assert percent(83, 400) == 20.75
    with pytest.raises(DataError, match=r"^no examples to score") as caught:
        percent(0, 0)
    assert isinstance(caught.value, EvalsError) and "\n" not in str(caught.value)
    with pytest.raises(DataError, match="no examples to score"):
        winoground_scores([])
    with pytest.raises(DataError, match=r"^2 rankings for 1 relevance rows"):
        visdial_ndcg([[1, 2], [2, 1]], [[1.0, 0.0]])
    with pytest.raises(DataError, match=r"^ranking row 1: the ranks are not a permutation of 1..2"):
        ndcg_sklearn([[1, 2], [2, 3]], [[1.0, 0.0], [0.0, 1.0]])


def test_nan_scores_are_rejected_not_silently_scored():
    nan = float("nan")
    with pytest.raises(DataError, match=r"^the score of 'yes' or 'no' is NaN \(model returned"):
        yes_probability(nan, -1.0)  # would otherwise give P(yes) NaN and the hard label 0
    with pytest.raises(DataError, match="^a probability is NaN"):
        roc_auc([0, 1], [0.2, nan])
    with pytest.raises(DataError, match="^a caption-image score is NaN"):
        winoground_outcome(PairScores(c0_i0=nan, c0_i1=0.0, c1_i0=0.0, c1_i1=1.0))  # NaN compares false: counted wrong


def test_yes_probability_is_a_stable_softmax():
    assert yes_probability(0.0, 0.0) == 0.5
    assert yes_probability(math.log(3), 0.0) == pytest.approx(0.75, abs=1e-15)
    assert yes_probability(-5.0, -5.0 + math.log(3)) == pytest.approx(0.25, abs=1e-15)
    assert yes_probability(1000.0, 0.0) == 1.0 and yes_probability(0.0, 1000.0) == 0.0  # no overflow
    assert yes_probability(-2.5, -7.0) + yes_probability(-7.0, -2.5) == pytest.approx(1.0, abs=1e-15)


def test_roc_auc_by_hand():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 100.0
    # positives 0.3 and 0.8 against negatives 0.1 and 0.35: 3 of 4 pairs ordered
    assert roc_auc([0, 1, 0, 1], [0.1, 0.3, 0.35, 0.8]) == 75.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 50.0  # a tie counts half
    with pytest.raises(DataError, match="both classes"):
        roc_auc([1, 1], [0.2, 0.9])


def test_visdial_ndcg_by_hand():
    # option 1 ranked first, option 0 second; two relevant options, so k = 2
    overall, per_row = visdial_ndcg([[2, 1, 3, 4]], [[1.0, 0.5, 0.0, 0.0]])
    expected = 100 * (0.5 + 1 / LOG2_3) / (1 + 0.5 / LOG2_3)
    assert per_row == [pytest.approx(expected, abs=1e-12)] and overall == pytest.approx(expected, abs=1e-12)
    perfect, _ = visdial_ndcg([[1, 2, 3, 4], [4, 3, 2, 1]], [[0.9, 0.3, 0.0, 0.0], [0.0, 0.0, 0.2, 1.0]])
    assert perfect == pytest.approx(100.0, abs=1e-12)


def test_ndcg_cut_at_k_against_the_full_list():
    # relevant options 0 and 3, ranked 1st and 4th: the official NDCG@2 sees only the first
    ranks, relevance = [[1, 2, 3, 4]], [[1.0, 0.0, 0.0, 0.5]]
    ideal = 1 + 0.5 / LOG2_3
    assert visdial_ndcg(ranks, relevance)[0] == pytest.approx(100 / ideal, abs=1e-12)
    assert ndcg_sklearn(ranks, relevance)[0] == pytest.approx(100 * (1 + 0.5 / math.log2(5)) / ideal, abs=1e-12)


def test_ndcg_rejects_bad_rows():
    with pytest.raises(DataError, match="ranking row 0: the ranks are not a permutation of 1..3"):
        visdial_ndcg([[1, 1, 2]], [[1.0, 0.0, 0.0]])
    with pytest.raises(DataError, match="relevance > 0"):
        visdial_ndcg([[1, 2, 3]], [[0.0, 0.0, 0.0]])


def test_winoground_is_strict_and_not_swapped():
    # own caption beats the other caption for both images, but caption 0 prefers image 1
    text_only = PairScores(c0_i0=2.0, c0_i1=3.0, c1_i0=0.0, c1_i1=4.0)
    assert winoground_outcome(text_only) == {"text": True, "image": False, "group": False}
    tied = PairScores(c0_i0=1.0, c0_i1=1.0, c1_i0=0.0, c1_i1=2.0)
    assert winoground_outcome(tied) == {"text": True, "image": False, "group": False}
    perfect = PairScores(c0_i0=5.0, c0_i1=1.0, c1_i0=1.0, c1_i1=5.0)
    wrong = PairScores(c0_i0=0.0, c0_i1=0.0, c1_i0=0.0, c1_i1=0.0)
    assert winoground_scores([perfect, text_only, wrong, wrong]) == {"text": 50.0, "image": 25.0, "group": 25.0}
