"""The demo matching set (tasks/demo/winoground) in the official Winoground formats: examples.jsonl and
images/<stem>.png.

Each example is two scenes of the same two shapes whose captions use the same words in another order:
either the colours swap ("a red circle left of a blue square" / "a blue circle left of a red square",
tagged Object) or the shapes swap places ("a red circle left of a blue square" / "a blue square left of a
red circle", tagged Relation). Everything is drawn from one seeded RNG: running the script twice gives
identical files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from shapes import COLORS, SHAPES, draw_scene

SEED = 20261125
COUNT = 30


def caption(left: tuple[str, str], right: tuple[str, str]) -> str:
    return f"a {left[0]} {left[1]} left of a {right[0]} {right[1]}"


def swapped(left: tuple[str, str], right: tuple[str, str], kind: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """The second scene: colours exchanged between the two shapes, or the two shapes exchanged in place."""
    if kind == "Object":
        return (right[0], left[1]), (left[0], right[1])
    return right, left


def build(out: Path) -> None:
    """Write the demo Winoground set into the empty folder `out`."""
    rng = random.Random(SEED)
    (out / "images").mkdir()
    colors = sorted(COLORS)
    pairs = [((c0, s0), (c1, s1)) for c0 in colors for c1 in colors for s0 in SHAPES for s1 in SHAPES if c0 != c1 and s0 != s1]
    lines = []
    for n, (left, right) in enumerate(rng.sample(pairs, COUNT)):
        kind = rng.choice(("Object", "Relation"))
        scenes = [(left, right), swapped(left, right, kind)]
        for i, scene in enumerate(scenes):
            draw_scene(list(scene)).save(out / "images" / f"ex_{n}_img_{i}.png")
        lines.append({
            "id": n, "caption_0": caption(*scenes[0]), "caption_1": caption(*scenes[1]), "tag": kind,
            "image_0": f"ex_{n}_img_0", "image_1": f"ex_{n}_img_1", "secondary_tag": "Symbolic",
            "num_main_preds": 1, "collapsed_tag": kind,
        })
    (out / "examples.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    print(f"test: {COUNT} examples")
