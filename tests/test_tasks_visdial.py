"""VisDial v1.0: the official files read into dense-round queries and train shots, ranking end to end, NDCG."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from evals.errors import DataError
from evals.models import ScriptedModel
from evals.registry import PROMPT_FORMATS, TASKS
from evals.runner import RunSettings, run

ANSWERS = [f"answer {i}" for i in range(110)]
QUESTIONS = ["is it sunny", "how many dogs are there", "what color is the car"]
TRAIN_IDS = (11, 12, 13)  # 12's image sits in COCO val2014, as some VisDial train images do
VAL_IDS = (21, 22)
DENSE_ROUND = 2


def options_of(image_id: int, round_id: int) -> list[int]:
    """100 distinct answer indices for a round, and the true answer at position (image_id + round_id) % 100."""
    return [(image_id * 7 + round_id * 3 + j) % len(ANSWERS) for j in range(100)]


def gt_index(image_id: int, round_id: int) -> int:
    return (image_id + round_id) % 100


def dialog(image_id: int) -> dict:
    rounds = [
        {"question": r - 1, "answer": options_of(image_id, r)[gt_index(image_id, r)], "answer_options": options_of(image_id, r),
         "gt_index": gt_index(image_id, r)}
        for r in (1, 2, 3)
    ]
    return {"image_id": image_id, "caption": f"a dog on couch {image_id}.", "dialog": rounds}


def relevance(image_id: int) -> list[float]:
    """The true answer 1, the option after it 0.5, the rest 0."""
    rel = [0.0] * 100
    rel[gt_index(image_id, DENSE_ROUND)] = 1.0
    rel[(gt_index(image_id, DENSE_ROUND) + 1) % 100] = 0.5
    return rel


def write_visdial(root: Path, edit=None) -> Path:
    """A DATA_DIR with a tiny `visdial/` folder in the official layout; `edit(files)` may break it first."""
    folder = root / "visdial"
    files = {
        "visdial_1.0_train.json": {"version": "1.0", "split": "train",
                                   "data": {"questions": QUESTIONS, "answers": ANSWERS, "dialogs": [dialog(i) for i in TRAIN_IDS]}},
        "visdial_1.0_val.json": {"version": "1.0", "split": "val",
                                 "data": {"questions": QUESTIONS, "answers": ANSWERS, "dialogs": [dialog(i) for i in VAL_IDS]}},
        "visdial_1.0_val_dense_annotations.json": [
            {"image_id": i, "round_id": DENSE_ROUND, "gt_relevance": relevance(i)} for i in VAL_IDS
        ],
    }
    if edit:
        edit(files)
    images = [f"train2014/COCO_train2014_{i:012d}.jpg" for i in (11, 13)] + ["val2014/COCO_val2014_000000000012.jpg"]
    images += [f"VisualDialog_val2018/VisualDialog_val2018_{i:012d}.jpg" for i in VAL_IDS]
    for name in images:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (40, 90, 200)).save(folder / name)
    for name, payload in files.items():
        (folder / name).write_text(json.dumps(payload))
    return root


def read(data_dir: Path, split: str):
    task = TASKS.get("visdial")
    return task.read(task.source(data_dir), split)


def test_val_query_is_the_dense_round_with_its_history(tmp_path):
    queries = read(write_visdial(tmp_path), "val")
    assert [q.id for q in queries] == ["21", "22"]
    query = queries[0]
    first_answer = ANSWERS[options_of(21, 1)[gt_index(21, 1)]]
    assert query.fields == {"caption": "a dog on couch 21", "history": f"Question: is it sunny? Answer: {first_answer}. ",
                            "question": "how many dogs are there?"}
    (view,) = TASKS.get("visdial").rank_queries(query)
    assert view.candidates == tuple(ANSWERS[i] for i in options_of(21, DENSE_ROUND))
    assert query.references == (view.candidates[gt_index(21, DENSE_ROUND)],)
    assert query.meta["round_id"] == "2"
    assert query.images[0].path == tmp_path / "visdial/VisualDialog_val2018/VisualDialog_val2018_000000000021.jpg"


def test_train_dialogs_give_one_shot_round_each_with_coco_images(tmp_path):
    shots = {s.id: s for s in read(write_visdial(tmp_path), "train")}
    task = TASKS.get("visdial")
    # the shown round is image_id % rounds + 1: 11 -> round 3, 12 -> round 1
    assert shots["11"].fields["question"] == "what color is the car?" and shots["11"].fields["history"].count("Question:") == 2
    assert shots["12"].fields == {"caption": "a dog on couch 12", "history": "", "question": "is it sunny?"}
    assert task.shot_answer(shots["12"]) == ANSWERS[options_of(12, 1)[gt_index(12, 1)]]
    assert shots["12"].images[0].path.parent.name == "val2014"
    assert shots["13"].images[0].path.name == "COCO_train2014_000000000013.jpg"


def test_tiny_model_end_to_end_at_0_and_2_shots(tmp_path, tiny_idefics):
    results = run(tiny_idefics, ["visdial"], RunSettings(shots=(0, 2), data_dir=write_visdial(tmp_path), output_dir=tmp_path / "out"))
    assert [r.shots for r in results] == [0, 2]
    for result in results:
        assert 0 <= result.scores["ndcg"] <= 100
        (path,) = (tmp_path / "out").glob(f"*/visdial/random-{result.shots}shot-seed0.samples.jsonl")
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["id"] for r in rows] == ["21", "22"]
        for row in rows:
            assert sorted(row["prediction"]["ranks"]) == list(range(1, 101))
            assert row["prediction"]["round_id"] == DENSE_ROUND
            assert len(row["output"]) == 1 and len(row["output"][0]) == 100
            assert row["prompt"].count("<image>") == result.shots + 1
            assert len(row["shot_ids"]) == result.shots and set(row["shot_ids"]) <= {"11", "12", "13"}


TEMPLATE = PROMPT_FORMATS.get("idefics").template("visdial")  # what the runner scores: " answer" and the closing "."


def scripted(scores_by_position: dict[int, float]) -> ScriptedModel:
    """Scores each option by its position relative to the query's true answer (others 0)."""
    positions = {}
    for image_id in VAL_IDS:
        for j, option in enumerate(options_of(image_id, DENSE_ROUND)):
            positions[(f"val2018/{image_id}", TEMPLATE.continuation(ANSWERS[option]))] = (j - gt_index(image_id, DENSE_ROUND)) % 100
    return ScriptedModel(candidate_scores=lambda prompt, c: scores_by_position.get(positions[(prompt.images[-1].id, c)], 0.0))


def test_scores_following_the_relevance_give_ndcg_100(tmp_path):
    data_dir = write_visdial(tmp_path)
    model = scripted({0: 2.0, 1: 1.0})
    (official,) = run(model, ["visdial"], RunSettings(shots=(0,), data_dir=data_dir, output_dir=tmp_path / "a"))
    (sklearn,) = run(model, ["visdial"], RunSettings(shots=(0,), data_dir=data_dir, output_dir=tmp_path / "b",
                                                     metric_variants=("ndcg_sklearn",)))
    assert official.scores["ndcg"] == pytest.approx(100.0)
    assert sklearn.scores["ndcg"] == pytest.approx(100.0)
    assert sklearn.protocol.metric == "ndcg_sklearn" and official.protocol.metric == "score_visdial_ndcg"


def test_official_ndcg_cuts_at_the_relevant_count_sklearn_does_not(tmp_path):
    """True answer first, an irrelevant option second, the 0.5 option third: k = 2 relevant options."""
    data_dir = write_visdial(tmp_path)
    model = scripted({0: 3.0, 2: 2.0, 1: 1.0})
    (official,) = run(model, ["visdial"], RunSettings(shots=(0,), data_dir=data_dir, output_dir=tmp_path / "a"))
    (sklearn,) = run(model, ["visdial"], RunSettings(shots=(0,), data_dir=data_dir, output_dir=tmp_path / "b",
                                                     metric_variants=("ndcg_sklearn",)))
    ideal = 1.0 + 0.5 / math.log2(3)
    assert official.scores["ndcg"] == pytest.approx(100 * 1.0 / ideal)  # 76.02: the 0.5 option falls outside the top 2
    assert sklearn.scores["ndcg"] == pytest.approx(100 * (1.0 + 0.5 / math.log2(4)) / ideal)  # 95.02


def test_demo_dialogs_rank_100_options_with_the_true_answer_relevant():
    task = TASKS.get("demo_dialog")
    queries = task.read(task.source(None), task.query_split)
    assert len(queries) == 30
    for query in queries:
        (view,) = task.rank_queries(query)
        rel = json.loads(query.meta["gt_relevance"])
        assert len(view.candidates) == 100 == len(set(view.candidates))
        assert rel[view.candidates.index(query.references[0])] == 1.0


def drop_caption(files):
    del files["visdial_1.0_train.json"]["data"]["dialogs"][0]["caption"]


def short_options(files):
    files["visdial_1.0_val.json"]["data"]["dialogs"][0]["dialog"][DENSE_ROUND - 1]["answer_options"].pop()


def unknown_dialog(files):
    files["visdial_1.0_val_dense_annotations.json"][1]["image_id"] = 99


def late_round(files):
    files["visdial_1.0_val_dense_annotations.json"][0]["round_id"] = 7


def answer_out_of_range(files):
    files["visdial_1.0_val.json"]["data"]["dialogs"][1]["dialog"][0]["answer"] = 500


@pytest.mark.parametrize(("edit", "split", "message"), [
    (drop_caption, "train", r"visdial_1.0_train.json: dialog 11 has no field 'caption'"),
    (short_options, "val", r"visdial_1.0_val.json: dialog 21 round 2 'answer_options' has 99 entries, expected 100"),
    (unknown_dialog, "val", r"visdial_1.0_val_dense_annotations.json: annotation #1 is for image_id 99, which has no dialog"),
    (late_round, "val", r"visdial_1.0_val_dense_annotations.json: annotation for image_id 21 'round_id' 7 is not a round"),
    (answer_out_of_range, "val", r"visdial_1.0_val.json: dialog 22 round 1 'answer' points to answers\[500\]"),
])
def test_bad_files_name_the_file_and_field(tmp_path, edit, split, message):
    with pytest.raises(DataError, match=message):
        read(write_visdial(tmp_path, edit), split)


def test_missing_dense_annotations_file_is_named(tmp_path):
    data_dir = write_visdial(tmp_path)
    (data_dir / "visdial" / "visdial_1.0_val_dense_annotations.json").unlink()
    with pytest.raises(DataError, match="visdial_1.0_val_dense_annotations.json: file not found"):
        read(data_dir, "val")
