"""ImageNet and Rendered SST2 on tiny copies of their official layouts (and Hugging Face copies): loading,
class-folder checks, the class-balanced support, decisions and ties, and scores (ScienceQA: test_tasks_scienceqa.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from evals.errors import DataError
from evals.models import ScriptedModel
from evals.records import Example
from evals.registry import PROMPT_FORMATS, TASKS
from evals.runner import RunSettings, run
from tasks.base import DataSource
from tasks.classification import interleave_classes, top1_and_top5

IMAGENET_CLASSES = {"n01": "goldfish", "n02": "tabby cat", "n03": "school bus", "n04": "red wine"}
RGB = [(200, 30, 30), (30, 170, 60), (40, 70, 220), (235, 215, 40)]


def write_image(path: Path, index: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), RGB[index % len(RGB)]).save(path)


def imagenet_tree(root: Path, names: str = "txt", train: int = 3, val: int = 2) -> Path:
    """train/<wnid>/*.JPEG, val/<wnid>/*.JPEG and the class names as classnames.txt or classnames.json."""
    for index, wnid in enumerate(IMAGENET_CLASSES):
        for n in range(train):
            write_image(root / "train" / wnid / f"{wnid}_{n}.JPEG", index)
        for n in range(val):
            write_image(root / "val" / wnid / f"ILSVRC2012_val_{index * 10 + n:08d}.JPEG", index)
    if names == "txt":
        (root / "classnames.txt").write_text("".join(f"{name}\n" for name in IMAGENET_CLASSES.values()))
    else:
        (root / "classnames.json").write_text(json.dumps(IMAGENET_CLASSES))
    return root


def sst2_tree(root: Path) -> Path:
    for split, count in (("train", 3), ("test", 3)):
        for index, sentiment in enumerate(("negative", "positive")):
            for n in range(count):
                write_image(root / split / sentiment / f"{index * 100 + n}.png", index)
    return root


def rows(output_dir: Path, task: str, shots: int) -> list[dict]:
    (path,) = output_dir.glob(f"*/{task}/random-{shots}shot-seed0.samples.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


IMAGENET_TEMPLATE = PROMPT_FORMATS.get("idefics").template("imagenet")  # scored: " <name>" and the closing text


def imagenet_truth(prompt, candidate: str) -> float:
    """Prefers the class of the query image (its id is val/<wnid>/<stem>)."""
    gold = IMAGENET_CLASSES[prompt.images[-1].id.split("/")[1]]
    return 0.0 if candidate == IMAGENET_TEMPLATE.continuation(gold) else -1.0


# ImageNet

def test_imagenet_end_to_end_with_the_tiny_model(tmp_path, tiny_idefics):
    imagenet_tree(tmp_path / "data" / "imagenet")
    settings = RunSettings(shots=(0, 2), data_dir=tmp_path / "data", output_dir=tmp_path / "out", limit=4, batch_size=3)
    zero, two = run(tiny_idefics, ["imagenet"], settings)
    assert set(zero.scores) == set(two.scores) == {"accuracy", "top5_accuracy"}
    assert zero.protocol.support_split == "train_32_per_class" and zero.protocol.n_queries == 4
    for shots in (0, 2):
        records = rows(tmp_path / "out", "imagenet", shots)
        # The limit takes a class-balanced prefix: one query of each class, not the first class's images.
        assert sorted(r["id"].split("/")[1] for r in records) == sorted(IMAGENET_CLASSES)
        for r in records:
            assert len(r["shot_ids"]) == shots and all(s.startswith("train/") for s in r["shot_ids"])
            assert len(r["output"]) == 1 and len(r["output"][0]) == 4
            assert sorted(r["prediction"]["top5"]) == sorted(IMAGENET_CLASSES.values())
            assert r["prediction"]["label"] == r["prediction"]["top5"][0]
            assert r["prompt"].endswith("a photo of a") and r["score"] in (0.0, 100.0)


@pytest.mark.parametrize("names", ["txt", "json"])
def test_imagenet_scores_the_gold_class_first_as_100(tmp_path, names):
    imagenet_tree(tmp_path / "imagenet", names=names)
    settings = RunSettings(shots=(0, 2), sources={"imagenet": str(tmp_path / "imagenet")}, output_dir=tmp_path / "out")
    results = run(ScriptedModel(candidate_scores=imagenet_truth), ["imagenet"], settings)
    assert [r.scores for r in results] == [{"accuracy": 100.0, "top5_accuracy": 100.0}] * 2
    # Gold always second best: top-1 is never right, top-5 always is.
    second = ScriptedModel(candidate_scores=lambda p, c: {0.0: -0.5, -1.0: -2.0}[imagenet_truth(p, c)] + 2 * (c == IMAGENET_TEMPLATE.continuation("goldfish")))
    (result,) = run(second, ["imagenet"], replace(settings, shots=(0,), overwrite=True))  # another scripted model
    assert result.scores == {"accuracy": 25.0, "top5_accuracy": 100.0}  # only goldfish queries are right


def test_tied_scores_pick_the_earlier_class_deterministically(tmp_path):
    imagenet_tree(tmp_path / "imagenet")
    settings = RunSettings(shots=(0,), sources={"imagenet": str(tmp_path / "imagenet")}, output_dir=tmp_path / "out")
    (result,) = run(ScriptedModel(candidate_scores=lambda p, c: 0.0), ["imagenet"], settings)
    names = list(IMAGENET_CLASSES.values())
    assert {r["prediction"]["label"] for r in rows(tmp_path / "out", "imagenet", 0)} == {"goldfish"}
    assert result.scores == {"accuracy": 25.0, "top5_accuracy": 100.0}
    example = Example("q", (), {}, ("school bus",), {"classes": run_classes_key(tmp_path)})
    assert top1_and_top5(example, [[-3.0, -1.0, -1.0, -2.0]]) == {"label": names[1], "top5": [names[1], names[2], names[3], names[0]]}


def run_classes_key(tmp_path: Path) -> str:
    (first, *_) = TASKS.get("imagenet").read(DataSource(str(tmp_path / "imagenet"), "files"), "val")
    return first.meta["classes"]


def test_support_is_class_balanced_and_splits_interleave_classes(tmp_path):
    root = imagenet_tree(tmp_path / "imagenet", train=5, val=1)
    task = TASKS.get("imagenet")
    support = task.read(DataSource(str(root), "files"), "train_2_per_class")
    assert [e.id for e in support] == [f"train/{w}/{w}_{n}" for n in range(2) for w in IMAGENET_CLASSES]
    assert support[0].references == ("goldfish",) and support[1].images[0].path == root / "train" / "n02" / "n02_0.JPEG"
    assert len(task.read(DataSource(str(root), "files"), "train")) == 20
    examples = [Example(f"{label}{n}", (), {}, (label,)) for label, n in (("a", 0), ("a", 1), ("a", 2), ("b", 0), ("c", 0), ("c", 1))]
    assert [e.id for e in interleave_classes(examples, None)] == ["a0", "b0", "c0", "a1", "c1", "a2"]
    assert [e.id for e in interleave_classes(examples, 1)] == ["a0", "b0", "c0"]


def test_class_folders_that_disagree_with_the_names_file_are_named(tmp_path):
    task = TASKS.get("imagenet")
    root = imagenet_tree(tmp_path / "txt")
    (root / "classnames.txt").write_text("goldfish\ntabby cat\nschool bus\n")
    with pytest.raises(DataError, match=r"txt/train: 4 class folders but .*classnames.txt lists 3 class names"):
        task.read(DataSource(str(root), "files"), "train")
    root = imagenet_tree(tmp_path / "json", names="json")
    (root / "classnames.json").write_text(json.dumps({**IMAGENET_CLASSES, "n05": "zebra"}))
    with pytest.raises(DataError, match=r"json/val: no class folder for 'n05' of .*classnames.json"):
        task.read(DataSource(str(root), "files"), "val")
    (root / "classnames.json").write_text(json.dumps({"n01": "goldfish", "n02": "tabby cat", "n03": "school bus", "n99": "x"}))
    with pytest.raises(DataError, match=r"json/val: class folder 'n04' is not in .*classnames.json"):
        task.read(DataSource(str(root), "files"), "val")
    (root / "classnames.json").write_text(json.dumps({**IMAGENET_CLASSES, "n04": "goldfish"}))
    with pytest.raises(DataError, match="classes n01, n04 share the name 'goldfish'"):
        task.read(DataSource(str(root), "files"), "val")
    (root / "classnames.json").unlink()
    with pytest.raises(DataError, match=r"json: no class-name file \(classnames.json or classnames.txt\)"):
        task.read(DataSource(str(root), "files"), "val")


def test_demo_classification_set_loads():
    task = TASKS.get("demo_classify")
    source = task.source(None)
    support, queries = task.read(source, task.support_split), task.read(source, task.query_split)
    assert len(support) == 256 and len(queries) == 40  # the support split is train_32_per_class
    assert [q.references[0] for q in queries[:8]] == [
        "red circle", "red square", "green triangle", "green circle", "blue square", "blue triangle", "yellow circle",
        "yellow triangle"]


# Rendered SST2

def test_rendered_sst2_end_to_end_and_gold_scores_100(tmp_path, tiny_idefics):
    sst2_tree(tmp_path / "data" / "rendered_sst2")
    settings = RunSettings(shots=(0, 2), data_dir=tmp_path / "data", output_dir=tmp_path / "tiny", limit=4)
    results = run(tiny_idefics, ["rendered_sst2"], settings)
    assert [set(r.scores) for r in results] == [{"accuracy"}] * 2
    for shots in (0, 2):
        records = rows(tmp_path / "tiny", "rendered_sst2", shots)
        assert [r["id"].split("/")[1] for r in records] == ["negative", "positive"] * 2
        assert all(r["prediction"]["label"] in ("negative", "positive") and len(r["shot_ids"]) == shots for r in records)
        assert all(r["prompt"].endswith("Sentiment:") for r in records)
    truth = ScriptedModel(candidate_scores=lambda p, c: float(c.strip() == p.images[-1].id.split("/")[1]))
    assert [r.scores for r in run(truth, ["rendered_sst2"], replace(settings, output_dir=tmp_path / "s"))] == [{"accuracy": 100.0}] * 2


def test_rendered_sst2_needs_exactly_its_two_class_folders(tmp_path):
    root = sst2_tree(tmp_path / "sst2")
    (root / "test" / "neutral").mkdir()
    with pytest.raises(DataError, match=r"sst2/test: class folders \['negative', 'neutral', 'positive'\], expected"):
        TASKS.get("rendered_sst2").read(DataSource(str(root), "files"), "test")


# Hugging Face copies of the class-folder benchmarks

def save_class_dataset(folder: Path, names: list[str], labels: dict[str, list[int]]) -> None:
    import datasets
    from PIL import Image

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    parts = {
        split: datasets.Dataset.from_dict(
            {"image": [Image.new("RGB", (8, 8), RGB[i]) for i in ids], "label": ids}, features=features)
        for split, ids in labels.items()
    }
    datasets.DatasetDict(parts).save_to_disk(str(folder))


def test_imagenet_and_sst2_from_hugging_face_datasets(tmp_path):
    from evals.images import load_image

    names = list(IMAGENET_CLASSES.values())
    save_class_dataset(tmp_path / "imagenet", names, {"train": [0, 0, 1, 2, 3, 1], "validation": [3, 2]})
    task = TASKS.get("imagenet")
    source = task.source(None, override=str(tmp_path / "imagenet"))
    support, queries = task.read(source, "train_1_per_class"), task.read(source, "val")
    assert source.kind == "hf" and [e.id for e in support] == ["train/0", "train/2", "train/3", "train/4"]
    assert [q.references[0] for q in queries] == ["red wine", "school bus"]
    assert load_image(queries[0].images[0]).getpixel((0, 0)) == RGB[3]
    assert top1_and_top5(queries[0], [[0.0, 0.0, 0.0, 1.0]])["label"] == "red wine"
    save_class_dataset(tmp_path / "sst2", ["negative", "positive"], {"train": [0, 1], "validation": [1], "test": [1, 0]})
    sst2 = TASKS.get("rendered_sst2")
    tests = sst2.read(sst2.source(None, override=str(tmp_path / "sst2")), "test")
    assert [(e.id, e.references[0]) for e in tests] == [("test/0", "positive"), ("test/1", "negative")]


def test_hugging_face_label_outside_the_classes_is_named(tmp_path):
    import datasets
    from PIL import Image

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    test = datasets.Dataset.from_dict({"image": [Image.new("RGB", (8, 8))], "label": [-1]}, features=features)
    datasets.DatasetDict({"train": test, "validation": test}).save_to_disk(str(tmp_path / "unlabelled"))
    task = TASKS.get("imagenet")
    with pytest.raises(DataError, match=r"unlabelled \[validation\] row 0: label -1 is not a class index 0..1"):
        task.read(task.source(None, override=str(tmp_path / "unlabelled")), "val")
