"""The demo classification set (tasks/demo/classification) in ImageNet's class-folder layout.

Eight classes named by colour and shape ("red circle", ...), each a made-up wnid folder under `train/`
and `val/`, with `classnames.txt` giving the names in sorted-wnid order. Images vary by how many copies
of the shape they hold and where the scene sits, so no two images of a class need be the same.
Everything is drawn from seeded RNGs (one for the splits, one for the added train images): running the script
twice gives identical files.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import ImageChops
from shapes import draw_scene

SEED = 20261123
CLASSES = (("red", "circle"), ("red", "square"), ("green", "triangle"), ("green", "circle"),
           ("blue", "square"), ("blue", "triangle"), ("yellow", "circle"), ("yellow", "triangle"))
PER_CLASS = {"train": 20, "val": 5}
# More train images per class, drawn after the splits above from their own RNG so that those stay as they were: the
# bundled model's training leaves out the train images that a val image shows (same scene within a few pixels).
MORE_TRAIN_PER_CLASS = ("train", 40, SEED + 1)  # split, images per class, seed


def wnid(index: int) -> str:
    return f"n{90000001 + index:08d}"


def draw(color: str, shape: str, rng: random.Random):
    """One to three copies of the class's shape, shifted by a few pixels (wrapping round the edges)."""
    scene = draw_scene([(color, shape)] * rng.randint(1, 3))
    return ImageChops.offset(scene, rng.randint(-6, 6), rng.randint(-6, 6))


def file_name(split: str, index: int, serial: int) -> str:
    """Named like the real release: train `<wnid>_<n>.JPEG`, val `ILSVRC2012_val_<8 digits>.JPEG`."""
    return f"{wnid(index)}_{serial}.JPEG" if split == "train" else f"ILSVRC2012_val_{serial:08d}.JPEG"


def build(out: Path) -> None:
    """Write the demo classification set into the empty folder `out`."""
    rng = random.Random(SEED)
    (out / "classnames.txt").write_text("".join(f"{color} {shape}\n" for color, shape in CLASSES))
    serials = {}
    for split, count in PER_CLASS.items():
        serials[split] = draw_split(out, split, count, rng, first_serial=1)
        print(f"{split}: {len(CLASSES)} classes x {count} images")
    split, count, seed = MORE_TRAIN_PER_CLASS
    draw_split(out, split, count, random.Random(seed), first_serial=serials[split])
    print(f"{split}: {len(CLASSES)} classes x {count} more images")


def draw_split(out: Path, split: str, count: int, rng: random.Random, first_serial: int) -> int:
    """`count` images of every class into `out/split/<wnid>/`, numbered from `first_serial`; the next serial."""
    serial = first_serial
    for index, (color, shape) in enumerate(CLASSES):
        folder = out / split / wnid(index)
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            draw(color, shape, rng).save(folder / file_name(split, index, serial), format="JPEG", quality=90)
            serial += 1
    return serial
