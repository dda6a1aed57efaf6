"""Loaders read the benchmarks' own files: VQAv2 and OK-VQA names, joins by question_id, COCO image names."""

from __future__ import annotations

import json

from evals.registry import TASKS
from tests.conftest import vqa_items, write_vqa_split


def test_annotations_joined_by_question_id_not_position(vqa_data_dir):
    root = vqa_data_dir / "vqav2"
    path = root / "v2_mscoco_val2014_annotations.json"
    payload = json.loads(path.read_text())
    payload["annotations"].reverse()  # a join by list position would now pair every question wrongly
    path.write_text(json.dumps(payload))
    examples = TASKS.get("vqav2").load(root, "val2014")
    colors = ["red", "green", "blue", "yellow"]
    for n, example in enumerate(examples):
        assert example.id == str(500 + n)
        assert example.fields["question"] == f"What color is thing {n}?"
        assert example.references == (colors[n % 4],) * 10


def test_images_follow_the_coco_file_name_rule(vqa_data_dir):
    (example,) = TASKS.get("vqav2").load(vqa_data_dir / "vqav2", "val2014")[:1]
    assert example.images[0].path == vqa_data_dir / "vqav2" / "val2014" / "COCO_val2014_000000000500.jpg"
    assert example.images[0].path.exists()


def test_okvqa_file_names(tmp_path):
    root = tmp_path / "okvqa"
    write_vqa_split(root, "val2014", vqa_items(7, 3))
    (root / "v2_OpenEnded_mscoco_val2014_questions.json").rename(root / "OpenEnded_mscoco_val2014_questions.json")
    (root / "v2_mscoco_val2014_annotations.json").rename(root / "mscoco_val2014_annotations.json")
    task = TASKS.get("okvqa")
    examples = task.read(task.source(tmp_path), "val2014")
    assert [e.id for e in examples] == ["7", "8", "9"]


def test_demo_set_is_in_official_format():
    task = TASKS.get("demo_vqa")
    support = task.read(task.source(None), task.support_split)
    queries = task.read(task.source(None), task.query_split)
    assert len(support) > 400 and len(queries) > 100
    assert not {e.id for e in support} & {e.id for e in queries}
    assert all(len(e.references) == 10 and e.images[0].path.exists() for e in queries)
    assert {e.meta["answer_type"] for e in queries} == {"yes/no", "number", "other"}


def test_shot_answer_is_the_most_common_human_answer():
    task = TASKS.get("demo_vqa")
    (example,) = [e for e in task.read(task.source(None), "val2014") if e.id == "476"]
    assert example.references.count("3") >= 5
    assert task.shot_answer(example) == "3"
