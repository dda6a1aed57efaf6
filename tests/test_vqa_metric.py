"""VQA accuracy against the official scorer's numbers, and its normalisation rules by hand."""

from __future__ import annotations

import json

import pytest

from metrics.vqa import (
    VQAReference,
    digits_and_articles,
    normalize,
    process_answer,
    question_accuracy,
    strip_punctuation,
    vqa_accuracy,
)


def conformance_score(conformance):
    folder = conformance / "vqa_accuracy"
    annotations = json.loads((folder / "annotations.json").read_text())["annotations"]
    predictions = {str(p["question_id"]): p["answer"] for p in json.loads((folder / "predictions.json").read_text())}
    references = [
        VQAReference(str(a["question_id"]), tuple(x["answer"] for x in a["answers"]), a["question_type"], a["answer_type"])
        for a in annotations
    ]
    return vqa_accuracy(predictions, references), json.loads((folder / "expected.json").read_text())


def test_conformance_overall_and_breakdowns(conformance):
    score, expected = conformance_score(conformance)
    assert score.overall == expected["overall"] == 65.1
    assert score.per_question_type == expected["perQuestionType"]
    assert score.per_answer_type == expected["perAnswerType"]


def test_conformance_every_question(conformance):
    score, expected = conformance_score(conformance)
    assert len(score.per_question) == len(expected["per_question"])
    mismatches = {q: (v, expected["per_question"][q]) for q, v in score.per_question.items() if v != expected["per_question"][q]}
    assert mismatches == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes.", "yes"),  # a period not before a digit goes
        ("3.5", "3.5"),  # a decimal point stays
        ("red,blue", "red blue"),  # no space beside the comma: replaced by a space
        ("red , blue", "red  blue"),  # a space beside it: deleted
        ("1,000 (approx)", "1000 approx"),  # a digit,digit anywhere: every mark deleted
        ("t-shirt", "t shirt"),
    ],
)
def test_strip_punctuation(text, expected):
    assert strip_punctuation(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Two dogs", "2 dogs"),
        ("none", "0"),
        ("an apple", "apple"),
        ("dont know", "don't know"),
        ("Im here", "im here"),  # capitalised keys of the table never match after lowercasing
    ],
)
def test_digits_and_articles(text, expected):
    assert digits_and_articles(text) == expected


def test_all_identical_answers_are_not_normalised():
    # Ten identical answers: the scorer compares raw (whitespace-cleaned) strings only.
    assert question_accuracy("Yes", ["yes"] * 10) == 0.0
    assert question_accuracy(" yes\n", ["yes"] * 10) == 1.0
    # Once answers differ, both sides are normalised and "Yes" matches.
    assert question_accuracy("Yes", ["yes"] * 9 + ["no"]) == 1.0


def test_leave_one_out_by_position():
    # Two matches among ten: each leave-one-out subset holds 2 matches (or 1 when a match is left out).
    # 8 subsets x 2/3 + 2 subsets x 1/3 = 18/3 -> 0.6
    answers = ["cat", "cat"] + ["dog"] * 8
    assert question_accuracy("cat", answers) == pytest.approx(0.6)
    # VizWiz-style duplicates without ids: removing one copy at a time, never all of them.
    assert question_accuracy("dog", ["dog"] * 3 + ["cat"] * 7) == pytest.approx((3 * 2 / 3 + 7 * 1) / 10)


def test_process_answer_is_evalai_processing():
    assert process_answer("Two Dogs?") == "2 dogs"
    assert process_answer("  Yes, it is.\n") == "yes it is"
    assert normalize("The cat's toy.") == "cat's toy"
