"""`evals score`: every submission format on the conformance files, through the readers and the CLI, and bad submissions."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evals import cli as evals_cli
from evals.errors import ConfigError, DataError
from evals.registry import TASKS
from evals.scoring import SUBMISSION_SCORERS, score_file
from tests.test_errors import assert_one_line_error, cli

CAPTION_METRICS = ("CIDEr", "Bleu_4", "ROUGE_L", "METEOR")
# Real tasks scored end to end through `evals score TASK`, and the format each must have.
TASK_FORMATS = {"coco": "captions", "hateful_memes": "hateful_memes", "visdial": "visdial",
                "winoground": "winoground", "imagenet": "classification", "vqav2": "vqa",
                "textvqa": "textvqa", "vizwiz": "vizwiz"}


def copy_folder(conformance: Path, name: str, tmp_path: Path) -> Path:
    folder = tmp_path / Path(name).name
    shutil.copytree(conformance / name, folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def evals_score(monkeypatch, capsys, task: str, predictions: Path, annotations: Path, output: Path, *extra: str):
    """Run `evals score` in-process; the printed table and the written JSON."""
    monkeypatch.setattr(sys, "argv", ["evals", "score", task, "--predictions", str(predictions),
                                      "--annotations", str(annotations), "--output", str(output), *extra])
    evals_cli.main()
    return capsys.readouterr().out, json.loads(output.read_text())


@pytest.fixture(scope="module")
def classification_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classification")
    gold = write_jsonl(folder / "gold.jsonl", [{"id": i, "label": label} for i, label in enumerate(["cat", "dog", "bus", "car"])])
    predictions = write_jsonl(folder / "predictions.jsonl", [
        {"id": 0, "label": "cat", "top5": ["cat", "dog", "bus", "car", "cow"]},
        {"id": 1, "label": "cow", "top5": ["cow", "dog", "bus", "car", "cat"]},
        {"id": 2, "label": "bus", "top5": ["bus", "dog", "cat", "car", "cow"]},
        {"id": 3, "label": "cat", "top5": ["cat", "dog", "bus", "cow", "pig"]},
    ])
    return predictions, gold


# ---------------------------------------------------------------- readers, by format name

def test_captions_conformance(conformance):
    folder = conformance / "captioning"
    result = score_file("captions", folder / "predictions.json", folder / "captions_references.json")
    expected = json.loads((folder / "expected.json").read_text())
    assert result["scores"] == {key: expected["scores"][key] * 100 for key in CAPTION_METRICS}
    assert result["by_bleu_order"] == {f"Bleu_{n}": expected["scores"][f"Bleu_{n}"] * 100 for n in range(1, 5)}
    assert result["per_image_cider"] == {image: value * 100 for image, value in expected["per_image_cider"].items()}


def test_hateful_memes_conformance(conformance):
    folder = conformance / "ranking" / "hateful_memes"
    result = score_file("hateful_memes", folder / "predictions.csv", folder / "dev.jsonl")
    gold = {json.loads(line)["id"]: json.loads(line)["label"] for line in (folder / "dev.jsonl").read_text().splitlines()}
    with open(folder / "predictions.csv", newline="") as handle:
        right = sum(int(row["label"]) == gold[int(row["id"])] for row in csv.DictReader(handle))
    assert result["scores"] == {"roc_auc": json.loads((folder / "expected.json").read_text())["roc_auc"],
                                "accuracy": 100 * right / len(gold)}
    assert result["scores"]["accuracy"] == 72.0


def test_visdial_conformance_and_variant(conformance):
    folder = conformance / "ranking" / "visdial"
    files = (folder / "predictions.json", folder / "visdial_1.0_val_dense_annotations.json")
    expected = json.loads((folder / "expected.json").read_text())["ndcg"]
    official = score_file("visdial", *files)
    assert abs(official["scores"]["ndcg"] - expected) < 1e-3  # the reference ran in float32: 1e-5 on the 0-1 scale
    assert len(official["per_round"]) == 300 and "metric_variant" not in official
    m4 = score_file("visdial", *files, metric_variant="ndcg_sklearn")
    assert m4["metric_variant"] == "ndcg_sklearn" and m4["scores"]["ndcg"] > official["scores"]["ndcg"] + 10


def test_winoground_conformance(conformance):
    folder = conformance / "ranking" / "winoground"
    result = score_file("winoground", folder / "predictions.jsonl", folder / "examples.jsonl")
    assert result["scores"] == json.loads((folder / "expected.json").read_text())
    assert len(result["per_example"]) == 400
    assert sum(outcome["group"] for outcome in result["per_example"].values()) == 63  # 15.75% of 400


def test_vqa_conformance(conformance):
    folder = conformance / "vqa_accuracy"
    result = score_file("vqa", folder / "predictions.json", folder / "annotations.json", folder / "questions.json")
    assert result["scores"] == {"vqa_accuracy": json.loads((folder / "expected.json").read_text())["overall"]}


def test_classification_by_hand(classification_files):
    result = score_file("classification", *classification_files)
    # top-1: examples 0 and 2 right; top-5: 0, 1, 2 hold the label, 3 ("car") does not
    assert result["scores"] == {"accuracy": 50.0, "top5_accuracy": 75.0}


def test_classification_without_top5(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"id": "a", "label": 3}, {"id": "b", "label": 7}, {"id": "c", "label": 1}])
    predictions = write_jsonl(tmp_path / "p.jsonl", [{"id": "c", "label": 1}, {"id": "a", "label": "3"}, {"id": "b", "label": 1}])
    assert score_file("classification", predictions, gold)["scores"] == {"accuracy": 200 / 3}


def test_options_other_formats_do_not_take(conformance):
    folder = conformance / "ranking" / "winoground"
    with pytest.raises(ConfigError, match="--questions is for VQA"):
        score_file("winoground", folder / "predictions.jsonl", folder / "examples.jsonl", questions=folder / "x.json")
    with pytest.raises(ConfigError, match="no metric variant 'ndcg_sklearn'.*variants: none"):
        score_file("winoground", folder / "predictions.jsonl", folder / "examples.jsonl", metric_variant="ndcg_sklearn")
    with pytest.raises(ConfigError, match="no submission format 'coco'"):
        score_file("coco", folder / "predictions.jsonl", folder / "examples.jsonl")


def test_every_format_is_explained_in_the_help():
    for name in SUBMISSION_SCORERS:
        assert f"{name}:" in evals_cli.SCORE_PREDICTIONS_HELP and f"{name}:" in evals_cli.SCORE_ANNOTATIONS_HELP, name
    assert "visdial: ndcg_sklearn" in evals_cli.SCORE_VARIANT_HELP


# ---------------------------------------------------------------- the CLI, on real task names

def test_real_tasks_use_these_formats():
    assert {name: TASKS.get(name).submission_format for name in TASK_FORMATS} == TASK_FORMATS


def test_cli_captions(monkeypatch, capsys, conformance, tmp_path):
    folder = conformance / "captioning"
    out, written = evals_score(monkeypatch, capsys, "coco", folder / "predictions.json",
                               folder / "captions_references.json", tmp_path / "scores.json")
    expected = json.loads((folder / "expected.json").read_text())["scores"]
    assert written["task"] == "coco"
    assert written["scores"] == {key: expected[key] * 100 for key in CAPTION_METRICS}
    for key in ("CIDEr", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "METEOR"):
        assert f"{expected[key] * 100:.2f}" in out, key
    assert "82.32" in out


def test_cli_hateful_memes(monkeypatch, capsys, conformance, tmp_path):
    folder = conformance / "ranking" / "hateful_memes"
    out, written = evals_score(monkeypatch, capsys, "hateful_memes", folder / "predictions.csv", folder / "dev.jsonl",
                               tmp_path / "scores.json")
    assert written == {"task": "hateful_memes", "scores": {"roc_auc": 78.41328413284134, "accuracy": 72.0}}
    assert written["scores"]["roc_auc"] == json.loads((folder / "expected.json").read_text())["roc_auc"]
    assert "78.41" in out and "72.00" in out


def test_cli_visdial(monkeypatch, capsys, conformance, tmp_path):
    folder = conformance / "ranking" / "visdial"
    annotations = folder / "visdial_1.0_val_dense_annotations.json"
    out, written = evals_score(monkeypatch, capsys, "visdial", folder / "predictions.json", annotations, tmp_path / "a.json")
    expected = json.loads((folder / "expected.json").read_text())["ndcg"]
    assert written["task"] == "visdial" and abs(written["scores"]["ndcg"] - expected) < 1e-3
    assert "21.65" in out
    out, written = evals_score(monkeypatch, capsys, "visdial", folder / "predictions.json", annotations, tmp_path / "b.json",
                               "--metric-variant", "ndcg_sklearn")
    assert written["metric_variant"] == "ndcg_sklearn" and f"{written['scores']['ndcg']:.2f}" in out
    assert "ndcg_sklearn" in out


def test_cli_winoground(monkeypatch, capsys, conformance, tmp_path):
    folder = conformance / "ranking" / "winoground"
    out, written = evals_score(monkeypatch, capsys, "winoground", folder / "predictions.jsonl", folder / "examples.jsonl",
                               tmp_path / "scores.json")
    assert written["task"] == "winoground"
    assert written["scores"] == json.loads((folder / "expected.json").read_text())
    assert all(value in out for value in ("20.75", "24.50", "15.75"))


def test_cli_vqa(monkeypatch, capsys, conformance, tmp_path):
    folder = conformance / "vqa_accuracy"
    out, written = evals_score(monkeypatch, capsys, "vqav2", folder / "predictions.json", folder / "annotations.json",
                               tmp_path / "scores.json", "--questions", str(folder / "questions.json"))
    expected = json.loads((folder / "expected.json").read_text())
    assert written["scores"] == {"vqa_accuracy": expected["overall"]} and "65.10" in out
    assert written["by_answer_type"] == expected["perAnswerType"]


def test_cli_classification(monkeypatch, capsys, classification_files, tmp_path):
    out, written = evals_score(monkeypatch, capsys, "imagenet", *classification_files, tmp_path / "scores.json")
    assert written == {"task": "imagenet", "scores": {"accuracy": 50.0, "top5_accuracy": 75.0}}
    assert "50.00" in out and "75.00" in out


def test_task_module_in_a_fresh_interpreter_without_torch(conformance, tmp_path):
    """A task registered by --task-module is scored by its format; scoring never imports torch.
    (A subprocess, so the extra task stays out of this session's registry.)"""
    module = tmp_path / "my_tasks.py"
    module.write_text(
        "from dataclasses import replace\nfrom evals.registry import TASKS\n"
        "TASKS.add('my_winoground', replace(TASKS.get('winoground'), name='my_winoground'))\n")
    folder = conformance / "ranking" / "winoground"
    argv = ["evals", "score", "my_winoground", "--predictions", str(folder / "predictions.jsonl"),
            "--annotations", str(folder / "examples.jsonl"), "--task-module", str(module)]
    code = (f"import sys; from evals.cli import app; sys.argv = {argv!r}; app(standalone_mode=False); "
            "print('torch loaded' if 'torch' in sys.modules else 'no torch')")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "my_winoground" in done.stdout and "15.75" in done.stdout
    assert done.stdout.strip().endswith("no torch")


# ---------------------------------------------------------------- bad submissions: exit 2, one line naming the file

def assert_score_error(monkeypatch, capsys, task, predictions, annotations, *fragments):
    code, err = cli(monkeypatch, capsys, "score", task, "--predictions", str(predictions), "--annotations", str(annotations))
    assert_one_line_error(code, err, *fragments)


@pytest.fixture
def memes(conformance, tmp_path):
    return copy_folder(conformance, "ranking/hateful_memes", tmp_path)


def rewrite_csv(path: Path, header: str | None = None, line: int | None = None, text: str | None = None) -> None:
    lines = path.read_text().splitlines()
    if header is not None:
        lines[0] = header
    if line is not None:
        lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_hateful_memes_wrong_columns(monkeypatch, capsys, memes):
    rewrite_csv(memes / "predictions.csv", header="id,prob,label")
    assert_score_error(monkeypatch, capsys, "hateful_memes", memes / "predictions.csv", memes / "dev.jsonl",
                "predictions.csv", "id,proba,label", "missing: proba", "unexpected: prob")


@pytest.mark.parametrize(("text", "fragments"), [
    ("10001,high,0", ("line 3", "proba 'high', not a number")),
    ("10001,1.5,0", ("line 3", "proba 1.5, outside [0, 1]")),
    ("10001,0.5,yes", ("line 3", "'label' = 'yes', expected 0 or 1")),
    ("10001,0.5", ("line 3 has 2 fields",)),
])
def test_hateful_memes_bad_rows(monkeypatch, capsys, memes, text, fragments):
    rewrite_csv(memes / "predictions.csv", line=3, text=text)
    assert_score_error(monkeypatch, capsys, "hateful_memes", memes / "predictions.csv", memes / "dev.jsonl", "predictions.csv",
                       *fragments)


def test_hateful_memes_missing_and_unknown_ids(monkeypatch, capsys, memes):
    rewrite_csv(memes / "predictions.csv", line=2, text="99999,0.5,1")
    assert_score_error(monkeypatch, capsys, "hateful_memes", memes / "predictions.csv", memes / "dev.jsonl",
                "predictions.csv", "no prediction for 1 ids of dev.jsonl: 10000")
    rewrite_csv(memes / "predictions.csv", line=2, text="10001,0.5,1")
    assert_score_error(monkeypatch, capsys, "hateful_memes", memes / "predictions.csv", memes / "dev.jsonl",
                "predictions.csv", "line 3 repeats id 10001 of line 2")


def test_hateful_memes_malformed_jsonl(monkeypatch, capsys, memes):
    lines = (memes / "dev.jsonl").read_text().splitlines()
    lines[2] = lines[2][:-1]
    (memes / "dev.jsonl").write_text("\n".join(lines) + "\n")
    assert_score_error(monkeypatch, capsys, "hateful_memes", memes / "predictions.csv", memes / "dev.jsonl",
                "dev.jsonl", "line 3 is malformed JSON")


def test_visdial_ranks_not_a_permutation(monkeypatch, capsys, conformance, tmp_path):
    folder = copy_folder(conformance, "ranking/visdial", tmp_path)
    rows = json.loads((folder / "predictions.json").read_text())
    rows[1]["ranks"][0] = rows[1]["ranks"][1]
    (folder / "predictions.json").write_text(json.dumps(rows))
    assert_score_error(monkeypatch, capsys, "visdial", folder / "predictions.json", folder / "visdial_1.0_val_dense_annotations.json",
                "predictions.json", "entry #1", f"image_id {rows[1]['image_id']}", "not a permutation of 1..100")


def test_visdial_missing_dialog(monkeypatch, capsys, conformance, tmp_path):
    folder = copy_folder(conformance, "ranking/visdial", tmp_path)
    rows = json.loads((folder / "predictions.json").read_text())
    (folder / "predictions.json").write_text(json.dumps(rows[1:]))
    assert_score_error(monkeypatch, capsys, "visdial", folder / "predictions.json", folder / "visdial_1.0_val_dense_annotations.json",
                "predictions.json", "no prediction for 1 annotated rounds", "--partial",
                f"image_id {rows[0]['image_id']} round_id {rows[0]['round_id']}")


def test_visdial_other_rounds_are_ignored(conformance, tmp_path):
    folder = copy_folder(conformance, "ranking/visdial", tmp_path)
    rows = json.loads((folder / "predictions.json").read_text())
    other_round = {**rows[0], "round_id": rows[0]["round_id"] % 10 + 1, "ranks": list(range(1, 101))}
    (folder / "predictions.json").write_text(json.dumps([other_round, *rows]))
    result = score_file("visdial", folder / "predictions.json", folder / "visdial_1.0_val_dense_annotations.json")
    assert result == score_file("visdial", conformance / "ranking/visdial/predictions.json",
                                folder / "visdial_1.0_val_dense_annotations.json")


@pytest.fixture
def captions(conformance, tmp_path):
    return copy_folder(conformance, "captioning", tmp_path)


def test_captions_missing_image(monkeypatch, capsys, captions):
    rows = json.loads((captions / "predictions.json").read_text())
    (captions / "predictions.json").write_text(json.dumps(rows[1:]))
    assert_score_error(monkeypatch, capsys, "coco", captions / "predictions.json", captions / "captions_references.json",
                "predictions.json", "no prediction for 1 image_ids of captions_references.json: 500003")


@pytest.mark.parametrize(("edit", "fragments"), [
    (lambda rows: rows.append({"image_id": 42, "caption": "a cat"}), ("1 image_ids not in captions_references.json: 42",)),
    (lambda rows: rows.append(dict(rows[0])), ("entry #300 repeats image_id 500003 of entry #0",)),
    (lambda rows: rows[4].update(caption=["a", "cat"]), ("entry #4 (image_id 500031) has a non-string 'caption'",)),
    (lambda rows: rows[4].pop("caption"), ("entry #4 (image_id 500031) has no field 'caption'",)),
    (lambda rows: rows[4].pop("image_id"), ("entry #4 has no field 'image_id'",)),
])
def test_captions_bad_predictions(monkeypatch, capsys, captions, edit, fragments):
    rows = json.loads((captions / "predictions.json").read_text())
    edit(rows)
    (captions / "predictions.json").write_text(json.dumps(rows))
    assert_score_error(monkeypatch, capsys, "coco", captions / "predictions.json", captions / "captions_references.json",
                "predictions.json", *fragments)


def test_captions_malformed_json(monkeypatch, capsys, captions):
    (captions / "predictions.json").write_text(json.dumps([{"image_id": 1, "caption": "a"}])[:-2])
    assert_score_error(monkeypatch, capsys, "coco", captions / "predictions.json", captions / "captions_references.json",
                "predictions.json", "malformed JSON at line 1")


def test_caption_references_without_images(captions, monkeypatch, capsys):
    references = json.loads((captions / "captions_references.json").read_text())
    del references["images"]
    (captions / "captions_references.json").write_text(json.dumps(references))
    assert_score_error(monkeypatch, capsys, "coco", captions / "predictions.json", captions / "captions_references.json",
                "captions_references.json", "the top level has no field 'images'")


def test_winoground_bad_score_and_missing_example(monkeypatch, capsys, conformance, tmp_path):
    folder = copy_folder(conformance, "ranking/winoground", tmp_path)
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    write_jsonl(folder / "predictions.jsonl", [{**rows[0], "c1_i0": "high"}, *rows[1:]])
    assert_score_error(monkeypatch, capsys, "winoground", folder / "predictions.jsonl", folder / "examples.jsonl",
                "predictions.jsonl", "line 1 has 'c1_i0' = 'high', not a number")
    write_jsonl(folder / "predictions.jsonl", rows[:-1])
    assert_score_error(monkeypatch, capsys, "winoground", folder / "predictions.jsonl", folder / "examples.jsonl",
                "predictions.jsonl", "no prediction for 1 ids of examples.jsonl: 399")


def test_classification_bad_top5(monkeypatch, capsys, classification_files, tmp_path):
    predictions, gold = classification_files
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    rows[2]["top5"] = rows[2]["top5"][:4]
    bad = write_jsonl(tmp_path / "predictions.jsonl", rows)
    assert_score_error(monkeypatch, capsys, "imagenet", bad, gold, "predictions.jsonl", "line 3", "'top5' of 4 labels")
    rows[2]["top5"] = ["bus", 1.5, "cat", "car", "cow"]
    write_jsonl(bad, rows)
    assert_score_error(monkeypatch, capsys, "imagenet", bad, gold, "predictions.jsonl", "line 3", "not a label")


def test_score_missing_file(monkeypatch, capsys, conformance, tmp_path):
    folder = conformance / "ranking" / "winoground"
    assert_score_error(monkeypatch, capsys, "winoground", tmp_path / "nope.jsonl", folder / "examples.jsonl",
                "nope.jsonl: file not found")


def test_score_file_errors_are_data_errors(tmp_path):
    (tmp_path / "p.jsonl").write_text("")
    with pytest.raises(DataError, match="p.jsonl: no records"):
        score_file("classification", tmp_path / "p.jsonl", tmp_path / "p.jsonl")


def test_visdial_bad_annotations_and_unknown_dialogs(conformance, tmp_path):
    folder = copy_folder(conformance, "ranking/visdial", tmp_path)
    predictions, annotations = folder / "predictions.json", folder / "visdial_1.0_val_dense_annotations.json"
    rows = json.loads(annotations.read_text())
    (tmp_path / "irrelevant.json").write_text(json.dumps([{**rows[0], "gt_relevance": [0.0] * 100}, *rows[1:]]))
    with pytest.raises(DataError, match=rf"annotation #0 \(image_id {rows[0]['image_id']}, round_id \d+\) has no relevant option"):
        score_file("visdial", predictions, tmp_path / "irrelevant.json")
    (tmp_path / "twice.json").write_text(json.dumps([*rows, rows[0]]))
    with pytest.raises(DataError, match=f"twice.json: annotation #300 repeats image_id {rows[0]['image_id']} round_id"):
        score_file("visdial", predictions, tmp_path / "twice.json")
    ranks = json.loads(predictions.read_text())
    predictions.write_text(json.dumps([*ranks, {"image_id": 1, "round_id": 1, "ranks": list(range(1, 101))}]))
    with pytest.raises(DataError, match="predictions.json: 1 image_ids not in visdial_1.0_val_dense_annotations.json: 1$"):
        score_file("visdial", predictions, annotations)


def test_hateful_memes_needs_both_classes(conformance, tmp_path):
    folder = copy_folder(conformance, "ranking/hateful_memes", tmp_path)
    records = [json.loads(line) for line in (folder / "dev.jsonl").read_text().splitlines()]
    write_jsonl(folder / "dev.jsonl", [{**r, "label": 1} for r in records])
    with pytest.raises(DataError, match="dev.jsonl: every label is 1; ROC AUC needs both classes"):
        score_file("hateful_memes", folder / "predictions.csv", folder / "dev.jsonl")


# ---------------------------------------------------------------- TextVQA and VizWiz, in their own official files

def textvqa_question(qid: int, answers: list[str]) -> dict:
    return {"question_id": qid, "question": "what does the sign say?", "image_id": f"{qid:016x}", "image_classes": ["Sign"],
            "flickr_original_url": "", "flickr_300k_url": "", "image_width": 64, "image_height": 48,
            "answers": answers, "question_tokens": ["what"], "ocr_tokens": ["stop"], "set_name": "val"}


# (answers, prediction, accuracy in %): 10 identical answers are not normalised; "coke" has 3 of 10 answers, so
# leaving one of those 3 out leaves 2 matches (2/3) and leaving any other out 3 (1): (3 * 2/3 + 7) / 10 = 0.9;
# "two" normalises to "2", which then has 2 of 10 answers: (2 * 1/3 + 8 * 2/3) / 10 = 0.6.
TEXTVQA_CASES = (
    (["stop"] * 10, "stop", 100.0),
    (["coca cola"] * 4 + ["coke"] * 3 + ["cola"] * 3, "coke", 90.0),
    (["2", "two"] + ["3"] * 8, "2", 60.0),
)


@pytest.fixture
def textvqa_files(tmp_path):
    """TextVQA_0.5.1_val.json (its official shape) and an EvalAI results file, one question_id given as a string."""
    data = [textvqa_question(qid, answers) for qid, (answers, _, _) in enumerate(TEXTVQA_CASES, start=1)]
    annotations = tmp_path / "TextVQA_0.5.1_val.json"
    annotations.write_text(json.dumps({"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1",
                                       "data": data}))
    predictions = tmp_path / "textvqa_predictions.json"
    rows = [{"question_id": qid, "answer": answer} for qid, (_, answer, _) in enumerate(TEXTVQA_CASES, start=1)]
    rows[1]["question_id"] = "2"
    predictions.write_text(json.dumps(rows[::-1]))
    return predictions, annotations


def vizwiz_question(image: str, answer_type: str, answers: list[str]) -> dict:
    return {"image": image, "question": "What is this?", "answerable": int(answer_type != "unanswerable"),
            "answer_type": answer_type, "answers": [{"answer": a, "answer_confidence": "yes"} for a in answers]}


# (image, answer_type, answers, prediction, accuracy in %). The answers have no answer_id and repeat the very same
# object: leaving out one "red" by position leaves 2 matches, (3 * 2/3 + 7) / 10 = 0.9, where dict equality would
# drop all three reds at once (0.7); "unanswerable" has 2 of 10 answers: (2 * 1/3 + 8 * 2/3) / 10 = 0.6 (not 0.53).
VIZWIZ_CASES = (
    ("VizWiz_val_00000000.jpg", "other", ["red"] * 3 + ["blue"] * 7, "red", 90.0),
    ("VizWiz_val_00000001.jpg", "yes/no", ["yes"] * 10, "no", 0.0),
    ("VizWiz_val_00000002.jpg", "unanswerable", ["unanswerable"] * 2 + ["unsuitable"] * 8, "unanswerable", 60.0),
)


@pytest.fixture
def vizwiz_files(tmp_path):
    """Annotations/val.json (the official list) and a challenge submission [{image, answer}]."""
    annotations = tmp_path / "Annotations" / "val.json"
    annotations.parent.mkdir()
    annotations.write_text(json.dumps([vizwiz_question(image, kind, answers) for image, kind, answers, _, _ in VIZWIZ_CASES]))
    predictions = tmp_path / "vizwiz_predictions.json"
    predictions.write_text(json.dumps([{"image": image, "answer": answer} for image, _, _, answer, _ in VIZWIZ_CASES]))
    return predictions, annotations


def test_textvqa_by_hand(textvqa_files):
    result = score_file("textvqa", *textvqa_files)
    assert result == {"scores": {"vqa_accuracy": 83.33},  # (100 + 90 + 60) / 3
                      "per_question": {"1": 100.0, "2": 90.0, "3": 60.0}}


def test_vizwiz_by_hand(vizwiz_files):
    result = score_file("vizwiz", *vizwiz_files)
    assert result["scores"] == {"vqa_accuracy": 50.0}  # (90 + 0 + 60) / 3
    assert result["by_answer_type"] == {"other": 90.0, "yes/no": 0.0, "unanswerable": 60.0}
    assert result["per_question"] == {image: accuracy for image, _, _, _, accuracy in VIZWIZ_CASES}


def test_cli_textvqa(monkeypatch, capsys, textvqa_files, tmp_path):
    out, written = evals_score(monkeypatch, capsys, "textvqa", *textvqa_files, tmp_path / "scores.json")
    assert written["task"] == "textvqa" and written["scores"] == {"vqa_accuracy": 83.33}
    assert "83.33" in out


def test_cli_vizwiz(monkeypatch, capsys, vizwiz_files, tmp_path):
    out, written = evals_score(monkeypatch, capsys, "vizwiz", *vizwiz_files, tmp_path / "scores.json")
    assert written["task"] == "vizwiz" and written["scores"] == {"vqa_accuracy": 50.0}
    assert written["by_answer_type"]["unanswerable"] == 60.0
    assert "50.00" in out and "by_answer_type: unanswerable" in out


def rewrite_json(path: Path, edit) -> None:
    value = json.loads(path.read_text())
    edit(value)
    path.write_text(json.dumps(value))


@pytest.mark.parametrize(("edit", "fragments"), [
    (lambda rows: rows.pop(0), ("no prediction for 1 question_ids of TextVQA_0.5.1_val.json: 3",)),
    (lambda rows: rows.append({"question_id": 99, "answer": "stop"}), ("1 question_ids not in TextVQA_0.5.1_val.json: 99",)),
    (lambda rows: rows.append({"question_id": 1, "answer": "stop"}), ("entry #3 repeats question_id 1 of entry #2",)),
    (lambda rows: rows[0].pop("answer"), ("entry #0 (question_id 3) has no field 'answer'",)),
    (lambda rows: rows[0].update(answer=None), ("entry #0 (question_id 3) has a non-string 'answer'",)),
    (lambda rows: rows[1].pop("question_id"), ("entry #1 has no field 'question_id'",)),
])
def test_textvqa_bad_predictions(monkeypatch, capsys, textvqa_files, edit, fragments):
    predictions, annotations = textvqa_files
    rewrite_json(predictions, edit)
    assert_score_error(monkeypatch, capsys, "textvqa", predictions, annotations, "textvqa_predictions.json", *fragments)


@pytest.mark.parametrize(("edit", "fragments"), [
    (lambda file: file["data"].append(file["data"][0]), ("entry #3 repeats question_id 1 of entry #0",)),
    (lambda file: file["data"][1].pop("answers"), ("question 2 has no field 'answers'",)),
    (lambda file: file["data"][1].update(answers=[]), ("question 2: field 'answers' is not a non-empty list",)),
    (lambda file: file.pop("data"), ("the top level has no field 'data'",)),
    (lambda file: file.update(data=[]), ("no questions to score",)),
])
def test_textvqa_bad_annotations(monkeypatch, capsys, textvqa_files, edit, fragments):
    predictions, annotations = textvqa_files
    rewrite_json(annotations, edit)
    assert_score_error(monkeypatch, capsys, "textvqa", predictions, annotations, "TextVQA_0.5.1_val.json", *fragments)


@pytest.mark.parametrize(("edit", "fragments"), [
    (lambda rows: rows.pop(), ("no prediction for 1 images of val.json: VizWiz_val_00000002.jpg",)),
    (lambda rows: rows.append({"image": "VizWiz_test_00000000.jpg", "answer": "red"}),
     ("1 images not in val.json: VizWiz_test_00000000.jpg",)),
    (lambda rows: rows.append(dict(rows[1])), ("entry #3 repeats image VizWiz_val_00000001.jpg of entry #1",)),
    (lambda rows: rows[2].pop("image"), ("entry #2 has no field 'image'",)),
    (lambda rows: rows[1].update(answer=["no"]), ("entry #1 (image VizWiz_val_00000001.jpg) has a non-string 'answer'",)),
])
def test_vizwiz_bad_predictions(monkeypatch, capsys, vizwiz_files, edit, fragments):
    predictions, annotations = vizwiz_files
    rewrite_json(predictions, edit)
    assert_score_error(monkeypatch, capsys, "vizwiz", predictions, annotations, "vizwiz_predictions.json", *fragments)


@pytest.mark.parametrize(("edit", "fragments"), [
    (lambda rows: rows.append(rows[0]), ("entry #3 repeats image VizWiz_val_00000000.jpg of entry #0",)),
    (lambda rows: rows[1]["answers"][4].pop("answer"),
     ("entry VizWiz_val_00000001.jpg: an entry of 'answers' is neither a string nor an object with field 'answer'",)),
    (lambda rows: rows[2].pop("image"), ("entry #2 has no field 'image'",)),
    (lambda rows: rows.clear(), ("no questions to score",)),
])
def test_vizwiz_bad_annotations(monkeypatch, capsys, vizwiz_files, edit, fragments):
    predictions, annotations = vizwiz_files
    rewrite_json(annotations, edit)
    assert_score_error(monkeypatch, capsys, "vizwiz", predictions, annotations, "val.json", *fragments)


def test_vizwiz_annotations_not_a_list_and_malformed(monkeypatch, capsys, vizwiz_files):
    predictions, annotations = vizwiz_files
    annotations.write_text(json.dumps({"annotations": []}))
    assert_score_error(monkeypatch, capsys, "vizwiz", predictions, annotations, "val.json", "expected a JSON list of questions")
    annotations.write_text("[{\"image\": ")
    assert_score_error(monkeypatch, capsys, "vizwiz", predictions, annotations, "val.json", "malformed JSON at line 1")


def test_textvqa_malformed_predictions_and_missing_annotations(monkeypatch, capsys, textvqa_files, tmp_path):
    predictions, annotations = textvqa_files
    assert_score_error(monkeypatch, capsys, "textvqa", predictions, tmp_path / "TextVQA_0.5.1_test.json",
                "TextVQA_0.5.1_test.json: file not found")
    predictions.write_text(predictions.read_text()[:-3])
    assert_score_error(monkeypatch, capsys, "textvqa", predictions, annotations, "textvqa_predictions.json", "malformed JSON")


def test_vqa_annotation_asked_twice(conformance, tmp_path):
    folder = copy_folder(conformance, "vqa_accuracy", tmp_path)
    rewrite_json(folder / "annotations.json", lambda file: file["annotations"].append(file["annotations"][1]))
    qid = json.loads((folder / "annotations.json").read_text())["annotations"][1]["question_id"]
    with pytest.raises(DataError, match=rf"annotations.json: annotation #\d+ repeats question_id {qid} of annotation #1$"):
        score_file("vqa", folder / "predictions.json", folder / "annotations.json")


# ---------------------------------------------------------------- --partial: a file that predicts part of the reference ids

def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value))
    return path


def assert_scored_as_covered_alone(monkeypatch, capsys, tmp_path, task, predictions, annotations, covered_alone, covered, annotated):
    """A partial file: without --partial, one line naming the file and suggesting --partial; with it, exactly the result
    of scoring the file against a reference file of the covered ids alone (written by the test), plus the coverage."""
    assert_score_error(monkeypatch, capsys, task, predictions, annotations, predictions.name, "no prediction for",
                       f"--partial scores the {covered} predicted ones")
    out, written = evals_score(monkeypatch, capsys, task, predictions, annotations, tmp_path / "partial.json", "--partial")
    _, alone = evals_score(monkeypatch, capsys, task, predictions, covered_alone, tmp_path / "alone.json")
    assert written.pop("coverage") == {"covered": covered, "annotated": annotated, "fraction": covered / annotated}
    assert written == alone and "coverage" not in alone
    assert f"{covered} / {annotated} ({100 * covered / annotated:.1f}%)" in out
    assert all(f"{value:.2f}" in out for value in written["scores"].values())


def test_partial_vqav2(monkeypatch, capsys, conformance, tmp_path):
    folder = conformance / "vqa_accuracy"
    rows = json.loads((folder / "predictions.json").read_text())[::3]
    annotations = json.loads((folder / "annotations.json").read_text())
    kept = {row["question_id"] for row in rows}
    alone = write_json(tmp_path / "covered_annotations.json",
                       {**annotations, "annotations": [a for a in annotations["annotations"] if a["question_id"] in kept]})
    assert_scored_as_covered_alone(monkeypatch, capsys, tmp_path, "vqav2", write_json(tmp_path / "results.json", rows),
                                   folder / "annotations.json", alone, 134, 400)


def test_partial_textvqa_and_vizwiz(monkeypatch, capsys, textvqa_files, vizwiz_files, tmp_path):
    predictions, annotations = textvqa_files
    rewrite_json(predictions, lambda rows: rows.pop(1))  # question 2
    file = json.loads(annotations.read_text())
    alone = write_json(tmp_path / "textvqa_covered.json", {**file, "data": [q for q in file["data"] if q["question_id"] != 2]})
    assert_scored_as_covered_alone(monkeypatch, capsys, tmp_path, "textvqa", predictions, annotations, alone, 2, 3)
    assert json.loads((tmp_path / "partial.json").read_text())["scores"] == {"vqa_accuracy": 80.0}  # (100 + 60) / 2
    predictions, annotations = vizwiz_files
    rewrite_json(predictions, lambda rows: rows.pop(0))
    (tmp_path / "covered").mkdir()
    alone = write_json(tmp_path / "covered" / "val.json", json.loads(annotations.read_text())[1:])
    assert_scored_as_covered_alone(monkeypatch, capsys, tmp_path, "vizwiz", predictions, annotations, alone, 2, 3)


def test_partial_captions(monkeypatch, capsys, captions, tmp_path):
    """CIDEr-D's idf comes from the covered images' references alone, as COCOEvalCap's over the results' images."""
    rows = json.loads((captions / "predictions.json").read_text())[:120]
    references = json.loads((captions / "captions_references.json").read_text())
    kept = {row["image_id"] for row in rows}
    alone = write_json(tmp_path / "covered_references.json", {
        **references, "images": [i for i in references["images"] if i["id"] in kept],
        "annotations": [a for a in references["annotations"] if a["image_id"] in kept]})
    assert_scored_as_covered_alone(monkeypatch, capsys, tmp_path, "coco", write_json(captions / "predictions.json", rows),
                                   captions / "captions_references.json", alone, 120, 300)


def test_partial_hateful_memes(monkeypatch, capsys, memes, tmp_path):
    lines = (memes / "predictions.csv").read_text().splitlines()
    (memes / "predictions.csv").write_text("\n".join(lines[:201]) + "\n")  # the header and 200 memes
    kept = {int(line.split(",")[0]) for line in lines[1:201]}
    gold = [json.loads(line) for line in (memes / "dev.jsonl").read_text().splitlines()]
    alone = write_jsonl(tmp_path / "dev_covered.jsonl", [g for g in gold if g["id"] in kept])
    assert_scored_as_covered_alone(monkeypatch, capsys, tmp_path, "hateful_memes", memes / "predictions.csv",
                                   memes / "dev.jsonl", alone, 200, 500)


def test_partial_visdial(monkeypatch, capsys, conformance, tmp_path):
    """NDCG over the annotated rounds the file ranks; its rounds without dense annotations still count for nothing."""
    folder = copy_folder(conformance, "ranking/visdial", tmp_path)
    rows = json.loads((folder / "predictions.json").read_text())[100:]
    other_round = {**rows[0], "round_id": rows[0]["round_id"] % 10 + 1, "ranks": list(range(1, 101))}
    annotations = folder / "visdial_1.0_val_dense_annotations.json"
    kept = {(row["image_id"], row["round_id"]) for row in rows}
    alone = write_json(tmp_path / "covered_dense.json",
                       [a for a in json.loads(annotations.read_text()) if (a["image_id"], a["round_id"]) in kept])
    predictions = write_json(folder / "predictions.json", [other_round, *rows])
    assert_scored_as_covered_alone(monkeypatch, capsys, tmp_path, "visdial", predictions, annotations, alone, 200, 300)


def test_partial_winoground_and_classification(monkeypatch, capsys, conformance, classification_files, tmp_path):
    folder = conformance / "ranking" / "winoground"
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()][50:200]
    kept = {row["id"] for row in rows}
    examples = [json.loads(line) for line in (folder / "examples.jsonl").read_text().splitlines()]
    alone = write_jsonl(tmp_path / "examples_covered.jsonl", [e for e in examples if e["id"] in kept])
    assert_scored_as_covered_alone(monkeypatch, capsys, tmp_path, "winoground", write_jsonl(tmp_path / "w.jsonl", rows),
                                   folder / "examples.jsonl", alone, 150, 400)
    predictions, gold = classification_files
    rows = [json.loads(line) for line in predictions.read_text().splitlines()][1:]
    alone = write_jsonl(tmp_path / "gold_covered.jsonl", [json.loads(line) for line in gold.read_text().splitlines()][1:])
    assert_scored_as_covered_alone(monkeypatch, capsys, tmp_path, "imagenet", write_jsonl(tmp_path / "c.jsonl", rows),
                                   gold, alone, 3, 4)
    assert json.loads((tmp_path / "partial.json").read_text())["scores"] == {"accuracy": 100 / 3, "top5_accuracy": 200 / 3}


def test_partial_on_a_complete_file(monkeypatch, capsys, conformance, tmp_path):
    """Every id covered: the same result (VQAv2 through its fast reader) and coverage 1."""
    folder = conformance / "vqa_accuracy"
    files = (folder / "predictions.json", folder / "annotations.json")
    questions = ("--questions", str(folder / "questions.json"))
    out, written = evals_score(monkeypatch, capsys, "vqav2", *files, tmp_path / "partial.json", *questions, "--partial")
    _, complete = evals_score(monkeypatch, capsys, "vqav2", *files, tmp_path / "complete.json", *questions)
    assert written.pop("coverage") == {"covered": 400, "annotated": 400, "fraction": 1.0}
    assert written == complete and "400 / 400 (100.0%)" in out


def test_partial_unknown_id_and_nothing_covered(monkeypatch, capsys, classification_files, conformance, textvqa_files, tmp_path):
    """--partial forgives missing ids only: an id the annotations lack, or no covered id at all, is still exit 2."""
    predictions, gold = classification_files
    rows = [json.loads(line) for line in predictions.read_text().splitlines()][:2] + [{"id": 99, "label": "cat"}]
    unknown = write_jsonl(tmp_path / "unknown.jsonl", rows)
    code, err = cli(monkeypatch, capsys, "score", "imagenet", "--predictions", str(unknown), "--annotations", str(gold), "--partial")
    assert_one_line_error(code, err, "unknown.jsonl", "1 ids not in gold.jsonl: 99")
    predictions, annotations = textvqa_files
    write_json(predictions, [])
    code, err = cli(monkeypatch, capsys, "score", "textvqa", "--predictions", str(predictions), "--annotations", str(annotations),
                    "--partial")
    assert_one_line_error(code, err, "textvqa_predictions.json", "predicts none of the 3 question_ids", "nothing to score")
    folder = copy_folder(conformance, "ranking/visdial", tmp_path)
    rows = json.loads((folder / "predictions.json").read_text())
    write_json(folder / "predictions.json", [{**rows[0], "round_id": rows[0]["round_id"] % 10 + 1}])
    with pytest.raises(DataError, match="predictions.json: predicts none of the 300 annotated rounds .*: nothing to score$"):
        score_file("visdial", folder / "predictions.json", folder / "visdial_1.0_val_dense_annotations.json", partial=True)


# (answers, prediction as the file holds it, official %, vqaEval.py's rule %). MMF's TextVQA evaluator
# (mmf/utils/m4c_evaluators.py) puts prediction and answers through EvalAI's processor, always: "king's cross" ->
# "king 's cross", "the speaking eye" -> "speaking eye", "hatta, oman" -> "hatta oman"; vqaEval.py's rule compares
# unanimous answers raw and normalises disagreeing ones without the "'s" split. tests/test_textvqa_vizwiz.py has each.
TEXTVQA_RULE_CASES = (
    (["king's cross"] * 6 + ["kings cross"] * 4, "king 's cross", 100.0, 0.0),
    (["the speaking eye"] * 10, "speaking eye", 100.0, 0.0),
    (["hatta, oman"] * 10, "hatta oman", 100.0, 0.0),
    (["coca cola"] * 4 + ["coke"] * 3 + ["cola"] * 3, "coke", 90.0, 90.0),
)
# (answer_type, answers, prediction, official %, vqaEval.py's rule %). The VizWiz scorer normalises the prediction
# only: "dont know" -> "don’t know" (U+2019) meets no raw "dont know"; "pepsi" meets no raw "Pepsi"; "quiet one" ->
# "quiet 1" meets ten raw "quiet 1" (which vqaEval.py's rule compares raw with "quiet one").
VIZWIZ_RULE_CASES = (
    ("unanswerable", ["dont know"] * 3 + ["unanswerable"] * 7, "dont know", 0.0, 90.0),
    ("other", ["Pepsi"] * 4 + ["pepsi can"] * 6, "pepsi", 0.0, 100.0),
    ("other", ["quiet 1"] * 10, "quiet one", 100.0, 0.0),
    ("other", ["red"] * 3 + ["blue"] * 7, "red", 90.0, 90.0),
)


@pytest.fixture
def textvqa_rule_files(tmp_path):
    annotations = tmp_path / "TextVQA_0.5.1_val.json"
    annotations.write_text(json.dumps({"data": [textvqa_question(qid, answers)
                                                for qid, (answers, *_) in enumerate(TEXTVQA_RULE_CASES, start=1)]}))
    predictions = tmp_path / "textvqa_predictions.json"
    predictions.write_text(json.dumps([{"question_id": qid, "answer": answer}
                                       for qid, (_, answer, *_) in enumerate(TEXTVQA_RULE_CASES, start=1)]))
    return predictions, annotations


@pytest.fixture
def vizwiz_rule_files(tmp_path):
    images = [f"VizWiz_val_{n:08d}.jpg" for n in range(len(VIZWIZ_RULE_CASES))]
    annotations = tmp_path / "Annotations" / "val.json"
    annotations.parent.mkdir()
    annotations.write_text(json.dumps([vizwiz_question(image, kind, answers)
                                       for image, (kind, answers, *_) in zip(images, VIZWIZ_RULE_CASES)]))
    predictions = tmp_path / "vizwiz_predictions.json"
    predictions.write_text(json.dumps([{"image": image, "answer": answer}
                                       for image, (_, _, answer, *_) in zip(images, VIZWIZ_RULE_CASES)]))
    return predictions, annotations


def test_cli_textvqa_official_scorer_and_vqav2_rule(monkeypatch, capsys, textvqa_rule_files, tmp_path):
    """`evals score textvqa` scores as MMF's TextVQA evaluator; `--metric-variant vqav2_rule` as the harness did before."""
    out, official = evals_score(monkeypatch, capsys, "textvqa", *textvqa_rule_files, tmp_path / "a.json")
    assert official["scores"] == {"vqa_accuracy": 97.5} and "97.50" in out  # (100 + 100 + 100 + 90) / 4
    assert official["per_question"] == {str(qid): case[2] for qid, case in enumerate(TEXTVQA_RULE_CASES, start=1)}
    out, old = evals_score(monkeypatch, capsys, "textvqa", *textvqa_rule_files, tmp_path / "b.json",
                           "--metric-variant", "vqav2_rule")
    assert old["metric_variant"] == "vqav2_rule" and old["scores"] == {"vqa_accuracy": 22.5} and "22.50" in out  # 90 / 4
    assert old["per_question"] == {str(qid): case[3] for qid, case in enumerate(TEXTVQA_RULE_CASES, start=1)}


def test_cli_vizwiz_official_scorer_and_vqav2_rule(monkeypatch, capsys, vizwiz_rule_files, tmp_path):
    """`evals score vizwiz` scores as the VizWiz challenge's scorer; `--metric-variant vqav2_rule` as before."""
    out, official = evals_score(monkeypatch, capsys, "vizwiz", *vizwiz_rule_files, tmp_path / "a.json")
    assert official["scores"] == {"vqa_accuracy": 47.5} and "47.50" in out  # (0 + 0 + 100 + 90) / 4
    assert official["by_answer_type"] == {"unanswerable": 0.0, "other": 63.33}
    out, old = evals_score(monkeypatch, capsys, "vizwiz", *vizwiz_rule_files, tmp_path / "b.json", "--metric-variant", "vqav2_rule")
    assert old["scores"] == {"vqa_accuracy": 70.0} and "70.00" in out  # (90 + 100 + 0 + 90) / 4
    assert old["by_answer_type"] == {"unanswerable": 90.0, "other": 63.33}
    assert [official["per_question"][image] for image in sorted(official["per_question"])] == [c[3] for c in VIZWIZ_RULE_CASES]
    assert [old["per_question"][image] for image in sorted(old["per_question"])] == [c[4] for c in VIZWIZ_RULE_CASES]
