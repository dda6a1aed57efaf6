"""Captioning benchmarks on tiny copies of their official layouts: COCO and Flickr30k (Karpathy split), NoCaps
(demonstrations from COCO), TextCaps, end to end with the bundled model; shot captions, a Hugging Face copy,
the demo set, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.errors import DataError
from evals.models import ScriptedModel
from evals.records import Example
from evals.registry import PROMPT_FORMATS, TASKS
from evals.runner import RunSettings, run
from tasks.base import cut_at_stop_words
from tests.test_tasks_vqa import sample_rows, save_image

WORDS = ["red", "green", "blue", "yellow"]


def sentences(n: int) -> list[str]:
    return [f"A {WORDS[n % 4]} thing number {n}.", f"Thing {n} is {WORDS[n % 4]}.", f"A picture of a {WORDS[n % 4]} thing.",
            f"One {WORDS[n % 4]} object.", f"Something {WORDS[n % 4]} on a table, {n}."]


def karpathy_entry(n: int, split: str, folder: str | None) -> dict:
    raws = sentences(n)
    entry = {"imgid": n, "split": split, "sentids": list(range(5 * n, 5 * n + 5)),
             "sentences": [{"raw": r, "tokens": r.lower().strip(".").split(), "imgid": n, "sentid": 5 * n + k} for k, r in enumerate(raws)]}
    if folder is None:  # Flickr30k: no COCO folders, no cocoid
        return {**entry, "filename": f"{1000000 + n}.jpg"}
    return {**entry, "filepath": folder, "filename": f"COCO_{folder}_{n:012d}.jpg", "cocoid": n}


KARPATHY_SPLITS = [("train", "train2014", 6), ("restval", "val2014", 2), ("val", "val2014", 2), ("test", "val2014", 3)]


def write_karpathy(root: Path, flickr: bool = False) -> list[dict]:
    """dataset_coco.json / dataset_flickr30k.json with images where the Karpathy file says they are."""
    entries, n = [], 1
    for split, folder, count in KARPATHY_SPLITS:
        if flickr and split == "restval":
            continue
        for _ in range(count):
            entry = karpathy_entry(n, split, None if flickr else folder)
            save_image(root / ("flickr30k_images" if flickr else entry["filepath"]) / entry["filename"], n)
            entries.append(entry)
            n += 1
    name = "dataset_flickr30k.json" if flickr else "dataset_coco.json"
    (root / name).write_text(json.dumps({"images": entries, "dataset": "flickr30k" if flickr else "coco"}))
    return entries


def write_nocaps(root: Path, count: int = 3) -> None:
    """nocaps_val_4500_captions.json (COCO caption format, with domains), images val/<file_name>."""
    domains = ["in-domain", "near-domain", "out-domain"]
    images = [{"id": n, "file_name": f"{n:016x}.jpg", "open_images_id": f"{n:016x}", "domain": domains[n % 3]} for n in range(count)]
    annotations = [{"image_id": n, "id": 10 * n + k, "caption": s} for n in range(count) for k, s in enumerate(sentences(n))]
    for n, image in enumerate(images):
        save_image(root / "val" / image["file_name"], n)
    (root / "nocaps_val_4500_captions.json").write_text(json.dumps({"images": images, "annotations": annotations, "licenses": []}))


def textcaps_entries(first: int, count: int) -> list[dict]:
    """One entry per caption, as TextCaps ships them; every entry repeats the image's reference_strs."""
    entries = []
    for n in range(first, first + count):
        image_id = f"{n:016x}"
        refs = sentences(n)
        entries += [{"image_id": image_id, "caption_id": 5 * n + k, "caption_str": r, "reference_strs": refs,
                     "ocr_tokens": ["open", str(n)], "image_path": f"train/{image_id}.jpg"} for k, r in enumerate(refs)]
    return entries


def write_textcaps(root: Path, split: str, entries: list[dict]) -> None:
    for n, image_id in enumerate(dict.fromkeys(e["image_id"] for e in entries)):
        save_image(root / "train_images" / f"{image_id}.jpg", n)
    payload = {"dataset_type": split, "dataset_name": "textcaps", "dataset_version": "0.1", "data": entries}
    (root / f"TextCaps_0.1_{split}.json").write_text(json.dumps(payload))


def make_data(data_dir: Path, task: str) -> Path:
    if task == "coco":
        write_karpathy(data_dir / "coco")
    elif task == "flickr30k":
        write_karpathy(data_dir / "flickr30k", flickr=True)
    elif task == "nocaps":
        write_karpathy(data_dir / "coco")  # the lender: NoCaps draws its demonstrations from COCO Karpathy train
        write_nocaps(data_dir / "nocaps")
    else:
        write_textcaps(data_dir / "textcaps", "train", textcaps_entries(1, 6))
        write_textcaps(data_dir / "textcaps", "val", textcaps_entries(100, 3))
    return data_dir


@pytest.mark.parametrize("task", ["coco", "flickr30k", "nocaps", "textcaps"])
def test_end_to_end_with_the_bundled_model(task, tiny_idefics, tmp_path):
    data_dir = make_data(tmp_path / "data", task)
    results = run(tiny_idefics, [task], RunSettings(shots=(0, 2), limit=2, batch_size=2, data_dir=data_dir, output_dir=tmp_path / "out"))
    declared = TASKS.get(task)
    source = declared.source(data_dir)
    support_ids = {e.id for e in declared.read(source, declared.support_split)}
    queries = {e.id for e in declared.read(source, declared.query_split)}
    stops = PROMPT_FORMATS.get("idefics").template("caption").stop
    assert [r.shots for r in results] == [0, 2]
    for result in results:
        assert set(result.scores) == {"CIDEr", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "METEOR"}
        assert result.protocol.generation["max_new_tokens"] == 20 and result.protocol.generation["num_beams"] == 3
        rows = sample_rows(tmp_path / "out", task, result.shots)
        assert len(rows) == 2 and {r["id"] for r in rows} <= queries
        for row in rows:
            assert len(row["shot_ids"]) == 2 and set(row["shot_ids"]) <= support_ids
            assert row["prompt"].count("<image>") == (1 if result.shots == 0 else 3)
            assert row["prompt"].endswith("<image>Caption:")
            assert row["prediction"] == cut_at_stop_words(row["output"], stops) and "\n" not in row["prediction"]
            assert row["score"] >= 0


def test_coco_support_is_karpathy_train_plus_restval_and_queries_are_test(tmp_path):
    root = make_data(tmp_path, "coco") / "coco"
    task = TASKS.get("coco")
    support, queries = task.load(root, task.support_split), task.load(root, task.query_split)
    assert [e.id for e in support] == [str(n) for n in range(1, 9)]  # 6 train + 2 restval; val (9, 10) left out
    assert [e.id for e in queries] == ["11", "12", "13"]
    assert queries[0].images[0].path == root / "val2014" / "COCO_val2014_000000000011.jpg"
    assert queries[0].images[0].id == "val2014/COCO_val2014_000000000011.jpg"
    assert queries[0].references == tuple(sentences(11))


def test_flickr_ids_are_the_file_name_stems(tmp_path):
    root = make_data(tmp_path, "flickr30k") / "flickr30k"
    queries = TASKS.get("flickr30k").load(root, "test")
    assert [e.id for e in queries] == ["1000009", "1000010", "1000011"]
    assert queries[0].images[0].path == root / "flickr30k_images" / "1000009.jpg"


def test_shot_caption_is_a_reference_chosen_by_the_example_id():
    task = TASKS.get("coco")
    references = tuple(f"Caption {k}." for k in range(5))
    picks = [task.shot_answer(Example(f"id{n}", (), {}, references)) for n in range(20)]
    assert set(picks) <= set(references) and len(set(picks)) > 1  # a random reference, not always the first
    assert picks == [task.shot_answer(Example(f"id{n}", (), {}, references)) for n in reversed(range(20))][::-1]


def test_shot_caption_line_breaks_are_flattened():
    caption = Example("1", (), {}, ("A dog\nrunning  on grass. ",) * 5)
    assert TASKS.get("coco").shot_answer(caption) == "A dog running on grass."


def test_nocaps_demonstrations_come_from_coco_train_with_prefixed_ids(tmp_path):
    data_dir = make_data(tmp_path, "nocaps")
    task = TASKS.get("nocaps")
    support = task.read(task.source(data_dir), task.support_split)
    assert task.support_split == "coco_train"
    assert [e.id for e in support] == [f"coco/{n}" for n in range(1, 9)]  # never equal to a NoCaps image id
    queries = task.read(task.source(data_dir), "val")
    assert [(e.id, e.meta["domain"]) for e in queries] == [("0", "in-domain"), ("1", "near-domain"), ("2", "out-domain")]
    assert queries[1].images[0].path == data_dir / "nocaps" / "val" / f"{1:016x}.jpg"
    # A self-contained folder (nocaps/coco/) works as well, e.g. when given with --source.
    (data_dir / "coco").rename(data_dir / "nocaps" / "coco")
    assert [e.id for e in task.read(task.source(None, str(data_dir / "nocaps")), "coco_train")] == [e.id for e in support]


def test_nocaps_scores_each_domain_on_its_own(tmp_path):
    write_nocaps(tmp_path / "nocaps", count=6)  # two images per domain: CIDEr's idf over one image is 0
    task = TASKS.get("nocaps")
    queries = task.load(tmp_path / "nocaps", "val")
    perfect = {e.id: e.references[0] for e in queries}
    wrong = {e.id: "zebra zebra zebra" for e in queries}
    assert task.metric(wrong, queries).breakdowns["CIDEr_by_domain"] == {"in-domain": 0.0, "near-domain": 0.0, "out-domain": 0.0}
    by_domain = task.metric(perfect, queries).breakdowns["CIDEr_by_domain"]
    assert set(by_domain) == {"in-domain", "near-domain", "out-domain"} and all(v > 0 for v in by_domain.values())


def test_textcaps_one_example_per_image_with_its_references_and_ocr(tmp_path):
    root = make_data(tmp_path, "textcaps") / "textcaps"
    queries = TASKS.get("textcaps").load(root, "val")
    assert [e.id for e in queries] == [f"{n:016x}" for n in (100, 101, 102)]
    assert queries[0].references == tuple(sentences(100))
    assert queries[0].fields == {"ocr": "open 100"}
    assert queries[0].images[0].path == root / "train_images" / f"{100:016x}.jpg"


def test_coco_hugging_face_copy_gives_the_same_examples(tmp_path):
    """HuggingFaceM4/COCO's columns: image, cocoid, filepath, filename, sentences_raw (one row per image)."""
    import datasets
    from PIL import Image

    data_dir = make_data(tmp_path / "data", "coco")
    entries = json.loads((data_dir / "coco" / "dataset_coco.json").read_text())["images"]
    features = datasets.Features({"image": datasets.Image(), "cocoid": datasets.Value("int32"), "filepath": datasets.Value("string"),
                                  "filename": datasets.Value("string"), "sentences_raw": datasets.Sequence(datasets.Value("string"))})

    def rows(splits):
        chosen = [e for e in entries if e["split"] in splits]
        return {"image": [Image.new("RGB", (8, 8))] * len(chosen), "cocoid": [e["cocoid"] for e in chosen],
                "filepath": [e["filepath"] for e in chosen], "filename": [e["filename"] for e in chosen],
                "sentences_raw": [[s["raw"] for s in e["sentences"]] for e in chosen]}

    folder = tmp_path / "hf"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(("train", "restval")), features=features),
                          "test": datasets.Dataset.from_dict(rows(("test",)), features=features)}).save_to_disk(str(folder))
    task = TASKS.get("coco")

    def comparable(examples):
        return [(e.id, [i.id for i in e.images], dict(e.fields), e.references) for e in examples]

    for split in ("train", "test"):
        assert comparable(task.read(task.source(None, str(folder)), split)) == comparable(task.load(data_dir / "coco", split))
    prompts = {}
    for name, sources in (("files", {}), ("hf", {"coco": str(folder)})):
        run(ScriptedModel(default="A thing."), ["coco"], RunSettings(shots=(2,), data_dir=data_dir, sources=sources, output_dir=tmp_path / name))
        prompts[name] = [(r["id"], r["shot_ids"], r["prompt"], r["score"]) for r in sample_rows(tmp_path / name, "coco", 2)]
    assert prompts["hf"] == prompts["files"]


def test_demo_set_is_coco_karpathy_with_a_coco_format_reference_file():
    task = TASKS.get("demo_caption")
    source = task.source(None)
    support, queries = task.read(source, "train"), task.read(source, "test")
    assert (len(support), len(queries)) == (150, 40)
    assert all(len(e.references) == 5 and e.images[0].path.exists() for e in queries)
    reference_file = json.loads((Path(source.location) / "coco_karpathy_test_gt.json").read_text())
    by_image: dict[str, list[str]] = {}
    for annotation in reference_file["annotations"]:
        by_image.setdefault(str(annotation["image_id"]), []).append(annotation["caption"])
    assert by_image == {e.id: list(e.references) for e in queries}
    assert {str(i["id"]) for i in reference_file["images"]} == set(by_image)


def test_karpathy_image_without_sentences_names_file_and_image(tmp_path):
    root = tmp_path / "coco"
    entries = write_karpathy(root)
    del entries[-1]["sentences"]
    (root / "dataset_coco.json").write_text(json.dumps({"images": entries}))
    with pytest.raises(DataError, match=r"dataset_coco\.json: image 13 has no field 'sentences'"):
        TASKS.get("coco").load(root, "test")


def test_nocaps_caption_for_an_unlisted_image_names_file_and_image(tmp_path):
    root = tmp_path / "nocaps"
    write_nocaps(root)
    payload = json.loads((root / "nocaps_val_4500_captions.json").read_text())
    payload["images"] = payload["images"][:2]  # image 2 keeps its captions but leaves the image list
    (root / "nocaps_val_4500_captions.json").write_text(json.dumps(payload))
    with pytest.raises(DataError, match=r"nocaps_val_4500_captions\.json: 'annotations' name image_id 2, which is not in 'images'"):
        TASKS.get("nocaps").load(root, "val")
    payload["annotations"] = [a for a in payload["annotations"] if a["image_id"] != 1]
    (root / "nocaps_val_4500_captions.json").write_text(json.dumps({**payload, "images": payload["images"]}))
    with pytest.raises(DataError, match=r"nocaps_val_4500_captions\.json: image 1 has no caption"):
        TASKS.get("nocaps").load(root, "val")


def test_nocaps_without_coco_names_both_places_it_looked(tmp_path):
    write_nocaps(tmp_path / "nocaps")
    task = TASKS.get("nocaps")
    with pytest.raises(DataError, match=r"demonstrations come from coco/ .* found neither .*nocaps/coco nor .*/coco"):
        task.read(task.source(tmp_path), "coco_train")


def test_textcaps_malformed_json_names_the_file(tmp_path):
    root = tmp_path / "textcaps"
    root.mkdir()
    (root / "TextCaps_0.1_val.json").write_text('{"data": [{"image_id": ')
    with pytest.raises(DataError, match=r"TextCaps_0\.1_val\.json: malformed JSON"):
        TASKS.get("textcaps").load(root, "val")


def test_textcaps_entry_without_captions_names_file_and_field(tmp_path):
    root = tmp_path / "textcaps"
    entries = [{k: v for k, v in e.items() if k not in ("reference_strs", "caption_str")} for e in textcaps_entries(1, 1)]
    write_textcaps(root, "val", entries)
    with pytest.raises(DataError, match=r"TextCaps_0\.1_val\.json: image 0000000000000001 has no field 'caption_str'"):
        TASKS.get("textcaps").load(root, "val")


def test_missing_image_file_is_named_when_the_prompt_needs_it(tmp_path, tiny_idefics):
    data_dir = make_data(tmp_path / "data", "coco")
    missing = data_dir / "coco" / "val2014" / "COCO_val2014_000000000011.jpg"
    missing.unlink()
    with pytest.raises(DataError, match=f"{missing}: image file not found"):
        run(tiny_idefics, ["coco"], RunSettings(shots=(0,), limit=1, data_dir=data_dir, output_dir=tmp_path / "out"))


def test_karpathy_sentences_as_a_datasets_sequence_of_objects():
    """A `datasets` Sequence({raw, tokens}) column arrives as one object of lists."""
    from tasks.captioning import caption_texts

    assert caption_texts({"raw": ["A cat.", "A dog."], "tokens": [["a", "cat"], ["a", "dog"]]}, "x") == ("A cat.", "A dog.")
    assert caption_texts([{"raw": "A cat.", "tokens": ["a", "cat"]}, "A dog."], "x") == ("A cat.", "A dog.")
    with pytest.raises(DataError, match="x: no list of reference captions"):
        caption_texts({"tokens": [["a"]]}, "x")
