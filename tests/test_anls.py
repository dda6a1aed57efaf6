"""ANLS against hand-worked values from the official RRC scorer's rules (the InfographicVQA / DocVQA
`evaluate_method`, as distributed by docvqa.org): edit distances, raw-length division, Unicode case mapping, the
0.5 threshold, several golds."""

from __future__ import annotations

import pytest

from evals.records import Example
from metrics.anls import anls, levenshtein, normalize, normalized_distance
from tasks.docvqa import score_anls


def test_levenshtein_counts_single_character_edits():
    assert levenshtein("kitten", "sitting") == 3  # k->s, e->i, insert g
    assert levenshtein("", "abc") == 3 and levenshtein("same", "same") == 0


def test_distance_is_taken_on_stripped_lowercased_collapsed_strings():
    """Official rule: `' '.join(answer.strip().lower().split())` for the gold and the prediction alike."""
    assert normalize("  New\t  York \n") == "new york"
    assert anls("  Hello ", ["hello"]) == 1.0  # distance 0, whatever the length
    assert anls("new  york", ["new york"]) == 1.0
    assert anls("New\tYork\n", ["new york"]) == 1.0
    assert anls("", ["  "]) == 1.0  # distance 0 over the raw length 2
    assert anls("", [""]) == 1.0  # official: NL is 0.0 when the length is 0


def test_helo_with_trailing_spaces_divides_by_the_raw_length_old_0_8_new_6_over_7():
    """Official rule: `length = max(len(answer.upper()), len(detObject['answer'].upper()))`, the RAW strings
    (RRC scorer, evaluate_method). "helo   " vs "hello": 1 edit / 7 characters, 1 - 1/7 = 0.8571428571428572
    (the float the official arithmetic gives); the harness used to divide by the collapsed length 5: 0.8."""
    assert normalized_distance("helo   ", "hello") == 1 / 7
    assert anls("helo   ", ["hello"]) == 1 - 1 / 7 == 0.8571428571428572


def test_inner_whitespace_runs_count_in_the_length():
    """Same rule: "new   york" (10 raw characters) vs "newyork" is 1 edit / 10 = 0.9 (old: 1 / 8 = 0.875)."""
    assert anls("new   york", ["newyork"]) == pytest.approx(0.9)


@pytest.mark.parametrize(("prediction", "gold", "new"), [
    # "İ".lower() is "i̇" (two code points), .upper() keeps one: 1 edit / 8 (old: / 9, 0.889)
    ("istanbul", "İstanbul", 1 - 1 / 8),
    # "İ" vs "i": 1 edit (the combining dot) / 1 = NL 1 -> 0 (old: 1 / 2 = 0.5, kept)
    ("i", "İ", 0.0),
    # "ﬁ" lower-cases to itself (one character) but upper-cases to "FI": 1 edit / 3 (old: / 2, 0.5)
    ("fx", "ﬁx", 1 - 1 / 3),
    # "ß" lower-cases to itself, upper-cases to "SS": 1 edit / 5 (old: / 4, 0.75)
    ("gros", "groß", 1 - 1 / 5),
    # the length is the longer of the two: "STRASSE" and "STRASSE", 2 edits / 7 (old: the same)
    ("strasse", "straße", 1 - 2 / 7),
])
def test_unicode_case_mapping_follows_python_upper_and_lower(prediction, gold, new):
    """Official rules: distance on the `.strip().lower()` forms, length on `.upper()` of the raw strings (Python str
    methods, so the same Unicode mappings as here; RRC scorer, evaluate_method). "old" is what the harness gave."""
    assert anls(prediction, [gold]) == pytest.approx(new)


def test_threshold_keeps_exactly_one_half_and_drops_below():
    """Official rule: `if question_result < anls_threshold: question_result = 0` with threshold 0.5, so 0.5 stays."""
    assert anls("ac", ["ab"]) == 0.5  # 1 / 2
    assert anls("abcd", ["ab"]) == 0.5  # 2 / 4
    assert anls("abcde", ["ab"]) == 0.0  # 3 / 5: 0.4 < 0.5
    assert anls("yes", ["no"]) == 0.0  # 3 / 3
    # raw length at the edge: "a   " (4 raw) vs "abc" is 2 / 4 = 0.5, kept (old: 2 / 3 -> 0.33 -> 0) ...
    assert anls("a   ", ["abc"]) == 0.5
    # ... and "a  " (3 raw) is 2 / 3: 0.33 -> 0
    assert anls("a  ", ["abc"]) == 0.0
    assert anls("ab", ["ab"], threshold=1.0) == 1.0 and anls("ac", ["ab"], threshold=0.6) == 0.0


def test_best_gold_answer_wins():
    """Official rule: `question_result = 1 - min(values)` over all gold answers, then the threshold."""
    assert anls("hello", ["xyz", "helo", "hello world"]) == pytest.approx(0.8)  # NL 1, 1/5, 6/11: 1 - 1/5
    assert anls("a   ", ["abc", "xyz"]) == 0.5  # 2/4 and 4/4: the threshold applies to the best only
    assert anls("İ", ["x", "İ"]) == 1.0  # NL 2 ("i̇" vs "x" over 1) does not hide the exact match
    assert anls("anything", []) == 0.0  # no gold (the official script would fail on min([]))


def test_corpus_anls_is_the_mean_on_0_100():
    examples = [Example("1", (), {}, ("Dear Dr. Lobo", "Dr. Lobo")), Example("2", (), {}, ("12/15/88",))]
    result = score_anls({"1": "dear dr. lobo", "2": "12/15/89"}, examples)  # 1.0 and 1 - 1/8
    assert result.per_sample == {"1": 100.0, "2": pytest.approx(87.5)}
    assert result.scores["anls"] == pytest.approx(93.75)
