"""Hateful Memes on a tiny copy of the official JSONL + img/ layout (and a Hugging Face copy): P(yes) from the
two answers' scores, ROC AUC and hard-label accuracy, ties, and errors naming the file and line."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from evals.errors import ConfigError, DataError
from evals.models import ScriptedModel
from evals.records import Example
from evals.registry import TASKS
from evals.runner import RunSettings, run
from tasks.base import DataSource
from tasks.hateful_memes import hateful_probability, score_memes

WORDS = ("love", "hate")  # a meme is hateful here when its text says "hate"


def meme_rows(first_id: int, count: int) -> list[dict]:
    return [{"id": first_id + n, "img": f"img/{first_id + n:05d}.png", "text": f"i {WORDS[n % 2]} shapes", "label": n % 2}
            for n in range(count)]


def memes_tree(root: Path, dev_name: str = "dev_seen") -> Path:
    from PIL import Image

    (root / "img").mkdir(parents=True)
    for split, rows in (("train", meme_rows(100, 6)), (dev_name, meme_rows(500, 6))):
        for row in rows:
            Image.new("RGB", (16, 16), (200, 30, 30) if row["label"] else (30, 170, 60)).save(root / row["img"])
        (root / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def records(output_dir: Path, task: str, shots: int) -> list[dict]:
    (path,) = output_dir.glob(f"*/{task}/random-{shots}shot-seed0.samples.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def says_hate(prompt, candidate: str) -> float:
    """Scores the right answer higher: "yes" when the query's text says hate."""
    hateful = "i hate shapes" in prompt.text.rsplit("<image>", 1)[1]
    return 0.0 if (candidate.strip() == "yes") == hateful else -2.0


def test_memes_end_to_end_with_the_tiny_model(tmp_path, tiny_idefics):
    memes_tree(tmp_path / "data" / "hateful_memes")
    settings = RunSettings(shots=(0, 2), data_dir=tmp_path / "data", output_dir=tmp_path / "out", limit=4)
    results = run(tiny_idefics, ["hateful_memes"], settings)
    assert [set(r.scores) for r in results] == [{"roc_auc", "accuracy"}] * 2
    for shots in (0, 2):
        for r in records(tmp_path / "out", "hateful_memes", shots):
            (yes, no), = r["output"]
            assert r["prediction"]["proba"] == pytest.approx(math.exp(yes) / (math.exp(yes) + math.exp(no)))
            assert r["prediction"]["label"] == int(r["prediction"]["proba"] >= 0.5)
            assert len(r["shot_ids"]) == shots and r["score"] in (0.0, 100.0)
            assert r["prompt"].endswith(f'<image>is an image with written: "i {WORDS[int(r["id"]) % 2]} shapes" on it. Is it hateful? Answer:')


def test_scores_favouring_the_gold_answer_give_auc_100(tmp_path):
    root = memes_tree(tmp_path / "memes")
    settings = RunSettings(shots=(0, 2), sources={"hateful_memes": str(root)}, output_dir=tmp_path / "out")
    results = run(ScriptedModel(candidate_scores=says_hate), ["hateful_memes"], settings)
    assert [r.scores for r in results] == [{"roc_auc": 100.0, "accuracy": 100.0}] * 2
    probabilities = sorted({round(r["prediction"]["proba"], 12) for r in records(tmp_path / "out", "hateful_memes", 2)})
    assert probabilities == pytest.approx([1 / (1 + math.exp(2)), 1 / (1 + math.exp(-2))])
    backwards = ScriptedModel(candidate_scores=lambda p, c: -2.0 - says_hate(p, c))
    (result,) = run(backwards, ["hateful_memes"], replace(settings, shots=(0,), overwrite=True))  # another scripted model
    assert result.scores == {"roc_auc": 0.0, "accuracy": 0.0}


def test_probability_label_and_ties():
    assert hateful_probability(Example("m", (), {}), [[-1.0, -2.0]]) == {"proba": pytest.approx(0.7310585786300049), "label": 1}
    assert hateful_probability(Example("m", (), {}), [[-3.0, -3.0]]) == {"proba": 0.5, "label": 1}  # a tie says yes
    assert hateful_probability(Example("m", (), {}), [[-900.0, -1.0]])["label"] == 0  # no overflow


def test_metric_by_hand():
    examples = [Example(str(i), (), {}, (answer,)) for i, answer in enumerate(("yes", "no", "yes", "no"))]
    predictions = {str(i): {"proba": p, "label": int(p >= 0.5)} for i, p in enumerate((0.9, 0.8, 0.3, 0.1))}
    result = score_memes(predictions, examples)
    # Positive-negative pairs ranked right: (0.9, 0.8), (0.9, 0.1), (0.3, 0.1); wrong: (0.3, 0.8) -> 3/4.
    assert result.scores == {"roc_auc": 75.0, "accuracy": 50.0}
    assert result.per_sample == {"0": 100.0, "1": 0.0, "2": 0.0, "3": 100.0}
    with pytest.raises(ConfigError, match="ROC AUC needs hateful and non-hateful memes among the 2 queries"):
        score_memes(predictions, [examples[0], examples[2]])


def test_phase_one_dev_file_and_bad_records(tmp_path):
    task = TASKS.get("hateful_memes")
    root = memes_tree(tmp_path / "memes", dev_name="dev")
    dev = task.read(DataSource(str(root), "files"), "dev_seen")
    assert [e.id for e in dev] == [str(500 + n) for n in range(6)] and dev[1].references == ("yes",)
    assert dev[1].images[0].path == root / "img" / "00501.png" and dev[1].fields == {"text": "i hate shapes"}
    lines = (root / "train.jsonl").read_text().splitlines()
    (root / "train.jsonl").write_text("\n".join([lines[0], lines[1].replace('"label": 1', '"label": 2')]))
    with pytest.raises(DataError, match=r"train.jsonl: line 2: 'label' is 2, expected 0 or 1"):
        task.read(DataSource(str(root), "files"), "train")
    (root / "train.jsonl").write_text(lines[0].replace('"text"', '"caption"'))
    with pytest.raises(DataError, match=r"train.jsonl: line 1 has no field 'text'"):
        task.read(DataSource(str(root), "files"), "train")
    with pytest.raises(DataError, match=r"test_seen.jsonl: file not found"):
        task.read(DataSource(str(root), "files"), "test_seen")


def test_memes_from_a_hugging_face_dataset(tmp_path):
    import datasets
    from PIL import Image

    features = datasets.Features({"id": datasets.Value("int64"), "image": datasets.Image(), "text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["not-hateful", "hateful"])})
    rows = meme_rows(700, 4)
    part = datasets.Dataset.from_dict({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows],
                                       "label": [r["label"] for r in rows],
                                       "image": [Image.new("RGB", (8, 8)) for _ in rows]}, features=features)
    datasets.DatasetDict({"train": part, "validation": part}).save_to_disk(str(tmp_path / "hm"))
    settings = RunSettings(shots=(2,), sources={"hateful_memes": str(tmp_path / "hm")}, output_dir=tmp_path / "out")
    (result,) = run(ScriptedModel(candidate_scores=says_hate), ["hateful_memes"], settings)
    assert result.scores == {"roc_auc": 100.0, "accuracy": 100.0}
    assert [r["id"] for r in records(tmp_path / "out", "hateful_memes", 2)] == ["700", "701", "702", "703"]


def test_demo_memes_load():
    task = TASKS.get("demo_memes")
    source = task.source(None)
    support, queries = task.read(source, "train"), task.read(source, "dev_seen")
    assert len(support) == 900 and len(queries) == 50
    assert {q.references[0] for q in queries} == {"yes", "no"}
