"""The demo Hateful Memes set (tasks/demo/hateful_memes) in the official JSONL + `img/` layout.

Each meme is a coloured shape with a caption that names a colour; it is "hateful" (label 1) when the
caption's colour is not the shape's, so the label depends on image and text together, as in the real set.
Everything is drawn from one seeded RNG: running the script twice gives identical files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from shapes import COLORS, SHAPES, draw_scene

SEED = 20261124
SPLITS = {"train": (10000, 150), "dev_seen": (20000, 40)}  # name: (first id, number of memes)
CAPTIONS = ("look at this {color} {shape}", "{color} {shape}s are the best", "nothing beats a {color} {shape}")


def meme(meme_id: int, rng: random.Random, out: Path) -> dict:
    color, shape = rng.choice(sorted(COLORS)), rng.choice(SHAPES)
    hateful = rng.random() < 0.5
    named = rng.choice([c for c in sorted(COLORS) if c != color]) if hateful else color
    draw_scene([(color, shape)]).save(out / "img" / f"{meme_id:05d}.png")
    text = rng.choice(CAPTIONS).format(color=named, shape=shape)
    return {"id": meme_id, "img": f"img/{meme_id:05d}.png", "label": int(hateful), "text": text}


def build(out: Path) -> None:
    """Write the demo memes into the empty folder `out`."""
    rng = random.Random(SEED)
    (out / "img").mkdir()
    for split, (first_id, count) in SPLITS.items():
        rows = [meme(first_id + n, rng, out) for n in range(count)]
        (out / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        print(f"{split}: {count} memes, {sum(r['label'] for r in rows)} hateful")
