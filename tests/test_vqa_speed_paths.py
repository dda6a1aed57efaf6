"""The fast VQA scoring paths give the official scorer's numbers, and commands without a model import no torch."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

import evals.cli as evals_cli
from benchmarks.score_vqa import reference_question, reference_score
from evals.process import is_entry_point
from evals.scoring import result_json, score_file
from evals.scoring.files import Submission
from evals.scoring.vqa import plain_vqa_score
from metrics.vqa import question_accuracies, question_accuracy

TRICKY = ("yes", "Yes", "yes.", "no", "two", "2", "2.", "none", "0", "the dog", "a dog", "dog", "dog's", "dogs", "dont",
          "don't", "t-shirt", "t shirt", "1,000", "1000", "3.5", "red, white", "red white", " yes\n", "yes\t", "an apple",
          "apple", "Im", "i'm", "what?", "Two Dogs!", "(left)", "left", "")


def random_questions(count: int, seed: int) -> list[tuple[str, tuple[str, ...]]]:
    """(prediction, answers) pairs: all-identical answer lists, duplicates, repeated pairs, 1 to 10 answers."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        size = rng.choice((10, 10, 10, 1, 3, 9))
        answers = (rng.choice(TRICKY),) * size if rng.random() < 0.3 else tuple(rng.choice(TRICKY) for _ in range(size))
        pairs.append((rng.choice(TRICKY), answers))
    return pairs + pairs[: count // 4]  # repeated pairs take the memoised path


def test_fast_accuracies_equal_the_official_transcription():
    pairs = random_questions(3000, seed=6)
    fast = question_accuracies([p for p, _ in pairs], [a for _, a in pairs])
    official = [reference_question(p, [{"answer": a, "answer_id": i} for i, a in enumerate(answers)]) for p, answers in pairs]
    assert fast == official == [question_accuracy(p, a) for p, a in pairs]  # exact floats, not approximately
    assert {round(x, 4) for x in fast} >= {0.0, 0.3, 0.6, 0.9, 1.0}  # the set exercises partial credit too


def test_fast_accuracies_by_hand():
    # "Two" and "2" match once the ten answers disagree; three "2" of ten: 7 x 1 + 3 x 2/3 = 9 -> 0.9.
    assert question_accuracies(["Two", "Yes", "Yes"], [("2",) * 3 + ("3",) * 7, ("yes",) * 10, ("yes",) * 10]) == [0.9, 0.0, 0.0]


def vqa_files(tmp_path, count: int, seed: int, string_ids: bool = False):
    rng = random.Random(seed)
    pairs = random_questions(count, seed)
    ids = [1000 + 3 * n for n in range(len(pairs))]
    annotations = [{"question_id": str(qid) if string_ids and n % 2 else qid, "question_type": rng.choice(("how many", "is the")),
                    "answer_type": rng.choice(("number", "yes/no", "other")),
                    "answers": [{"answer": a, "answer_id": i + 1} for i, a in enumerate(answers)]}
                   for n, (qid, (_, answers)) in enumerate(zip(ids, pairs))]
    paths = {name: tmp_path / f"{name}.json" for name in ("predictions", "annotations", "questions")}
    paths["predictions"].write_text(json.dumps([{"question_id": qid, "answer": p} for qid, (p, _) in zip(ids, pairs)]))
    paths["annotations"].write_text(json.dumps({"annotations": annotations}))
    paths["questions"].write_text(json.dumps({"questions": [{"question_id": qid} for qid in ids]}))
    return paths


@pytest.mark.parametrize("string_ids", [False, True])  # string ids take the careful reader: the same numbers
def test_score_file_equals_the_official_transcription(tmp_path, string_ids):
    paths = vqa_files(tmp_path, 800, seed=7, string_ids=string_ids)
    result = score_file("vqa", paths["predictions"], paths["annotations"], paths["questions"])
    (tmp_path / "plain").mkdir()
    plain = vqa_files(tmp_path / "plain", 800, seed=7)  # integer ids: what the official transcription reads
    assert result == reference_score(plain["predictions"], plain["annotations"], plain["questions"])
    assert len(result["per_question"]) == 1000 and 0 < result["scores"]["vqa_accuracy"] < 100
    fast = plain_vqa_score(Submission(paths["predictions"], paths["annotations"], paths["questions"]))
    assert (fast is None) == string_ids  # which reader scored it


def test_irregular_files_fall_back_to_the_careful_reader(tmp_path):
    paths = vqa_files(tmp_path, 20, seed=8)
    predictions = json.loads(paths["predictions"].read_text())
    for bad, message in ((predictions + predictions[:1], "entry #25 .*repeats question_id 1000"),
                         ([{**p, "question_id": True} if i == 0 else p for i, p in enumerate(predictions)], "question_id True")):
        paths["predictions"].write_text(json.dumps(bad))
        with pytest.raises(Exception, match=message):
            score_file("vqa", paths["predictions"], paths["annotations"])
    annotations = json.loads(paths["annotations"].read_text())
    annotations["annotations"][3]["answers"] = []
    paths["annotations"].write_text(json.dumps(annotations))
    with pytest.raises(Exception, match="annotation 1009 has an empty 'answers' list"):
        score_file("vqa", paths["predictions"], paths["annotations"], paths["questions"])
    # A number is no answer text: vqaEval.py itself fails on it (`ansDic['answer'].replace`), so it is refused, not read as "2".
    annotations["annotations"][3]["answers"] = [{"answer": 2}] * 10
    paths["annotations"].write_text(json.dumps(annotations))
    with pytest.raises(Exception, match="annotation 1009, answer #0: field 'answer' is an int, not a string"):
        score_file("vqa", paths["predictions"], paths["annotations"])


HEAVY = ("torch", "transformers", "datasets", "sklearn", "pandas", "matplotlib", "pycocoevalcap")
PROBE = """
import sys
sys.argv = ["evals", *sys.argv[1:]]
from evals.cli import main
try:
    main()
finally:
    heavy = sorted(name for name in {HEAVY!r} if name in sys.modules)
    print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("command", [["--help"], ["tasks"], ["score", "vqav2"]])
def test_commands_without_a_model_import_no_torch(command, conformance):
    folder = conformance / "vqa_accuracy"
    if command[0] == "score":
        command += [f"--predictions={folder / 'predictions.json'}", f"--annotations={folder / 'annotations.json'}"]
    done = subprocess.run([sys.executable, "-c", PROBE.format(HEAVY=HEAVY), *command], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "250"})
    assert done.returncode == 0, done.stderr
    assert "HEAVY=\n" in done.stderr  # none of them
    assert "65.10" in done.stdout or command[0] != "score"


def test_score_process_exits_early_with_its_output_written(conformance, tmp_path):
    """`python -m evals score` skips interpreter teardown (is_entry_point), after writing its table and its JSON."""
    folder, output = conformance / "vqa_accuracy", tmp_path / "out.json"
    done = subprocess.run([sys.executable, "-m", "evals", "score", "vqav2", f"--predictions={folder / 'predictions.json'}",
                           f"--annotations={folder / 'annotations.json'}", f"--output={output}"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "250"})
    assert done.returncode == 0, done.stderr
    assert "65.10" in done.stdout and "written to" in done.stdout
    result = json.loads(output.read_text())
    assert result["scores"] == {"vqa_accuracy": 65.1}
    assert result_json(result).count("\n") == result_json({**result, "per_question": {}}).count("\n")  # the map on one line
    assert not is_entry_point(evals_cli.main)  # pytest goes on after main: it must not exit early
