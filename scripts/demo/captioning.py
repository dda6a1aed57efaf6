"""The demo captioning set (tasks/demo/captioning) in the COCO Karpathy-split format.

dataset_coco.json lists every image with its Karpathy `split` (train, restval, val, test), its COCO folder
(`filepath`) and file name, and five reference sentences ({raw, tokens}) describing the drawn shapes in
different words. coco_karpathy_test_gt.json holds the test references in the COCO caption format, the
annotations file `evals score` reads. Everything is drawn from one seeded RNG: identical files every run.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from shapes import COLORS, SHAPES, draw_scene, write_json

SEED = 20261123
# Karpathy split name: (COCO folder, first cocoid, number of images). Support = train + restval; queries = test.
SPLITS = {"train": ("train2014", 1, 130), "restval": ("val2014", 5001, 20), "val": ("val2014", 6001, 10),
          "test": ("val2014", 7001, 40)}
COUNTS = {1: "one shape", 2: "two shapes", 3: "three shapes"}
PHRASINGS = (
    "{desc} on a white background.",
    "A picture of {desc}.",
    "{count}: {desc}.",
    "A simple drawing with {desc}.",
    "{desc} drawn in flat colors.",
    "There is {desc} in the image.",
    "An image showing {desc}.",
)


def describe(shapes: list[tuple[str, str]]) -> str:
    """"a red circle", "a red circle and a blue square", "a red circle, a blue square and a green triangle"."""
    parts = [f"a {color} {shape}" for color, shape in shapes]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def sentences_for(shapes: list[tuple[str, str]], rng: random.Random) -> list[str]:
    """Five reference captions: the same scene in five of the phrasings, as five annotators would word it."""
    texts = [p.format(desc=describe(shapes), count=COUNTS[len(shapes)]) for p in rng.sample(PHRASINGS, 5)]
    return [text[0].upper() + text[1:] for text in texts]


def tokens(raw: str) -> list[str]:
    """Karpathy's tokens: lower-cased words, punctuation dropped."""
    return re.findall(r"[a-z0-9]+", raw.lower())


def build(out: Path) -> None:
    """Write the demo captioning set into the empty folder `out`."""
    rng = random.Random(SEED)
    images, sentence_id = [], 0
    for split, (folder, first_id, count) in SPLITS.items():
        (out / folder).mkdir(exist_ok=True)
        for cocoid in range(first_id, first_id + count):
            shapes = [(rng.choice(sorted(COLORS)), rng.choice(SHAPES)) for _ in range(rng.randint(1, 3))]
            filename = f"COCO_{folder}_{cocoid:012d}.jpg"
            draw_scene(shapes).save(out / folder / filename, quality=95)
            imgid = len(images)
            sentences = [{"imgid": imgid, "raw": raw, "sentid": sentence_id + n, "tokens": tokens(raw)}
                         for n, raw in enumerate(sentences_for(shapes, rng))]
            sentence_id += len(sentences)
            images.append({"cocoid": cocoid, "filename": filename, "filepath": folder, "imgid": imgid, "split": split,
                           "sentences": sentences, "sentids": [s["sentid"] for s in sentences]})
        print(f"{split}: {count} images")
    write_json(out / "dataset_coco.json", {"dataset": "coco", "images": images})
    write_json(out / "coco_karpathy_test_gt.json", coco_format([i for i in images if i["split"] == "test"]))


def coco_format(images: list[dict]) -> dict:
    """References in the COCO caption format: images [{id, file_name}], annotations [{image_id, id, caption}]."""
    return {
        "info": {"description": "evals demo captions (synthetic shapes), Karpathy test split"},
        "licenses": [],
        "type": "captions",
        "images": [{"file_name": i["filename"], "id": i["cocoid"]} for i in images],
        "annotations": [{"caption": s["raw"], "id": s["sentid"], "image_id": i["cocoid"]} for i in images for s in i["sentences"]],
    }
