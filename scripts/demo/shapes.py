"""Shared drawing for the synthetic demo sets: coloured shapes on a plain background."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

IMAGE_SIZE = 48
COLORS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 70, 220), "yellow": (235, 215, 40)}
BACKGROUND = (245, 245, 245)
SHAPES = ("circle", "square", "triangle")


def draw_scene(shapes: list[tuple[str, str]]) -> Image.Image:
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    cell = IMAGE_SIZE // len(shapes)
    for slot, (color, shape) in enumerate(shapes):
        x0, y0 = slot * cell + 2, IMAGE_SIZE // 2 - cell // 2 + 2
        box = (x0, y0, x0 + cell - 4, y0 + cell - 4)
        fill = COLORS[color]
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=fill)
    return image


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
