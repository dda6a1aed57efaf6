"""ScienceQA on tiny copies of its official layout (images/ beside problems.json, or the older folder-less copy)
and of its Hugging Face copy: the image subset, decisions and ties, scores with breakdowns, that a query never
shows its own solution, and one-line errors for bad problems."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from evals.errors import DataError
from evals.models import ScriptedModel
from evals.registry import PROMPT_FORMATS, TASKS
from evals.runner import RunSettings, run
from prompts import render
from tasks.base import DataSource
from tasks.scienceqa import best_choice, choice_queries
from tests.test_tasks_classification import RGB, rows, write_image


def problem(pid: int, split: str, image: str | None, answer: int = 1) -> dict:
    return {
        "question": f"Which is right for problem {pid}?", "choices": [f"wrong {pid}", f"right {pid}", f"other {pid}"],
        "answer": answer, "hint": "" if pid % 2 else f"Hint {pid}.", "image": image, "split": split,
        "subject": "natural science" if pid % 3 else "social science", "grade": f"grade{pid % 4 + 1}",
        "lecture": f"Lecture {pid}.", "solution": f"SOLUTION-{pid} explains it.",
    }


def scienceqa_tree(root: Path, images: str = "images") -> Path:
    """Six train and five test problems; problem 13 (test) and 3 (train) have no image. `images` is the folder
    the images are unzipped into beside the JSON files: "images" (tools/download.sh) or "" (an older copy)."""
    problems, splits = {}, {"train": [], "val": [], "test": []}
    for pid, split in [(p, "train") for p in range(1, 7)] + [(p, "test") for p in range(10, 15)]:
        image = None if pid in (3, 13) else "image.png"
        problems[str(pid)] = problem(pid, split, image)
        splits[split].append(pid)
        if image:
            write_image(root / images / split / str(pid) / image, pid)
    root.mkdir(parents=True, exist_ok=True)
    write_problems(root, problems)
    (root / "pid_splits.json").write_text(json.dumps(splits))
    return root


def write_problems(root: Path, problems: dict) -> None:
    (root / "problems.json").write_text(json.dumps(problems))


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


@pytest.mark.parametrize("images", ["images", ""])
def test_scienceqa_images_beside_problems_json_in_either_layout(tmp_path, images):
    root = scienceqa_tree(tmp_path / "scienceqa", images)
    queries = TASKS.get("scienceqa").read(DataSource(str(root), "files"), "test")
    assert [q.id for q in queries] == ["10", "11", "12", "14"]
    expected = root / images / "test" / "14" / "image.png"
    assert queries[-1].images[0].path == expected and expected.is_file()
    assert TASKS.get("scienceqa").layout == "problems.json, pid_splits.json, images/{split}/{pid}/{image}"


def test_scienceqa_missing_image_is_named_at_load_time(tmp_path):
    root = scienceqa_tree(tmp_path / "scienceqa")
    (root / "images" / "test" / "12" / "image.png").unlink()
    with pytest.raises(DataError, match=r"problems.json: problem 12: image file \S+/images/test/12/image.png not found$"):
        TASKS.get("scienceqa").read(DataSource(str(root), "files"), "test")


def test_scienceqa_errors_name_the_file_and_problem(tmp_path):
    root = scienceqa_tree(tmp_path / "scienceqa")
    task, source = TASKS.get("scienceqa"), DataSource(str(root), "files")
    problems = json.loads((root / "problems.json").read_text())
    problems["11"]["answer"] = 5
    write_problems(root, problems)
    with pytest.raises(DataError, match=r"problems.json: problem 11: field 'answer' 5 is not an index into its 3 choices"):
        task.read(source, "test")
    del problems["11"]
    write_problems(root, problems)
    with pytest.raises(DataError, match=r"problems.json: no problem 11 \(listed under 'test' in pid_splits.json\)"):
        task.read(source, "test")
    with pytest.raises(DataError, match=r"pid_splits.json: the top level has no field 'minival'"):
        task.read(source, "minival")


@pytest.mark.parametrize("field, value, message", [
    ("choices", None, r"field 'choices' is None, not a list of 1 to 10 strings"),
    ("choices", [], r"field 'choices' is \[\], not a list of 1 to 10 strings"),
    ("choices", ["a", 2], r"field 'choices' is \['a', 2\], not a list of 1 to 10 strings"),
    ("answer", True, r"field 'answer' True is not an index into its 3 choices"),  # bool is an int in Python
    ("answer", "1", r"field 'answer' '1' is not an index into its 3 choices"),
    ("answer", -1, r"field 'answer' -1 is not an index into its 3 choices"),
    ("image", 7, r"field 'image' is 7, not a file name or null"),
])
def test_scienceqa_bad_problem_fields_give_one_line(tmp_path, field, value, message):
    root = scienceqa_tree(tmp_path / "scienceqa")
    problems = json.loads((root / "problems.json").read_text())
    problems["12"][field] = value
    write_problems(root, problems)
    with pytest.raises(DataError, match=rf"^\S+problems.json: problem 12: {message}$") as caught:
        TASKS.get("scienceqa").read(DataSource(str(root), "files"), "test")
    assert "\n" not in str(caught.value)


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
