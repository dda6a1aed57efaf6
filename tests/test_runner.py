"""The pipeline with the scripted model: shot selection invariance, records, postprocessing."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from evals.errors import ConfigError
from evals.models import ScriptedModel
from evals.records import Example, ImageRef
from evals.registry import TASKS
from evals.runner import RunSettings, run
from evals.selection import RandomSelector

SUPPORT = [Example(f"s{i}", (ImageRef(f"i{i}", Path("x.jpg")),), {"question": "q"}) for i in range(50)]
QUERIES = [Example(f"q{i}", (ImageRef(f"j{i}", Path("y.jpg")),), {"question": "q"}) for i in range(20)]


def test_selection_ignores_query_order_and_support_file_order():
    selector = RandomSelector("t", SUPPORT)
    reordered = RandomSelector("t", list(reversed(SUPPORT)))
    first = {q.id: selector.select(q, 4, seed=0) for q in QUERIES}
    shuffled = random.Random(1).sample(QUERIES, len(QUERIES))
    assert {q.id: reordered.select(q, 4, seed=0) for q in shuffled} == first


def test_selection_depends_on_seed_and_query():
    selector = RandomSelector("t", SUPPORT)
    assert selector.select(QUERIES[0], 4, 0) != selector.select(QUERIES[0], 4, 1)
    assert selector.select(QUERIES[0], 4, 0) != selector.select(QUERIES[1], 4, 0)
    assert len(set(selector.select(QUERIES[0], 8, 0))) == 8


def test_query_is_never_its_own_shot():
    selector = RandomSelector("t", SUPPORT)
    for query in SUPPORT:
        shots = selector.select(query, len(SUPPORT) - 1, seed=3)
        assert query.id not in shots and len(shots) == len(SUPPORT) - 1
    with pytest.raises(ConfigError, match="support set has 49"):
        selector.select(SUPPORT[0], 50, seed=0)


def sample_rows(output_dir: Path, shots: int) -> dict[str, dict]:
    (path,) = output_dir.glob(f"*/demo_vqa/random-{shots}shot-seed0.samples.jsonl")
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_shots_and_prompts_identical_across_batch_size_and_order(tmp_path, monkeypatch):
    task = TASKS.get("demo_vqa")
    loader = task.load
    outputs = {}
    for name, batch_size, reverse in (("a", 1, False), ("b", 7, True)):
        def load(root, split, reverse=reverse):
            examples = loader(root, split)
            return list(reversed(examples)) if reverse else examples

        monkeypatch.setitem(TASKS._entries, "demo_vqa", replace(task, load=load))
        run(ScriptedModel(), ["demo_vqa"], RunSettings(shots=(0, 4), batch_size=batch_size, output_dir=tmp_path / name))
        outputs[name] = {k: sample_rows(tmp_path / name, k) for k in (0, 4)}
    for shots in (0, 4):
        a, b = outputs["a"][shots], outputs["b"][shots]
        assert a.keys() == b.keys()
        assert all(a[i]["shot_ids"] == b[i]["shot_ids"] and a[i]["prompt"] == b[i]["prompt"] for i in a)
        assert all(len(row["shot_ids"]) == (2 if shots == 0 else 4) for row in a.values())


def test_records_have_the_documented_keys(tmp_path):
    model = ScriptedModel(default="Yes.\nQuestion: next")
    (result,) = run(model, ["demo_vqa"], RunSettings(shots=(4,), limit=10, output_dir=tmp_path))
    (record_path,) = tmp_path.glob("*/demo_vqa/random-4shot-seed0.json")
    record = json.loads(record_path.read_text())
    for key in ("task", "shots", "selection", "seed", "scores", "protocol", "schema_version"):
        assert key in record
    assert record["scores"] == result.scores and "vqa_accuracy" in record["scores"]
    rows = sample_rows(tmp_path, 4)
    assert len(rows) == 10
    row = next(iter(rows.values()))
    assert set(row) >= {"id", "shot_ids", "prompt", "output", "prediction", "score"}
    assert row["output"] == "Yes.\nQuestion: next" and row["prediction"] == "yes"  # cut at the turn, EvalAI-processed
    assert record["protocol"]["template_hash"] and record["protocol"]["prompt_format"] == "idefics"


def test_score_reflects_predictions(tmp_path):
    task = TASKS.get("demo_vqa")
    truth = {e.images[0].id + e.fields["question"]: e.references[0] for e in task.read(task.source(None), "val2014")}

    def oracle(prompt):
        return truth[prompt.images[-1].id + prompt.text.rsplit("Question: ", 1)[1].split(" Short answer:")[0]]

    perfect, = run(ScriptedModel(oracle), ["demo_vqa"], RunSettings(shots=(4,), output_dir=tmp_path / "o"))
    constant, = run(ScriptedModel(default="purple"), ["demo_vqa"], RunSettings(shots=(4,), output_dir=tmp_path / "c"))
    assert perfect.scores["vqa_accuracy"] > 90
    assert constant.scores["vqa_accuracy"] == 0.0


def test_more_shots_than_support_fails_before_any_model_call(tmp_path):
    model = ScriptedModel()
    with pytest.raises(ConfigError, match="5000 shots requested"):
        run(model, ["demo_vqa"], RunSettings(shots=(5000,), output_dir=tmp_path))
    assert model.seen == []
