"""Caption submissions (COCO results format) against COCO-format references, scored by pycocoevalcap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.scoring.files import (
    Submission,
    covered_ids,
    id_preview,
    index_by_id,
    read_answer_list,
    top_level_list,
)


def read_caption_references(path: Path) -> dict[str, list[str]]:
    """A COCO-format caption file: `images` (the evaluated set, in order) and `annotations` {image_id, caption}."""
    references: dict[str, list[str]] = {rid: [] for rid in index_by_id(top_level_list(path, "images", "image"))}
    for entry in top_level_list(path, "annotations", "annotation"):
        image_id, caption = entry.id("image_id"), entry.text("caption")
        if image_id not in references:
            entry.fail(f"is for image_id {image_id}, which 'images' does not list")
        references[image_id].append(caption)
    uncaptioned = [rid for rid, captions in references.items() if not captions]
    if uncaptioned:
        raise DataError(f"{path}: no caption annotation for image_ids {id_preview(uncaptioned)}")
    return references


def score_captions(submission: Submission) -> dict[str, Any]:
    """pycocoevalcap over every image of the reference file (CIDEr-D's idf needs the whole set), or with --partial
    over the images the results hold, as the official example scores a subset: `coco_eval.params['image_id'] =
    coco_result.getImgIds()` before COCOEvalCap.evaluate's `imgIds = self.params['image_id']` (by default
    `coco.getImgIds()`, the reference file's). pycocotools' loadRes keeps the reference images the results name, in
    the reference file's order, and asserts there are no others; so CIDEr-D's idf is over the covered images alone."""
    from metrics.captioning import caption_scores

    captions = read_answer_list(submission.predictions, "image_id", "caption")
    references = read_caption_references(submission.annotations)
    coverage = covered_ids(captions, references, submission, "image_id")
    result = caption_scores(captions, {image_id: references[image_id] for image_id in coverage.ids})
    return {
        "scores": {key: result.scores[key] for key in ("CIDEr", "Bleu_4", "ROUGE_L", "METEOR")},
        **coverage.report(),
        "by_bleu_order": {f"Bleu_{n}": result.scores[f"Bleu_{n}"] for n in range(1, 5)},
        "per_image_cider": dict(result.per_image_cider),
    }


# ---------------------------------------------------------------- Hateful Memes (challenge CSV)
