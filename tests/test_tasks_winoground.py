"""Winoground: examples.jsonl and its Hugging Face copy, two prompts per example, strict text/image/group scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from evals.errors import DataError
from evals.models import ScriptedModel
from evals.records import Example
from evals.registry import TASKS
from evals.runner import RunSettings, run
from metrics.ranking import PairScores

COUNT = 6
TAGS = ("Object", "Relation")


def captions(n: int) -> tuple[str, str]:
    return f"red over blue {n}", f"blue over red {n}"


def rows() -> list[dict]:
    return [
        {"id": n, "caption_0": captions(n)[0], "caption_1": captions(n)[1], "image_0": f"ex_{n}_img_0",
         "image_1": f"ex_{n}_img_1", "tag": TAGS[n % 2], "secondary_tag": "Symbolic", "num_main_preds": 1,
         "collapsed_tag": TAGS[n % 2]}
        for n in range(COUNT)
    ]


def write_winoground(root: Path, lines: list[str] | None = None) -> Path:
    """A DATA_DIR with a tiny `winoground/` folder in the official layout (or the given jsonl lines)."""
    folder = root / "winoground"
    (folder / "images").mkdir(parents=True)
    for n in range(COUNT):
        for i in (0, 1):
            Image.new("RGB", (32, 32), (200, 40 * i, 30)).save(folder / "images" / f"ex_{n}_img_{i}.png")
    lines = lines if lines is not None else [json.dumps(r) for r in rows()]
    (folder / "examples.jsonl").write_text("".join(line + "\n" for line in lines))
    return root


def matching_model(bias_image_0: float = 0.0) -> ScriptedModel:
    """Scores 1 where the caption describes the image, 0 where not, plus `bias_image_0` for every caption
    shown with image 0 (which breaks the image test but not the text test)."""
    def score(prompt, candidate: str) -> float:
        image = prompt.images[-1].id  # "ex_<n>_img_<i>"
        n, i = int(image.split("_")[1]), int(image[-1])
        return float(candidate.strip() == captions(n)[i]) + (bias_image_0 if i == 0 else 0.0)

    return ScriptedModel(candidate_scores=score)


def cell(model, tmp_path: Path, **settings):
    data_dir = settings.pop("data_dir", None) or write_winoground(tmp_path)
    (result,) = run(model, ["winoground"], RunSettings(shots=(0,), data_dir=data_dir, output_dir=tmp_path / "out", **settings))
    return result


def test_examples_and_their_two_image_prompts(tmp_path):
    task = TASKS.get("winoground")
    examples = task.read(task.source(write_winoground(tmp_path)), "test")
    assert [e.id for e in examples] == [str(n) for n in range(COUNT)]
    example = examples[1]
    assert example.fields == {"caption_0": "red over blue 1", "caption_1": "blue over red 1"}
    assert example.images[1].path == tmp_path / "winoground/images/ex_1_img_1.png"
    assert example.meta["collapsed_tag"] == "Relation"
    views = task.rank_queries(example)
    assert [v.example.images for v in views] == [(example.images[0],), (example.images[1],)]
    assert all(v.candidates == ("red over blue 1", "blue over red 1") for v in views)


def test_decide_names_each_score_by_caption_and_image():
    example = Example("0", (), dict(zip(("caption_0", "caption_1"), captions(0))))
    scores = [[1.0, 2.0], [3.0, 4.0]]  # [[c0|i0, c1|i0], [c0|i1, c1|i1]], as image_views orders them
    assert TASKS.get("winoground").decide(example, scores) == PairScores(c0_i0=1.0, c0_i1=3.0, c1_i0=2.0, c1_i1=4.0)


def test_tiny_model_runs_only_the_zero_shot_cell(tmp_path, tiny_idefics):
    data_dir = write_winoground(tmp_path)
    results = run(tiny_idefics, ["winoground"], RunSettings(shots=(0, 4), data_dir=data_dir, output_dir=tmp_path / "out"))
    assert [r.shots for r in results] == [0]
    assert set(results[0].scores) == {"text", "image", "group"}
    assert sorted(p.name for p in (tmp_path / "out").glob("*/winoground/*.samples.jsonl")) == ["random-0shot-seed0.samples.jsonl"]
    (path,) = (tmp_path / "out").glob("*/winoground/random-0shot-seed0.samples.jsonl")
    for row in map(json.loads, path.read_text().splitlines()):
        assert row["prompt"] == ["<image>Description of the image:"] * 2 and row["shot_ids"] == []
        assert [len(scores) for scores in row["output"]] == [2, 2]
        (c0_i0, c1_i0), (c0_i1, c1_i1) = row["output"]
        assert row["prediction"] == {"c0_i0": c0_i0, "c0_i1": c0_i1, "c1_i0": c1_i0, "c1_i1": c1_i1}
        assert row["score"] in (0.0, 100.0)


def test_matching_scores_give_100_everywhere(tmp_path):
    result = cell(matching_model(), tmp_path)
    assert result.scores == {"text": 100.0, "image": 100.0, "group": 100.0}
    assert result.breakdowns == {"group_by_tag": {"Object": 100.0, "Relation": 100.0}}


def test_ties_are_wrong(tmp_path):
    """The scripted model's default scores a caption by minus its length: both captions tie everywhere."""
    assert cell(ScriptedModel(), tmp_path).scores == {"text": 0.0, "image": 0.0, "group": 0.0}


def test_text_and_image_are_not_swapped(tmp_path):
    """Image 0 favoured for every caption: each image still prefers its caption (text holds), but caption 1
    prefers image 0 (image fails), so no group."""
    assert cell(matching_model(bias_image_0=10.0), tmp_path).scores == {"text": 100.0, "image": 0.0, "group": 0.0}


def test_hugging_face_copy(tmp_path):
    import datasets

    columns = {key: [r[key] for r in rows()] for key in ("id", "caption_0", "caption_1", "tag", "collapsed_tag")}
    columns.update({f"image_{i}": [Image.new("RGB", (32, 32), (200, 40 * i, 30)) for _ in range(COUNT)] for i in (0, 1)})
    features = datasets.Features({
        "id": datasets.Value("int32"), "caption_0": datasets.Value("string"), "caption_1": datasets.Value("string"),
        "tag": datasets.Value("string"), "collapsed_tag": datasets.Value("string"),
        "image_0": datasets.Image(), "image_1": datasets.Image(),
    })
    folder = tmp_path / "hf_winoground"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(columns, features=features)}).save_to_disk(str(folder))
    result = cell(matching_model(), tmp_path, data_dir=tmp_path, sources={"winoground": str(folder)})
    assert result.scores == {"text": 100.0, "image": 100.0, "group": 100.0}
    task = TASKS.get("winoground")
    example = task.read(task.source(None, str(folder)), "test")[2]
    assert [i.id for i in example.images] == ["ex_2_img_0", "ex_2_img_1"]
    assert example.meta["collapsed_tag"] == "Object" and example.fields["caption_1"] == "blue over red 2"


@pytest.mark.parametrize(("line", "message"), [
    (json.dumps({k: v for k, v in rows()[1].items() if k != "caption_1"}), r"examples.jsonl: line 2 has no field 'caption_1'"),
    ('{"id": 1, "caption_0": ', r"examples.jsonl: line 2 is malformed JSON"),
    (json.dumps(rows()[0]), r"examples.jsonl: line 2 repeats id 0"),
])
def test_bad_lines_name_the_file_and_line(tmp_path, line, message):
    data_dir = write_winoground(tmp_path, [json.dumps(rows()[0]), line])
    task = TASKS.get("winoground")
    with pytest.raises(DataError, match=message):
        task.read(task.source(data_dir), "test")


def test_only_the_test_split_exists(tmp_path):
    task = TASKS.get("winoground")
    with pytest.raises(DataError, match="only the 'test' split"):
        task.read(task.source(write_winoground(tmp_path)), "train")
