"""The demo Hateful Memes set (tasks/demo/hateful_memes) in the official JSONL + `img/` layout.

Each meme is one coloured shape with a caption that either mocks or praises it. A meme is "hateful"
(label 1) when a mocking caption meets a red shape (the toy world's targeted group): the label needs text
and picture together. As in the real set, benign confounders make either one alone misleading: of the
non-hateful memes, 40% mock a shape that is not red and 40% praise a red one. Each picture is shifted by up to 8
pixels, so most dev memes are new pictures even where their colour, shape and caption occur in train (the bundled
model's training leaves out the train memes whose picture a dev meme shows).
Everything is drawn from seeded RNGs (one for the splits, one for the added train memes): running the script
twice gives identical files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import ImageChops
from shapes import COLORS, SHAPES, draw_scene

SEED = 20261124
TARGET = "red"
SPLITS = {"train": (10000, 300), "dev_seen": (20000, 50)}  # name: (first id, number of memes)
# More train memes, drawn after the splits above from their own RNG so that those stay as they were: the bundled
# model's training leaves out the train memes whose picture a dev meme shows, most of the first 300.
MORE_TRAIN = ("train", 30000, 600, SEED + 1)  # split, first id, number of memes, seed
MOCKING = ("look at this ugly {shape}", "{shape}s like this are awful", "nobody wants a {shape} like this")
PRAISING = ("look at this lovely {shape}", "{shape}s like this are the best", "everyone wants a {shape} like this")


def meme(meme_id: int, rng: random.Random, out: Path) -> dict:
    hateful = rng.random() < 0.5
    mocking, targeted = (True, True) if hateful else rng.choices([(True, False), (False, True), (False, False)], [2, 2, 1])[0]
    color = TARGET if targeted else rng.choice([c for c in sorted(COLORS) if c != TARGET])
    shape = rng.choice(SHAPES)
    # shifted by a few pixels (wrapping round), so that no two memes need share a picture
    picture = ImageChops.offset(draw_scene([(color, shape)]), rng.randint(-8, 8), rng.randint(-8, 8))
    picture.save(out / "img" / f"{meme_id:05d}.png")
    text = rng.choice(MOCKING if mocking else PRAISING).format(shape=shape)
    return {"id": meme_id, "img": f"img/{meme_id:05d}.png", "label": int(hateful), "text": text}


def build(out: Path) -> None:
    """Write the demo memes into the empty folder `out`."""
    rng = random.Random(SEED)
    (out / "img").mkdir()
    splits = {split: [meme(first_id + n, rng, out) for n in range(count)] for split, (first_id, count) in SPLITS.items()}
    split, first_id, count, seed = MORE_TRAIN
    more = random.Random(seed)
    splits[split] += [meme(first_id + n, more, out) for n in range(count)]
    for split, rows in splits.items():
        (out / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        print(f"{split}: {len(rows)} memes, {sum(r['label'] for r in rows)} hateful")
