"""MathVista: the official testmini JSON, a missing field, a scripted run scored by hand, and the official
normalisation of every answer type (no extracted answer may crash a cell)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.errors import DataError
from evals.records import Example
from evals.registry import TASKS
from metrics.choice import mathvista_normalize
from tasks.mathvista import is_correct, score_mathvista
from tests.test_cli import evals

# The scripted model answers "yes": right for pid 1 (a choice itself) and pid 3 (text "yes"); wrong for pid 2
# (no integer in "yes") and pid 4 (the most similar choice to "yes" is "yep", the answer "no").
PROBLEMS = {
    "1": {"query": "Is it on?\nChoices:\n(A) yes\n(B) no", "choices": ["yes", "no"], "answer": "yes",
          "question_type": "multi_choice", "answer_type": "text", "precision": None},
    "2": {"query": "How many?", "choices": None, "answer": "3", "question_type": "free_form", "answer_type": "integer",
          "precision": None},
    "3": {"query": "Say yes.", "choices": None, "answer": "yes", "question_type": "free_form", "answer_type": "text",
          "precision": None},
    "4": {"query": "Pick.\nChoices:\n(A) no\n(B) yep", "choices": ["no", "yep"], "answer": "no",
          "question_type": "multi_choice", "answer_type": "text", "precision": None},
}


def write_testmini(root: Path, drop: str | None = None) -> None:
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    problems = {}
    for pid, problem in PROBLEMS.items():
        Image.new("RGB", (8, 8)).save(root / "images" / f"{pid}.jpg")
        entry = {"pid": pid, "image": f"images/{pid}.jpg", "metadata": {"task": "figure QA"}, **problem}
        problems[pid] = {k: v for k, v in entry.items() if k != drop}
    (root / "testmini.json").write_text(json.dumps(problems))


def test_official_file_reads_as_examples(tmp_path):
    write_testmini(tmp_path)
    examples = TASKS.get("mathvista").load(tmp_path, "testmini")
    assert [e.id for e in examples] == ["1", "2", "3", "4"]
    assert examples[0].meta["choices"] == "yes\nno" and examples[0].fields["question"].startswith("Is it on?")
    assert examples[1].references == ("3",) and examples[1].images[0].path == tmp_path / "images" / "2.jpg"


def test_missing_field_is_named(tmp_path):
    write_testmini(tmp_path, drop="answer_type")
    with pytest.raises(DataError, match=r"testmini.json: problem 1 has no field 'answer_type'"):
        TASKS.get("mathvista").load(tmp_path, "testmini")


def test_scripted_run_scores_hand_computed_accuracy(tmp_path):
    write_testmini(tmp_path / "data" / "mathvista")
    result = evals("run", "--model", "scripted", "--task", "mathvista", "--data-dir", str(tmp_path / "data"),
                   "--shots", "0,2", "--limit", "4", "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    for k in (0, 2):
        record = json.loads((tmp_path / "out" / "scripted" / "mathvista" / f"random-{k}shot-seed0.json").read_text())
        assert record["scores"]["accuracy"] == 50.0
        samples = (tmp_path / "out" / "scripted" / "mathvista" / f"random-{k}shot-seed0.samples.jsonl").read_text()
        assert all(json.loads(line)["id"] not in json.loads(line)["shot_ids"] for line in samples.splitlines())


def test_postprocess_reads_past_an_answer_label():
    assert TASKS.get("mathvista").postprocess("Answer: 12.5\nQuestion: next", ()) == "12.5"


# Expected values below come from reading lupantech/MathVista evaluation/calculate_score.py,
# normalize_extracted_answer, at commit e999481 (its latest): each numeric branch is wrapped in
# `try: ... except Exception: normalized_extraction = None`.
def free_form(answer_type: str, answer: str, precision: str = "") -> Example:
    meta = {"question_type": "free_form", "answer_type": answer_type, "choices": "", "precision": precision, "task": ""}
    return Example("1", (), {}, (answer,), meta)


@pytest.mark.parametrize("extraction", ["inf", "-inf", "1e400", "Infinity", "nan", "NaN", "three"])
def test_integer_that_int_cannot_take_is_none_not_a_crash(extraction):
    """calculate_score.py: `str(int(float(extraction)))` under `except Exception: ... = None`: int() of +-inf
    raises OverflowError, of nan ValueError, so the answer is None (wrong). Before: OverflowError escaped."""
    assert mathvista_normalize(extraction, [], "free_form", "integer", None) is None


@pytest.mark.parametrize("response", ["inf", "-inf", "Infinity", "nan", "The answer is infinity."])
def test_integer_question_answered_with_infinity_scores_wrong_without_crashing(response):
    """Same rule, through the task's scorer: before, score_mathvista raised OverflowError and the cell died."""
    examples = [free_form("integer", "3"), Example("2", (), {}, ("3",), free_form("integer", "3").meta)]
    result = score_mathvista({"1": response, "2": "3"}, examples)
    assert result.per_sample == {"1": 0.0, "2": 100.0}


@pytest.mark.parametrize(("extraction", "expected"), [("4.0", "4"), ("4.9", "4"), ("-4.9", "-4"), ("1e3", "1000")])
def test_integer_truncates_through_float(extraction, expected):
    """calculate_score.py: `str(int(float(extraction)))`: int() truncates toward zero."""
    assert mathvista_normalize(extraction, [], "free_form", "integer", None) == expected


def test_float_without_precision_is_none_old_rounded_to_0_places():
    """calculate_score.py: `str(round(float(extraction), int(precision)))` under `except Exception`: int(None)
    raises TypeError, so the answer is None (wrong). Before: "1.5" normalised to "2.0" and matched a gold "2.0"."""
    assert mathvista_normalize("1.5", [], "free_form", "float", None) is None
    assert not is_correct(free_form("float", "2.0"), "1.5")


@pytest.mark.parametrize(("extraction", "expected"), [
    ("1.256", "1.26"), ("3", "3.0"), ("2.675", "2.67"), ("1.005", "1.0"),  # Python's round of the nearest double
    ("-0.004", "-0.0"), ("1e400", "inf"), ("-inf", "-inf"), ("nan", "nan"),  # round(inf, 2) is inf: no exception
])
def test_float_with_precision_2_rounds_as_python_round(extraction, expected):
    """calculate_score.py: `str(round(float(extraction), int(precision)))`; round() of +-inf or nan with a
    precision returns them unchanged, so "inf" / "nan" come back as text (equal to no gold answer)."""
    assert mathvista_normalize(extraction, [], "free_form", "float", 2) == expected


def test_float_that_does_not_parse_is_none():
    """calculate_score.py: float("about two") raises ValueError, caught: None."""
    assert mathvista_normalize("about two", [], "free_form", "float", 1) is None
    assert is_correct(free_form("float", "2.68", "2"), "2.675") is False  # "2.67" != "2.68"
    assert is_correct(free_form("float", "1.26", "2"), "1.256") is True


@pytest.mark.parametrize(("atype", "extraction"), [("list", "[1, 2]"), ("text", " Yes "), ("text", "inf")])
def test_list_and_text_stay_as_they_are(atype, extraction):
    """calculate_score.py: a list becomes `str(extraction)`; any other free-form type (text) is returned
    untouched (no strip, no case change)."""
    assert mathvista_normalize(extraction, [], "free_form", atype, None) == extraction


@pytest.mark.parametrize(("extraction", "expected"), [
    ("B", "5"), ("(c) seven", "7"), ("inf", "3"), ("", "3"), ("1e400", "3"), ("55", "5"),
])
def test_multi_choice_is_a_letter_or_the_most_similar_choice(extraction, expected):
    """calculate_score.py: multi_choice comes first whatever the answer type: "(x)" gives the letter X; a letter
    among A.. picks its choice; anything else the choice at the smallest edit distance (the first on a tie), so
    no extraction is None or a crash."""
    assert mathvista_normalize(extraction, ["3", "5", "7"], "multi_choice", "integer", None) == expected
