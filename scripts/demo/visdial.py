"""The demo dialog set (tasks/demo/visdial) in the official VisDial v1.0 formats.

Each image is a scene of coloured shapes with a short dialog about colours, shapes and counts. Every round
offers 100 answer options drawn from the split's shared answer list: the true answer, its paraphrases
("yes" / "yep" / "yes there is") and distractors. The val split gets dense annotations at one round per
dialog: relevance 1 for the true answer, 0.4-0.8 for its paraphrases, 0 otherwise. Train images sit in
the COCO train2014 and val2014 folders as in the real release. Everything is drawn from one seeded RNG:
running the script twice gives identical files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from shapes import COLORS, SHAPES, draw_scene

SEED = 20261124
ROUNDS = 4  # the real dialogs have 10; fewer keeps the demo prompts short
OPTIONS = 100
TRAIN_IDS = range(1, 81)  # every fourth image in COCO val2014, the rest in train2014
VAL_IDS = range(1001, 1031)
NUMBERS = ("one", "two", "three", "four", "five")
CAPTIONS = ("a simple drawing of shapes", "some coloured shapes on a plain background", "a picture with geometric shapes")


def answer_groups() -> list[list[str]]:
    """The shared answer list, as groups: a true answer first, then its paraphrases."""
    groups = [["yes", "yes it is", "yep", "yes there is"], ["no", "no it isn't", "nope", "no there isn't"]]
    groups += [[c, f"it is {c}", f"looks {c}", f"{c} one"] for c in sorted(COLORS)]
    groups += [[s, f"a {s}", f"it is a {s}", f"looks like a {s}"] for s in SHAPES]
    groups += [[w, str(n), f"{w} shapes", f"{w} of them"] for n, w in enumerate(NUMBERS, start=1)]
    groups += [[f"a {c} {s}", f"the {c} {s}", f"{c} {s}"] for c in sorted(COLORS) for s in SHAPES]
    fillers = ["not sure", "i can't tell", "maybe", "i think so", "i don't think so", "hard to say", "no idea",
               "can't see it", "white", "black", "gray", "purple", "orange", "lots", "none", "many"]
    return groups + [[f] for f in fillers]


GROUPS = answer_groups()
ANSWERS = [answer for group in GROUPS for answer in group]
PARAPHRASES = {group[0]: group[1:] for group in GROUPS}


def rounds_for(scene: list[tuple[str, str]], rng: random.Random) -> list[tuple[str, str]]:
    """Questions (lower case, no question mark, as in VisDial) whose true answer follows from the scene."""
    colors, kinds = [c for c, _ in scene], [k for _, k in scene]
    asked = rng.choice(sorted(COLORS))
    candidates = [
        ("how many shapes are there", NUMBERS[len(scene) - 1]),
        (f"is there a {asked} shape", "yes" if asked in colors else "no"),
        ("what is on the left", f"a {colors[0]} {kinds[0]}"),
        ("is the background white", "yes"),
    ]
    candidates += [(f"what color is the {k}", colors[kinds.index(k)]) for k in kinds if kinds.count(k) == 1]
    candidates += [(f"what shape is the {c} one", kinds[colors.index(c)]) for c in colors if colors.count(c) == 1]
    return rng.sample(candidates, ROUNDS)


def options_for(answer: str, rng: random.Random) -> list[str]:
    """100 distinct options: the answer, its paraphrases and random distractors, shuffled."""
    near = [answer, *PARAPHRASES[answer]]
    options = near + rng.sample([a for a in ANSWERS if a not in near], OPTIONS - len(near))
    rng.shuffle(options)
    return options


def relevance_for(options: list[str], answer: str, rng: random.Random) -> list[float]:
    """Dense relevance: 1 for the true answer, 0.4-0.8 for a paraphrase, 0 for the rest."""
    paraphrases = set(PARAPHRASES[answer])
    return [1.0 if o == answer else rng.choice((0.4, 0.6, 0.8)) if o in paraphrases else 0.0 for o in options]


def build_split(out: Path, split: str, image_ids: range, rng: random.Random) -> tuple[dict, list]:
    """The split's dialogs file and (val) its dense annotations, writing each dialog's image."""
    questions: dict[str, int] = {}
    dialogs, dense = [], []
    for image_id in image_ids:
        scene = [(rng.choice(sorted(COLORS)), rng.choice(SHAPES)) for _ in range(rng.randint(1, 3))]
        draw_scene(scene).save(image_path(out, split, image_id), quality=95)
        dialog, relevance_round = [], rng.randint(1, ROUNDS)
        for round_id, (question, answer) in enumerate(rounds_for(scene, rng), start=1):
            options = options_for(answer, rng)
            dialog.append({"question": questions.setdefault(question, len(questions)), "answer": ANSWERS.index(answer),
                           "answer_options": [ANSWERS.index(o) for o in options], "gt_index": options.index(answer)})
            if split == "val" and round_id == relevance_round:
                dense.append({"image_id": image_id, "round_id": round_id, "gt_relevance": relevance_for(options, answer, rng)})
        dialogs.append({"image_id": image_id, "caption": rng.choice(CAPTIONS), "dialog": dialog})
    data = {"questions": list(questions), "answers": ANSWERS, "dialogs": dialogs}
    return {"version": "1.0", "split": split, "data": data}, dense


def image_path(out: Path, split: str, image_id: int) -> Path:
    if split == "val":
        folder, name = "VisualDialog_val2018", f"VisualDialog_val2018_{image_id:012d}.jpg"
    else:
        coco = "val2014" if image_id % 4 == 0 else "train2014"
        folder, name = coco, f"COCO_{coco}_{image_id:012d}.jpg"
    (out / folder).mkdir(exist_ok=True)
    return out / folder / name


def build(out: Path) -> None:
    """Write the demo VisDial set into the empty folder `out`."""
    rng = random.Random(SEED)
    for split, image_ids in (("train", TRAIN_IDS), ("val", VAL_IDS)):
        dialogs, dense = build_split(out, split, image_ids, rng)
        # One line per file, as the real release: 100 options a round make an indented file needlessly long.
        (out / f"visdial_1.0_{split}.json").write_text(json.dumps(dialogs) + "\n")
        if dense:
            (out / f"visdial_1.0_{split}_dense_annotations.json").write_text(json.dumps(dense) + "\n")
        print(f"{split}: {len(image_ids)} dialogs of {ROUNDS} rounds")

