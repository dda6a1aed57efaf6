"""ImageNet, Rendered SST2 and ScienceQA on tiny copies of their official layouts (and Hugging Face copies):
loading, class-folder checks, the class-balanced support, decisions and ties, scores, and that a
ScienceQA query never shows its own solution."""

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
from prompts import render
from tasks.base import DataSource
from tasks.classification import interleave_classes, top1_and_top5
from tasks.scienceqa import best_choice, choice_queries

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


def imagenet_truth(prompt, candidate: str) -> float:
    """Prefers the class of the query image (its id is val/<wnid>/<stem>)."""
    return 0.0 if candidate.strip() == IMAGENET_CLASSES[prompt.images[-1].id.split("/")[1]] else -1.0


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
    second = ScriptedModel(candidate_scores=lambda p, c: {0.0: -0.5, -1.0: -2.0}[imagenet_truth(p, c)] + 2 * (c == " goldfish"))
    (result,) = run(second, ["imagenet"], replace(settings, shots=(0,)))
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
    assert len(support) == 160 and len(queries) == 40
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


# ScienceQA

def problem(pid: int, split: str, image: str | None, answer: int = 1) -> dict:
    return {
        "question": f"Which is right for problem {pid}?", "choices": [f"wrong {pid}", f"right {pid}", f"other {pid}"],
        "answer": answer, "hint": "" if pid % 2 else f"Hint {pid}.", "image": image, "split": split,
        "subject": "natural science" if pid % 3 else "social science", "grade": f"grade{pid % 4 + 1}",
        "lecture": f"Lecture {pid}.", "solution": f"SOLUTION-{pid} explains it.",
    }


def scienceqa_tree(root: Path) -> Path:
    """Six train and five test problems; problem 13 (test) and 3 (train) have no image."""
    problems, splits = {}, {"train": [], "val": [], "test": []}
    for pid, split in [(p, "train") for p in range(1, 7)] + [(p, "test") for p in range(10, 15)]:
        image = None if pid in (3, 13) else "image.png"
        problems[str(pid)] = problem(pid, split, image)
        splits[split].append(pid)
        if image:
            write_image(root / split / str(pid) / image, pid)
    root.mkdir(parents=True, exist_ok=True)
    (root / "problems.json").write_text(json.dumps(problems))
    (root / "pid_splits.json").write_text(json.dumps(splits))
    return root


def right_choice(prompt, candidate: str) -> float:
    return float(candidate.strip().startswith("right"))


def test_scienceqa_end_to_end_image_subset(tmp_path, tiny_idefics):
    scienceqa_tree(tmp_path / "data" / "scienceqa")
    settings = RunSettings(shots=(0, 2), data_dir=tmp_path / "data", output_dir=tmp_path / "out", limit=3)
    zero, two = run(tiny_idefics, ["scienceqa"], settings)
    assert zero.protocol.n_queries == 3 and set(zero.scores) == {"accuracy"} and "by_subject" in two.breakdowns
    for shots in (0, 2):
        records = rows(tmp_path / "out", "scienceqa", shots)
        assert [r["id"] for r in records] == ["10", "11", "12"]
        assert all(len(r["shot_ids"]) == shots and "3" not in r["shot_ids"] for r in records)
        assert all(r["prediction"]["label"].split()[-1] == r["id"] for r in records)
        assert records[0]["prompt"].endswith(
            "Question: Which is right for problem 10?\nContext: Hint 10.\nOptions: (A) wrong 10 (B) right 10 (C) other 10\n"
            "Answer: The correct answer is")


def test_scienceqa_gold_scores_100_with_breakdowns(tmp_path):
    root = scienceqa_tree(tmp_path / "scienceqa")
    settings = RunSettings(shots=(0, 2), sources={"scienceqa": str(root)}, output_dir=tmp_path / "out")
    results = run(ScriptedModel(candidate_scores=right_choice), ["scienceqa"], settings)
    assert [r.scores for r in results] == [{"accuracy": 100.0}] * 2
    assert results[0].breakdowns == {"by_subject": {"natural science": 100.0, "social science": 100.0},
                                     "by_grade": {"grade1": 100.0, "grade3": 100.0, "grade4": 100.0}}
    (query,) = [e for e in TASKS.get("scienceqa").read(DataSource(str(root), "files"), "test") if e.id == "10"]
    assert best_choice(query, [[-1.0, -1.0, -2.0]]) == {"label": "wrong 10", "index": 0}  # a tie goes to the first choice
    assert best_choice(query, [[-3.0, -0.5, -2.0]]) == {"label": "right 10", "index": 1}


def test_scienceqa_query_never_shows_its_solution(tmp_path):
    root = scienceqa_tree(tmp_path / "scienceqa")
    settings = RunSettings(shots=(2,), sources={"scienceqa_explained": str(root)}, output_dir=tmp_path / "out")
    run(ScriptedModel(candidate_scores=right_choice), ["scienceqa_explained"], settings)
    for record in rows(tmp_path / "out", "scienceqa_explained", 2):
        assert f"SOLUTION-{record['id']} " not in record["prompt"]
        assert all(f"SOLUTION-{shot} explains it." in record["prompt"] for shot in record["shot_ids"])
    # Even a template that puts the solution before the answer cannot show the query's own.
    (query, *_) = TASKS.get("scienceqa").read(DataSource(str(root), "files"), "test")
    leaky = replace(PROMPT_FORMATS.get("idefics").template("scienceqa"), example="<image>{question} {solution} Answer: {answer}")
    assert "SOLUTION" not in render(leaky, [], choice_queries(query)[0].example).text
    assert query.fields["solution"] == "SOLUTION-10 explains it."


def test_scienceqa_errors_name_the_file_and_problem(tmp_path):
    root = scienceqa_tree(tmp_path / "scienceqa")
    task, source = TASKS.get("scienceqa"), DataSource(str(root), "files")
    problems = json.loads((root / "problems.json").read_text())
    problems["11"]["answer"] = 5
    (root / "problems.json").write_text(json.dumps(problems))
    with pytest.raises(DataError, match=r"problems.json: problem 11: 'answer' 5 is not an index into its 3 choices"):
        task.read(source, "test")
    del problems["11"]
    (root / "problems.json").write_text(json.dumps(problems))
    with pytest.raises(DataError, match=r"problems.json: no problem 11 \(listed under 'test' in pid_splits.json\)"):
        task.read(source, "test")
    with pytest.raises(DataError, match=r"pid_splits.json: the top level has no field 'minival'"):
        task.read(source, "minival")


def test_scienceqa_from_a_hugging_face_dataset_keeps_the_image_subset(tmp_path):
    import datasets
    from PIL import Image

    features = datasets.Features({
        "image": datasets.Image(), "question": datasets.Value("string"), "choices": datasets.Sequence(datasets.Value("string")),
        "answer": datasets.Value("int8"), "hint": datasets.Value("string"), "solution": datasets.Value("string"),
        "subject": datasets.Value("string"), "grade": datasets.Value("string"),
    })
    rows_ = [problem(pid, "test", None) for pid in (2, 1, 3)]
    columns = {key: [r[key] for r in rows_] for key in ("question", "choices", "answer", "hint", "solution", "subject", "grade")}
    images = [Image.new("RGB", (8, 8), RGB[0]), None, Image.new("RGB", (8, 8), RGB[1])]
    part = datasets.Dataset.from_dict({**columns, "image": images}, features=features)
    datasets.DatasetDict({"train": part, "test": part}).save_to_disk(str(tmp_path / "sqa"))
    task = TASKS.get("scienceqa")
    queries = task.read(task.source(None, override=str(tmp_path / "sqa")), "test")
    assert [q.id for q in queries] == ["test/0", "test/2"]
    assert queries[1].references == ("right 3",) and queries[1].fields["context"] == ""
    assert queries[0].fields["context"] == "\nContext: Hint 2." and queries[0].meta["subject"] == "natural science"
