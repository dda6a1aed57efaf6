"""Caption submissions (COCO results format) against COCO-format references, scored by pycocoevalcap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.scoring.files import (
    Submission,
    check_same_ids,
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
    """pycocoevalcap over every image of the reference file (CIDEr-D's idf needs the whole set)."""
    from metrics.captioning import caption_scores

    captions = read_answer_list(submission.predictions, "image_id", "caption")
    references = read_caption_references(submission.annotations)
    check_same_ids(captions, references, submission, "image_id")
    result = caption_scores(captions, references)
    return {
        "scores": {key: result.scores[key] for key in ("CIDEr", "Bleu_4", "ROUGE_L", "METEOR")},
        "by_bleu_order": {f"Bleu_{n}": result.scores[f"Bleu_{n}"] for n in range(1, 5)},
        "per_image_cider": dict(result.per_image_cider),
    }


# ---------------------------------------------------------------- Hateful Memes (challenge CSV)
