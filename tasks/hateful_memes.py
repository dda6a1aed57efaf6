"""Hateful Memes (Kiela et al. 2020, arXiv 2005.04790): is a meme (image + its overlaid text) hateful? The
model scores "yes" and "no" after the prompt; P(yes) is the softmax over the two, scored by ROC AUC.

Layout (the official release): `train.jsonl`, `dev_seen.jsonl`, one object a line with `id`, `img` (the image
path relative to the folder, `img/<id>.png`), `text` (the meme's OCR text, shown in the prompt) and `label`
(1 hateful, 0 not). Queries come from `dev_seen.jsonl` (labelled; the phase-1 release called the same 500
memes `dev.jsonl`, read when dev_seen.jsonl is absent). `test_seen.jsonl` (labelled in the phase-2 release)
is the split Flamingo reported; a task over it is one declaration.

The corpus metric is ROC AUC over P(yes) (m4 scored hard labels, which is balanced accuracy, not AUC);
accuracy of the hard label (yes when P(yes) >= 0.5, so a tie says yes) is reported beside it, and is each
sample's score in the records (100 when its hard label is right).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.errors import ConfigError, DataError
from evals.records import Example, ImageRef
from evals.registry import TASKS
from metrics.ranking import accuracy, roc_auc, yes_probability
from tasks.base import (MetricResult, RankQuery, Resampling, Task, checked_id, checked_text, gold_answer, per_query_mean, read_jsonl, require, require_id,
                        require_text, some_records)
from tasks.hf import HFSpec, Row

DEMO_ROOT = Path(__file__).parent / "demo" / "hateful_memes"
ANSWERS = ("yes", "no")  # candidate order: decide reads scores[0] as "yes"
PHASE_ONE_NAMES = {"dev_seen": "dev"}  # split -> its file name in the phase-1 release


def meme_example(meme_id: str, image: ImageRef, text: str, label: Any, where: str) -> Example:
    if label not in (0, 1) or isinstance(label, bool):
        raise DataError(f"{where}: 'label' is {label!r}, expected 0 or 1")
    return Example(meme_id, (image,), {"text": text}, (ANSWERS[0] if label == 1 else ANSWERS[1],))


def split_file(root: Path, split: str) -> Path:
    path = root / f"{split}.jsonl"
    if not path.is_file() and split in PHASE_ONE_NAMES and (root / f"{PHASE_ONE_NAMES[split]}.jsonl").is_file():
        return root / f"{PHASE_ONE_NAMES[split]}.jsonl"
    return path


def load_memes(root: Path, split: str) -> list[Example]:
    path = split_file(root, split)
    examples, seen = [], set()
    for n, record in some_records(read_jsonl(path), path, "memes"):
        meme_id, label = require_id(record, "id", path, f"line {n}"), require(record, "label", path, f"line {n}")
        img, text = (require_text(record, key, path, f"line {n}") for key in ("img", "text"))
        if meme_id in seen:
            raise DataError(f"{path}: line {n} repeats id {meme_id}")
        seen.add(meme_id)
        examples.append(meme_example(meme_id, ImageRef(img, root / img), text, label, f"{path}: line {n}"))
    return examples


def hf_meme(row: Row) -> Example:
    """A row with `id`, `image`, `text` and `label` (0/1, or a ClassLabel with not-hateful/hateful)."""
    meme_id, text = checked_id(row.get("id"), "id", row.where()), checked_text(row.get("text"), "text", row.where())
    return meme_example(meme_id, row.image("image", f"img/{meme_id}"), text, row.get("label"), row.where())


def yes_no_query(example: Example) -> list[RankQuery]:
    return [RankQuery(example, ANSWERS)]


def hateful_probability(example: Example, scores: Sequence[Sequence[float]]) -> dict[str, Any]:
    """P(yes) from the two answers' log-likelihoods, and the hard label it implies (1 when P(yes) >= 0.5)."""
    ((yes, no),) = scores
    proba = yes_probability(yes, no)
    return {"proba": proba, "label": int(proba >= 0.5)}


def score_memes(predictions: Mapping[str, Any], examples: Sequence[Example]) -> MetricResult:
    """ROC AUC of P(yes) (headline) and accuracy of the hard label, 0-100; a sample scores its hard label."""
    labels = [int(gold_answer(e) == ANSWERS[0]) for e in examples]
    if len(set(labels)) < 2:
        raise ConfigError(f"ROC AUC needs hateful and non-hateful memes among the {len(examples)} queries; raise --limit")
    predicted = [str(predictions[e.id]["label"]) for e in examples]
    gold = [str(label) for label in labels]
    per_sample = {e.id: 100.0 * (p == g) for e, p, g in zip(examples, predicted, gold)}
    probabilities = [predictions[e.id]["proba"] for e in examples]
    scores = {"roc_auc": roc_auc(labels, probabilities), "accuracy": accuracy(predicted, gold)}

    def resampled_auc(positions) -> float:  # ROC AUC ranks the whole set: recomputed on each resample
        return roc_auc([labels[p] for p in positions], [probabilities[p] for p in positions])

    resampling = {"roc_auc": Resampling(tuple(e.id for e in examples), "ROC AUC recomputed on each resample",
                                        statistic=resampled_auc),
                  "accuracy": per_query_mean(per_sample)}
    return MetricResult(scores, per_sample, resampling=resampling)


def memes_task(name: str, **overrides) -> Task:
    """Declare and register a Hateful Memes-format benchmark."""
    settings = dict(
        name=name, paper="Kiela et al. 2020, arXiv 2005.04790", kind="rank", load=load_memes,
        support_split="train", query_split="dev_seen", template="hateful_memes", shot_answer=gold_answer,
        rank_queries=yes_no_query, decide=hateful_probability, metric=score_memes, headline="roc_auc",
        layout="train.jsonl, dev_seen.jsonl (or dev.jsonl) with id, img, text, label; img/<id>.png",
        zero_shot_text_shots=0, submission_format="hateful_memes",
    )
    return TASKS.add(name, Task(**{**settings, **overrides}))


memes_task("hateful_memes", data_folder="hateful_memes",
           hf=HFSpec(hf_meme, {"train": "train", "dev_seen": "validation"}, hub_id="emily49/hateful_memes_train_dev"))
memes_task("demo_memes", paper="synthetic colour memes in Hateful Memes format (scripts/demo/hateful_memes.py)",
           default_root=DEMO_ROOT, suites=("demo",))
