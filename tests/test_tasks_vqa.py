"""Open-ended VQA benchmarks on tiny copies of their official layouts: OK-VQA, TextVQA, VizWiz end to end with the
bundled model, the OK-VQA stemmed variant, VizWiz's id-less leave-one-out, Hugging Face copies, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.errors import DataError
from evals.models import ScriptedModel
from evals.registry import PROMPT_FORMATS, TASKS
from evals.runner import RunSettings, run
from tasks.base import cut_at_stop_words
from tasks.vqa import postprocess_vqa
from tests.conftest import vqa_items, write_vqa_split

COLORS = ["red", "green", "blue", "yellow"]


def save_image(path: Path, n: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), (40 * n % 255, 90, 160)).save(path)


def textvqa_items(first: int, count: int) -> list[dict]:
    return [{"question_id": first + n, "image_id": f"{first + n:016x}", "question": f"what does sign {n} say?",
             "answers": [f"word{n % 3}"] * 9 + ["unsure"], "ocr_tokens": ["stop", f"word{n % 3}"], "set_name": "train"}
            for n in range(count)]


def write_textvqa(root: Path, split: str, items: list[dict]) -> None:
    """TextVQA 0.5.1 layout: one JSON per split; train and val images both under train_images/."""
    for n, item in enumerate(items):
        save_image(root / "train_images" / f"{item['image_id']}.jpg", n)
    payload = {"dataset_type": split, "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": items}
    (root / f"TextVQA_0.5.1_{split}.json").write_text(json.dumps(payload))


def vizwiz_items(split: str, count: int) -> list[dict]:
    return [{"image": f"VizWiz_{split}_{n:08d}.jpg", "question": f"What color is this shirt {n}?", "answerable": 1,
             "answer_type": "other", "answers": [{"answer": COLORS[n % 4], "answer_confidence": "yes"}] * 8
             + [{"answer": "unanswerable", "answer_confidence": "no"}] * 2} for n in range(count)]


def write_vizwiz(root: Path, split: str, items: list[dict]) -> None:
    """VizWiz layout: Annotations/{split}.json (a list, answers without ids), images {split}/<image>."""
    for n, item in enumerate(items):
        save_image(root / split / item["image"], n)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "Annotations" / f"{split}.json").write_text(json.dumps(items))


def write_okvqa(root: Path, split: str, items: list[dict]) -> None:
    write_vqa_split(root, split, items)
    (root / f"v2_OpenEnded_mscoco_{split}_questions.json").rename(root / f"OpenEnded_mscoco_{split}_questions.json")
    (root / f"v2_mscoco_{split}_annotations.json").rename(root / f"mscoco_{split}_annotations.json")


def make_data(data_dir: Path, task: str) -> Path:
    """DATA_DIR/<task>/ with 8 support and 4 query questions in the benchmark's own files."""
    root = data_dir / task
    if task == "vqav2":
        write_vqa_split(root, "train2014", vqa_items(100, 8))
        write_vqa_split(root, "val2014", vqa_items(500, 4))
    elif task == "okvqa":
        write_okvqa(root, "train2014", vqa_items(100, 8))
        write_okvqa(root, "val2014", vqa_items(500, 4))
    elif task == "textvqa":
        write_textvqa(root, "train", textvqa_items(100, 8))
        write_textvqa(root, "val", textvqa_items(500, 4))
    else:
        write_vizwiz(root, "train", vizwiz_items("train", 8))
        write_vizwiz(root, "val", vizwiz_items("val", 4))
    return data_dir


def sample_rows(output_dir: Path, task: str, shots: int) -> list[dict]:
    (path,) = output_dir.glob(f"*/{task}/random-{shots}shot-seed0.samples.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("task", ["vqav2", "okvqa", "textvqa", "vizwiz"])
def test_end_to_end_with_the_bundled_model(task, tiny_idefics, tmp_path):
    data_dir = make_data(tmp_path / "data", task)
    results = run(tiny_idefics, [task], RunSettings(shots=(0, 2), limit=3, batch_size=3, data_dir=data_dir, output_dir=tmp_path / "out"))
    assert [r.shots for r in results] == [0, 2]
    declared = TASKS.get(task)
    support_ids = {e.id for e in declared.load(data_dir / task, declared.support_split)}
    queries = {e.id: e for e in declared.load(data_dir / task, declared.query_split)}
    stops = PROMPT_FORMATS.get("idefics").template("vqa").stop
    for result in results:
        assert 0 <= result.scores["vqa_accuracy"] <= 100
        rows = sample_rows(tmp_path / "out", task, result.shots)
        assert len(rows) == 3
        for row in rows:
            assert len(row["shot_ids"]) == 2 and set(row["shot_ids"]) <= support_ids
            # zero-shot: two text-only demonstrations, only the query's image
            assert row["prompt"].count("<image>") == (1 if result.shots == 0 else 3)
            assert row["prompt"].endswith("Short answer:")
            # TextVQA and VizWiz keep the cut output: their official scorers process the prediction themselves.
            assert row["prediction"] == declared.postprocess(row["output"], stops)
            assert declared.postprocess is (postprocess_vqa if task in ("vqav2", "okvqa") else cut_at_stop_words)
            assert row["score"] == declared.metric({row["id"]: row["prediction"]}, [queries[row["id"]]]).per_sample[row["id"]]


def test_textvqa_reads_val_images_from_train_images_and_ocr_tokens(tmp_path):
    root = make_data(tmp_path, "textvqa") / "textvqa"
    (example, *_) = TASKS.get("textvqa").load(root, "val")
    assert example.id == "500"
    assert example.images[0].path == root / "train_images" / f"{500:016x}.jpg" and example.images[0].path.exists()
    assert example.fields == {"question": "what does sign 0 say?", "ocr": "stop word0"}
    assert example.references == ("word0",) * 9 + ("unsure",)
    assert TASKS.get("textvqa").shot_answer(example) == "word0"


def test_textvqa_ocr_from_the_rosetta_file_when_the_question_has_none(tmp_path):
    root = tmp_path / "textvqa"
    items = textvqa_items(1, 2)
    for item in items:
        del item["ocr_tokens"]
    write_textvqa(root, "val", items)
    rosetta = {"data": [{"image_id": items[1]["image_id"], "ocr_tokens": ["exit", "only"]}]}
    (root / "TextVQA_Rosetta_OCR_v0.2_val.json").write_text(json.dumps(rosetta))
    examples = TASKS.get("textvqa").load(root, "val")
    assert [e.fields["ocr"] for e in examples] == ["", "exit only"]


def test_vizwiz_ids_are_image_names_and_answer_types_are_kept(tmp_path):
    root = make_data(tmp_path, "vizwiz") / "vizwiz"
    examples = TASKS.get("vizwiz").load(root, "val")
    assert [e.id for e in examples] == [f"VizWiz_val_{n:08d}.jpg" for n in range(4)]
    assert examples[1].images[0].path == root / "val" / "VizWiz_val_00000001.jpg"
    assert examples[1].references == ("green",) * 8 + ("unanswerable",) * 2
    assert examples[1].meta["answer_type"] == "other"


@pytest.mark.parametrize(("answers", "expected"), [
    # 3 "yes" of 10: leaving out one "yes" leaves 2 matches (2/3), leaving out a "no" leaves 3 (1): (3*2/3 + 7)/10.
    # Dropping every duplicate "yes" at once (dict equality on id-less answers) would give 70.
    (["yes"] * 3 + ["no"] * 7, 90.0),
    # 2 "yes": (2 * 1/3 + 8 * 2/3) / 10 = 0.6; dropping both "yes" would give 53.33.
    (["no"] * 4 + ["yes", "yes"] + ["no"] * 4, 60.0),
])
def test_vizwiz_leave_one_out_removes_one_answer_by_position(tmp_path, answers, expected):
    root = tmp_path / "vizwiz"
    item = {"image": "VizWiz_val_00000000.jpg", "question": "Is it on?", "answer_type": "yes/no", "answerable": 1,
            "answers": [{"answer": a, "answer_confidence": "yes"} for a in answers]}
    write_vizwiz(root, "val", [item])
    task = TASKS.get("vizwiz")
    examples = task.load(root, "val")
    result = task.metric({examples[0].id: "yes"}, examples)
    assert result.scores["vqa_accuracy"] == expected
    assert result.per_sample == {"VizWiz_val_00000000.jpg": expected}
    assert result.breakdowns["by_answer_type"] == {"yes/no": expected}


def okvqa_examples(tmp_path: Path, answers: list[str]):
    root = tmp_path / "okvqa"
    write_okvqa(root, "val2014", [{"question_id": 1, "image_id": 1, "question": "What sport?", "answers": answers}])
    return TASKS.get("okvqa").load(root, "val2014")


@pytest.mark.parametrize(("prediction", "answers", "plain", "stemmed"), [
    ("riding", ["ride"] * 10, 0.0, 100.0),  # OK-VQA v1.1 answers are stemmed; the prediction is not
    ("surfboards", ["surfboard"] * 6 + ["surf"] * 4, 0.0, 100.0),
    ("tennis", ["tennis"] * 10, 100.0, 100.0),  # both sides stemmed alike ("tenni"): never a new miss
    ("skiing", ["ski"] * 2 + ["snowboard"] * 8, 0.0, 60.0),
])
def test_okvqa_stemmed_variant(tmp_path, prediction, answers, plain, stemmed):
    task = TASKS.get("okvqa")
    examples = okvqa_examples(tmp_path, answers)
    assert task.metric({"1": prediction}, examples).scores["vqa_accuracy"] == plain
    assert task.metric_named("vqa_accuracy_stemmed")({"1": prediction}, examples).scores["vqa_accuracy"] == stemmed


def test_okvqa_stemmed_variant_is_chosen_by_name_and_recorded(tmp_path):
    root = tmp_path / "data" / "okvqa"
    write_okvqa(root, "train2014", vqa_items(100, 4))
    write_okvqa(root, "val2014", [{"question_id": 7, "image_id": 7, "question": "What is he doing?", "answers": ["ride"] * 10}])
    scores = {}
    for variants in ((), ("vqa_accuracy_stemmed",)):
        settings = RunSettings(shots=(2,), data_dir=tmp_path / "data", output_dir=tmp_path / str(variants), metric_variants=variants)
        (result,) = run(ScriptedModel(default="Riding"), ["okvqa"], settings)
        scores[result.protocol.metric] = result.scores["vqa_accuracy"]
    assert scores == {"score_vqa": 0.0, "vqa_accuracy_stemmed": 100.0}


def hf_dataset(folder: Path, splits: dict[str, list[dict]], features) -> Path:
    import datasets

    datasets.DatasetDict({name: datasets.Dataset.from_dict(
        {column: [row[column] for row in rows] for column in features}, features=features) for name, rows in splits.items()
    }).save_to_disk(str(folder))
    return folder


def comparable(examples) -> list[tuple]:
    return [(e.id, [i.id for i in e.images], dict(e.fields), e.references, dict(e.meta)) for e in examples]


def test_textvqa_hugging_face_copy_gives_the_same_examples(tmp_path):
    """lmms-lab/textvqa's columns: question_id (int), image_id, question, image, answers (strings), ocr_tokens."""
    import datasets
    from PIL import Image

    data_dir = make_data(tmp_path / "data", "textvqa")
    features = datasets.Features({
        "question_id": datasets.Value("int32"), "image_id": datasets.Value("string"), "question": datasets.Value("string"),
        "image": datasets.Image(), "answers": datasets.Sequence(datasets.Value("string")),
        "ocr_tokens": datasets.Sequence(datasets.Value("string")),
    })

    def rows(items):
        return [{**item, "image": Image.new("RGB", (8, 8))} for item in items]

    folder = hf_dataset(tmp_path / "hf", {"train": rows(textvqa_items(100, 8)), "validation": rows(textvqa_items(500, 4))}, features)
    task = TASKS.get("textvqa")
    for split in ("train", "val"):
        from_hf = task.read(task.source(None, str(folder)), split)
        assert comparable(from_hf) == comparable(task.load(data_dir / "textvqa", split))
    runs = {}
    for name, sources in (("files", {}), ("hf", {"textvqa": str(folder)})):
        run(ScriptedModel(), ["textvqa"], RunSettings(shots=(2,), limit=4, data_dir=data_dir, sources=sources, output_dir=tmp_path / name))
        runs[name] = [(r["id"], r["shot_ids"], r["prompt"]) for r in sample_rows(tmp_path / name, "textvqa", 2)]
    assert runs["hf"] == runs["files"]


def test_vizwiz_hugging_face_copy_without_image_ids(tmp_path):
    """lmms-lab/VizWiz-VQA's columns: question_id (the image file name), question, image, answers, category."""
    import datasets
    from PIL import Image

    items = vizwiz_items("val", 3)
    rows = [{"question_id": i["image"], "question": i["question"], "image": Image.new("RGB", (8, 8)),
             "answers": [a["answer"] for a in i["answers"]], "category": i["answer_type"]} for i in items]
    features = datasets.Features({"question_id": datasets.Value("string"), "question": datasets.Value("string"),
                                  "image": datasets.Image(), "answers": datasets.Sequence(datasets.Value("string")),
                                  "category": datasets.Value("string")})
    folder = hf_dataset(tmp_path / "hf", {"val": rows}, features)
    write_vizwiz(tmp_path / "vizwiz", "val", items)
    task = TASKS.get("vizwiz")
    assert comparable(task.read(task.source(None, str(folder)), "val")) == comparable(task.load(tmp_path / "vizwiz", "val"))


def test_textvqa_entry_without_answers_names_file_and_field(tmp_path):
    root = tmp_path / "textvqa"
    items = textvqa_items(1, 2)
    del items[1]["answers"]
    write_textvqa(root, "val", items)
    with pytest.raises(DataError, match=r"TextVQA_0\.5\.1_val\.json: question 2 has no field 'answers'"):
        TASKS.get("textvqa").load(root, "val")


def test_vizwiz_answer_without_text_names_file_and_entry(tmp_path):
    root = tmp_path / "vizwiz"
    items = vizwiz_items("val", 1)
    items[0]["answers"] = [{"answer_confidence": "yes"}]
    write_vizwiz(root, "val", items)
    with pytest.raises(DataError, match=r"val\.json: entry VizWiz_val_00000000\.jpg: .* field 'answer'"):
        TASKS.get("vizwiz").load(root, "val")


def test_vizwiz_malformed_json_names_the_file(tmp_path):
    root = tmp_path / "vizwiz"
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "val.json").write_text('[{"image": "a.jpg",')
    with pytest.raises(DataError, match=r"Annotations/val\.json: malformed JSON"):
        TASKS.get("vizwiz").load(root, "val")
    (root / "Annotations" / "val.json").write_text('{"annotations": []}')
    with pytest.raises(DataError, match=r"Annotations/val\.json: expected a JSON list"):
        TASKS.get("vizwiz").load(root, "val")


def test_vqav2_hugging_face_copy_with_answer_objects(tmp_path, vqa_data_dir):
    """HuggingFaceM4/VQAv2's columns: question_id, image_id, question, image, question_type, answer_type and answers as
    {answer, answer_confidence, answer_id} objects (a `datasets` Sequence of them arrives as one object of lists)."""
    import datasets
    from PIL import Image

    answer = {"answer": datasets.Value("string"), "answer_confidence": datasets.Value("string"), "answer_id": datasets.Value("int32")}
    features = datasets.Features({
        "question_id": datasets.Value("int64"), "image_id": datasets.Value("int64"), "question": datasets.Value("string"),
        "image": datasets.Image(), "question_type": datasets.Value("string"), "answer_type": datasets.Value("string"),
        "answers": datasets.Sequence(answer),
    })
    task = TASKS.get("vqav2")
    splits = {}
    for split, hf_split in (("train2014", "train"), ("val2014", "validation")):
        annotations = json.loads((vqa_data_dir / "vqav2" / f"v2_mscoco_{split}_annotations.json").read_text())["annotations"]
        questions = {q["question_id"]: q for q in json.loads((vqa_data_dir / "vqav2" / f"v2_OpenEnded_mscoco_{split}_questions.json").read_text())["questions"]}
        splits[hf_split] = [{**a, "question": questions[a["question_id"]]["question"], "image": Image.new("RGB", (8, 8)),
                             "answers": {key: [x[key] for x in a["answers"]] for key in answer}} for a in annotations]
    folder = hf_dataset(tmp_path / "hf", splits, features)
    for split in ("train2014", "val2014"):
        assert comparable(task.read(task.source(None, str(folder)), split)) == comparable(task.load(vqa_data_dir / "vqav2", split))


def vqav2_with(root: Path, edit) -> Path:
    """A VQAv2 val2014 split of three questions (ids 500-502), `edit(questions, annotations)` applied to its two files."""
    write_vqa_split(root, "val2014", vqa_items(500, 3))
    questions_path, annotations_path = root / "v2_OpenEnded_mscoco_val2014_questions.json", root / "v2_mscoco_val2014_annotations.json"
    questions, annotations = json.loads(questions_path.read_text()), json.loads(annotations_path.read_text())
    edit(questions["questions"], annotations["annotations"])
    questions_path.write_text(json.dumps(questions))
    annotations_path.write_text(json.dumps(annotations))
    return root


def set_string_image_id(questions, annotations):
    questions[1]["image_id"] = "501"


def repeat_an_annotation(questions, annotations):
    # question 502's annotation replaced by a second one for 500: 502 would have been scored against 500's answers
    annotations[2] = {**annotations[0], "answers": [{"answer": "purple"}] * 10}


def repeat_a_question(questions, annotations):
    questions.append(dict(questions[0]))


@pytest.mark.parametrize("edit, message", [
    (set_string_image_id, r"v2_OpenEnded_mscoco_val2014_questions\.json: question 501: field 'image_id' is '501', not an integer$"),
    (repeat_an_annotation, r"v2_mscoco_val2014_annotations\.json: annotation #2 repeats question_id 500 of annotation #0$"),
    (repeat_a_question, r"v2_OpenEnded_mscoco_val2014_questions\.json: question #3 repeats question_id 500 of question #0$"),
])
def test_vqav2_bad_ids_give_one_line_naming_file_and_field(tmp_path, edit, message):
    root = vqav2_with(tmp_path / "vqav2", edit)
    with pytest.raises(DataError, match=message) as caught:
        TASKS.get("vqav2").load(root, "val2014")
    assert "\n" not in str(caught.value)


def test_vqav2_well_formed_ids_load_in_question_order(tmp_path):
    root = vqav2_with(tmp_path / "vqav2", lambda questions, annotations: annotations.reverse())
    examples = TASKS.get("vqav2").load(root, "val2014")
    assert [(e.id, e.references[0], e.images[0].path.name) for e in examples] == [
        ("500", "red", "COCO_val2014_000000000500.jpg"), ("501", "green", "COCO_val2014_000000000501.jpg"),
        ("502", "blue", "COCO_val2014_000000000502.jpg")]


def test_reading_a_split_pauses_garbage_collection_and_restores_it(tmp_path):
    """tasks.base.collection_paused: collection is off while a reader runs, back on after, also after an error, and
    left off where the caller had it off."""
    import gc

    from evals.errors import DataError
    from evals.registry import TASKS
    from tasks.base import DataSource

    task = TASKS.get("demo_vqa")
    seen = []
    original = task.load
    object.__setattr__(task, "load", lambda root, split: seen.append(gc.isenabled()) or original(root, split))
    try:
        assert gc.isenabled() and task.read(task.source(None, None), task.query_split) and seen == [False]
        assert gc.isenabled()
        with pytest.raises(DataError):
            task.read(DataSource(str(tmp_path), "files"), "no-such-split")
        assert gc.isenabled()
        gc.disable()
        task.read(task.source(None, None), task.query_split)
        assert not gc.isenabled()
    finally:
        gc.enable()
        object.__setattr__(task, "load", original)
