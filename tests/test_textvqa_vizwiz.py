"""TextVQA's and VizWiz's own scorers by hand, against vqaEval.py's rule (the `vqav2_rule` variant) on the cases
where the two differ. Expected values come from reading the official code named in each docstring."""

from __future__ import annotations

import pytest

from evals.records import Example, ImageRef
from evals.registry import TASKS
from metrics.textvqa import textvqa_accuracy
from metrics.vizwiz import VIZWIZ_CONTRACTIONS, vizwiz_accuracy, vizwiz_form
from metrics.vqa import VQAReference, process_answer, vqa_accuracy


def one_question(accuracy, prediction: str, answers: list[str]) -> float:
    return accuracy({"q": prediction}, [VQAReference("q", tuple(answers))]).overall


def example(answers: list[str], answer_type: str = "") -> Example:
    return Example(id="q", images=(ImageRef("val/q"),), fields={"question": "?"}, references=tuple(answers),
                   meta={"question_type": "", "answer_type": answer_type})


def task_scores(task: str, prediction: str, answers: list[str]) -> tuple[float, float]:
    """(the task's `vqav2_rule` variant, its default metric) on one question, the prediction as postprocessing gives it."""
    declared = TASKS.get(task)
    prediction = declared.postprocess(prediction, ())
    old = declared.metric_named("vqav2_rule")({"q": prediction}, [example(answers)])
    new = declared.metric({"q": prediction}, [example(answers)])
    return old.scores["vqa_accuracy"], new.scores["vqa_accuracy"]


# ---------------------------------------------------------------- TextVQA

def test_textvqa_possessive_split_on_both_sides():
    """mmf/utils/m4c_evaluators.py, TextVQAAccuracyEvaluator._compute_answer_scores: `answers =
    [self.answer_processor(a) for a in raw_answers]`, and eval_pred_list: `pred_answer = self.answer_processor(...)`;
    EvalAIAnswerProcessor.word_tokenize: `.replace("'s", " 's")`. So "king's cross" and the submitted "king 's cross"
    both become "king 's cross": 6 of 10 match, every leave-one-out keeps >= 5 (min(1, 5/3) = 1): 100. vqaEval.py's
    rule normalises (humans disagree) without the split: "king's cross" != "king 's cross": 0."""
    answers = ["king's cross"] * 6 + ["kings cross"] * 4
    assert one_question(vqa_accuracy, "king 's cross", answers) == 0.0
    assert one_question(textvqa_accuracy, "king 's cross", answers) == 100.0
    assert task_scores("textvqa", "King's Cross", answers) == (0.0, 100.0)


def test_textvqa_unanimous_answers_are_processed_too():
    """mmf/utils/m4c_evaluators.py, TextVQAAccuracyEvaluator: the answer processor runs on every human answer,
    always (vqaEval.py only when `len(set(gtAnswers)) > 1`). Ten "the speaking eye" become "speaking eye" (articles
    dropped in process_digit_article): the prediction matches all 10: 100; compared raw under vqaEval.py's rule: 0."""
    answers = ["the speaking eye"] * 10
    assert one_question(vqa_accuracy, "speaking eye", answers) == 0.0
    assert one_question(textvqa_accuracy, "speaking eye", answers) == 100.0
    assert task_scores("textvqa", "The speaking eye", answers) == (0.0, 100.0)


def test_textvqa_commas_go_from_human_answers():
    """mmf/utils/m4c_evaluators.py, EvalAIAnswerProcessor.word_tokenize: `word.replace(",", "")` on every answer.
    Ten "hatta, oman" become "hatta oman": 100; vqaEval.py's rule compares unanimous answers raw: 0."""
    answers = ["hatta, oman"] * 10
    assert one_question(vqa_accuracy, "hatta oman", answers) == 0.0
    assert one_question(textvqa_accuracy, "hatta oman", answers) == 100.0
    assert task_scores("textvqa", "hatta, oman", answers) == (0.0, 100.0)


def test_textvqa_leave_one_out_arithmetic():
    """mmf/utils/m4c_evaluators.py, _compute_answer_scores: per unique processed answer, for each of the 10
    (index, answer) pairs the others matching it, `min(1, float(len(matching_answers)) / 3)`, then
    `sum(accs) / len(accs)`; a prediction among no answer gets `.get(pred_answer, 0.0)`. "Coke." and "COKE" process
    to "coke": 3 of 10, (3 * 2/3 + 7 * 1) / 10 = 0.9; "cola" (2 of 10): (2 * 1/3 + 8 * 2/3) / 10 = 0.6."""
    answers = ["coca cola"] * 5 + ["Coke.", "coke", "COKE"] + ["cola", "Cola"]
    assert one_question(textvqa_accuracy, "coke", answers) == 90.0
    assert one_question(textvqa_accuracy, "Cola!", answers) == 60.0
    assert one_question(textvqa_accuracy, "pepsi", answers) == 0.0


def test_textvqa_prediction_is_processed_once():
    """mmf/utils/m4c_evaluators.py, eval_pred_list processes the submitted answer once. EvalAI's processor applied
    twice is not applied once: "whats" -> "what's" (CONTRACTIONS) -> "what 's" (word_tokenize's "'s" split). So the
    TextVQA task's prediction is the cut output, as a submission holds it, and "whats" meets ten "whats": 100."""
    assert process_answer("whats") == "what's" and process_answer(process_answer("whats")) == "what 's"
    assert TASKS.get("textvqa").postprocess("Whats\nQuestion: next", ()) == "Whats"
    answers = ["whats"] * 10
    assert one_question(textvqa_accuracy, "Whats", answers) == 100.0
    assert one_question(textvqa_accuracy, process_answer("Whats"), answers) == 0.0


# ---------------------------------------------------------------- VizWiz

def test_vizwiz_contraction_never_meets_a_raw_answer():
    """VizWiz challenge vqaEval.py (VQAEval.evaluate): `resAns = self.processDigitArticle(...)` on the prediction
    only, then `item['answer']==resAns` against the answers as written; its contraction table maps "dont" to
    "don’t" (U+2019). Three raw "dont know" never match: 0. vqaEval.py's rule normalises both sides (humans
    disagree): 3 of 10 match, (3 * 2/3 + 7) / 10: 90."""
    answers = ["dont know"] * 3 + ["unanswerable"] * 7
    assert vizwiz_form("dont know") == "don\u2019t know"
    assert one_question(vqa_accuracy, "dont know", answers) == 90.0
    assert one_question(vizwiz_accuracy, "dont know", answers) == 0.0
    assert task_scores("vizwiz", "dont know", answers) == (90.0, 0.0)


def test_vizwiz_upper_case_human_answers_stay_upper_case():
    """VizWiz challenge vqaEval.py: processDigitArticle lower-cases the prediction (`inText.lower().split()`); the
    human answers are never processed, so "Pepsi" never equals the prediction "pepsi": 0. vqaEval.py's rule
    lower-cases them too: 4 of 10, each leave-one-out keeps >= 3: 100."""
    answers = ["Pepsi"] * 4 + ["pepsi can"] * 6
    assert one_question(vqa_accuracy, "Pepsi", answers) == 100.0
    assert one_question(vizwiz_accuracy, "Pepsi", answers) == 0.0
    assert task_scores("vizwiz", "Pepsi", answers) == (100.0, 0.0)


def test_vizwiz_number_words_in_the_prediction():
    """VizWiz challenge vqaEval.py: manualMap turns "one" into "1" in the prediction, always; ten raw "quiet 1"
    then match: 100. vqaEval.py's rule compares a unanimous set raw: "quiet one" != "quiet 1": 0. (The harness's
    old postprocessing already turned "one" into "1", so its runs scored 100 either way.)"""
    answers = ["quiet 1"] * 10
    assert one_question(vqa_accuracy, "quiet one", answers) == 0.0
    assert one_question(vizwiz_accuracy, "quiet one", answers) == 100.0
    assert task_scores("vizwiz", "quiet one", answers) == (100.0, 100.0)


@pytest.mark.parametrize(("word", "expected"), [
    ("dont", "don\u2019t"), ("whats", "what\u2019s"), ("couldnt", "couldn't"), ("weve", "we've"), ("wheres", "where's"),
    ("couldn'tve", "couldn\u2019t\u2019ve"), ("somebody\u2019d", "somebodyd"), ("Im", "im"),
])
def test_vizwiz_contraction_table(word, expected):
    """VizWiz challenge vqaEval.py, self.contractions: vqaEval.py's table with U+2019 apostrophes, but for "aint",
    "arent", "cant", "couldve", "couldnt", "weve", "wheres", "whove" (ASCII values) and the keys "couldn'tve",
    "hadn'tve" (ASCII keys). Keys are looked up after lower-casing, so "Im" (key "Im") stays "im", as there."""
    assert len(VIZWIZ_CONTRACTIONS) == 120
    assert vizwiz_form(word) == expected


def test_vizwiz_prediction_steps():
    """VizWiz challenge vqaEval.py, evaluate: `replace('\\n', ' ')`, `replace('\\t', ' ')`, `strip()`, then
    processPunctuation (a mark beside a space deleted, else a space; a period not before a digit removed), then
    processDigitArticle (lower-case, number words, articles, contractions)."""
    assert vizwiz_form("  The\tT-Shirt!\n") == "t shirt"
    assert vizwiz_form("A 2.5 kg bag.") == "2.5 kg bag"
    assert vizwiz_form("none , one") == "0 1"


def test_vizwiz_leave_one_out_and_answer_types():
    """VizWiz challenge vqaEval.py: `otherGTAns = [item for j, item in enumerate(...) if i != j]` (by position);
    `avgGTAcc = float(sum(gtAcc))/len(gtAcc)`; overall and perAnswerType `round(100*float(sum(...))/len(...), 2)`."""
    references = [VQAReference("a", ("red",) * 3 + ("blue",) * 7, answer_type="other"),
                  VQAReference("b", ("yes",) * 2 + ("no",) * 8, answer_type="yes/no")]
    score = vizwiz_accuracy({"a": "Red.", "b": "yes"}, references)
    assert score.per_question == {"a": 90.0, "b": 60.0}
    assert score.per_answer_type == {"other": 90.0, "yes/no": 60.0} and score.overall == 75.0
