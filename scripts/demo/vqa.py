"""The demo VQA set (tasks/demo/vqa) in the official VQAv2 file formats.

The scenes are coloured shapes on a plain background, so questions have one visually grounded answer.
Each question carries 10 human-style answers (mostly the true answer, a few cased or padded variants
and an occasional wrong one), so the official scorer's normalisation and leave-one-out both matter.
Everything is drawn from seeded RNGs (one for the splits, one for the added train images): running the script
twice gives identical files.
"""

from __future__ import annotations

import random
from pathlib import Path

from shapes import COLORS, SHAPES, draw_scene, write_json

SEED = 20261122
SPLITS = {"train2014": (0, 160), "val2014": (1000, 40)}  # name: (first image id, number of images)
# More train images, drawn after the splits above from their own RNG so that those stay as they were: the bundled
# model (scripts/train_tiny_idefics.py) needs more scenes than 160 to learn to look rather than to recall.
MORE_TRAIN = ("train2014", 2000, 480, SEED + 1)  # split, first image id, number of images, seed


def questions_for(shapes: list[tuple[str, str]], rng: random.Random) -> list[dict]:
    """Questions whose single true answer follows from the scene: (question, answer, q type, a type)."""
    colors = [c for c, _ in shapes]
    kinds = [k for _, k in shapes]
    candidates = [("How many shapes are there?", str(len(shapes)), "how many", "number")]
    unique_kinds = [k for k in kinds if kinds.count(k) == 1]
    if unique_kinds:
        kind = rng.choice(unique_kinds)
        candidates.append((f"What color is the {kind}?", colors[kinds.index(kind)], "what color", "other"))
    unique_colors = [c for c in colors if colors.count(c) == 1]
    if unique_colors:
        color = rng.choice(unique_colors)
        candidates.append((f"What shape is the {color} object?", kinds[colors.index(color)], "what", "other"))
    asked = rng.choice(sorted(COLORS))
    candidates.append((f"Is there a {asked} shape?", "yes" if asked in colors else "no", "is there", "yes/no"))
    rng.shuffle(candidates)
    return [dict(zip(("question", "answer", "question_type", "answer_type"), c)) for c in candidates[:3]]


def human_answers(answer: str, rng: random.Random) -> list[str]:
    """Ten annotator answers: mostly the truth, some surface variants, sometimes one disagreement."""
    variants = [answer, answer, answer, answer.capitalize(), f" {answer}", f"{answer}."]
    answers = [rng.choice(variants) for _ in range(10)]
    if rng.random() < 0.3:
        answers[rng.randrange(10)] = rng.choice(["not sure", "maybe", "unknown"])
    return answers


def build_split(out: Path, split: str, first_id: int, count: int, rng: random.Random, qid: int) -> tuple[list, list, int]:
    image_dir = out / split
    image_dir.mkdir(parents=True, exist_ok=True)
    questions, annotations = [], []
    for image_id in range(first_id, first_id + count):
        shapes = [(rng.choice(sorted(COLORS)), rng.choice(SHAPES)) for _ in range(rng.randint(1, 3))]
        draw_scene(shapes).save(image_dir / f"COCO_{split}_{image_id:012d}.jpg", quality=95)
        for q in questions_for(shapes, rng):
            questions.append({"image_id": image_id, "question": q["question"], "question_id": qid})
            answers = human_answers(q["answer"], rng)
            annotations.append({
                "question_id": qid,
                "image_id": image_id,
                "question_type": q["question_type"],
                "answer_type": q["answer_type"],
                "multiple_choice_answer": q["answer"],
                "answers": [
                    {"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)
                ],
            })
            qid += 1
    return questions, annotations, qid


def build(out: Path) -> None:
    """Write the demo VQA set into the empty folder `out`."""
    rng = random.Random(SEED)
    qid = 1
    splits = {}
    for split, (first_id, count) in SPLITS.items():
        questions, annotations, qid = build_split(out, split, first_id, count, rng, qid)
        splits[split] = (count, questions, annotations)
    split, first_id, count, seed = MORE_TRAIN
    questions, annotations, qid = build_split(out, split, first_id, count, random.Random(seed), qid)
    before = splits[split]
    splits[split] = (before[0] + count, before[1] + questions, before[2] + annotations)
    for split, (count, questions, annotations) in splits.items():
        header = {"data_subtype": split, "data_type": "mscoco", "task_type": "Open-Ended",
                  "info": {"description": "evals demo VQA (synthetic shapes)"}, "license": {}}
        write_json(out / f"v2_OpenEnded_mscoco_{split}_questions.json", {**header, "questions": questions})
        write_json(out / f"v2_mscoco_{split}_annotations.json", {**header, "annotations": annotations})
        print(f"{split}: {count} images, {len(questions)} questions")

