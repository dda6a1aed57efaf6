"""Ranked-task submissions: HatefulMemes CSV, VisDial ranks, Winoground pair scores, classification labels."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.scoring.files import (
    Entry,
    Submission,
    covered_ids,
    is_label,
    is_number,
    matched,
    read_json_list,
    read_jsonl,
    read_text,
    reject_unknown,
)

HATEFUL_MEMES_COLUMNS = ("id", "proba", "label")


def read_hateful_memes_csv(path: Path) -> list[Entry]:
    """The challenge submission: a CSV with exactly the columns id, proba, label, one row per meme."""
    try:
        rows = list(csv.reader(read_text(path).splitlines()))
    except csv.Error as error:
        raise DataError(f"{path}: malformed CSV ({error})") from None
    header = [name.strip() for name in rows[0]] if rows else []
    if sorted(header) != sorted(HATEFUL_MEMES_COLUMNS):
        missing = [c for c in HATEFUL_MEMES_COLUMNS if c not in header]
        extra = [c for c in header if c not in HATEFUL_MEMES_COLUMNS]
        raise DataError(f"{path}: the header must name the columns id,proba,label; got {','.join(header) or 'nothing'}"
                        f" (missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'})")
    entries = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}: line {number} has {len(row)} fields, the header {len(header)}")
        entries.append(Entry(path, f"line {number}", {name: value.strip() for name, value in zip(header, row)}))
    return entries


def probability(entry: Entry) -> float:
    text = entry.get("proba")
    try:
        value = float(text)
    except ValueError:
        entry.fail(f"has proba '{text}', not a number")
    if not math.isfinite(value):
        entry.fail(f"has proba '{text}', not a finite number")
    if not 0.0 <= value <= 1.0:
        entry.fail(f"has proba {text}, outside [0, 1]")
    return value


def score_hateful_memes(submission: Submission) -> dict[str, Any]:
    """ROC AUC of `proba` (the challenge metric) and accuracy of `label`, against dev.jsonl's labels; with --partial
    over the memes the file holds, as MMF's `roc_auc` metric is scikit-learn's `roc_auc_score(expected, output)` over
    the samples it is given ("not defined when expected tensor only contains one label")."""
    from metrics.ranking import accuracy, roc_auc

    memes, coverage = matched(submission, read_hateful_memes_csv(submission.predictions), read_jsonl(submission.annotations))
    pairs = memes.values()
    truth = [gold.binary("label") for gold, _ in pairs]
    probabilities = [probability(predicted) for _, predicted in pairs]
    labels = [predicted.binary("label") for _, predicted in pairs]
    if len(set(truth)) < 2:
        labelled = "every label" if len(truth) == coverage.annotated else f"every label of the {len(truth)} predicted memes"
        raise DataError(f"{submission.annotations}: {labelled} is {truth[0]}; ROC AUC needs both classes")
    return {"scores": {"roc_auc": roc_auc(truth, probabilities), "accuracy": accuracy(labels, truth)}, **coverage.report()}


# ---------------------------------------------------------------- VisDial v1.0 (dense annotations)

def visdial_entries(path: Path, field: str, what: str) -> Iterator[tuple[Entry, tuple[str, int], list]]:
    """(entry, (image_id, round_id), the entry's `field` list) for each entry of a VisDial JSON list, each round once."""
    seen: set[tuple[str, int]] = set()
    for entry in read_json_list(path, ("image_id", "round_id", field), what):
        round_id = entry.get("round_id")
        if isinstance(round_id, bool) or not isinstance(round_id, int):
            entry.fail(f"has round_id {round_id!r}, not an integer")
        key = (entry.id("image_id"), round_id)
        if key in seen:
            entry.fail(f"repeats image_id {key[0]} round_id {round_id}")
        seen.add(key)
        yield entry.known_as(f"image_id {key[0]}, round_id {round_id}"), key, entry.items(field)


def read_visdial_ranks(path: Path, options: int) -> dict[tuple[str, int], list[int]]:
    """The official submission: [{image_id, round_id, ranks}], ranks a permutation of 1..options (1 = best)."""
    ranks = {}
    for entry, key, given in visdial_entries(path, "ranks", "entry"):
        if not all(type(r) is int for r in given):  # a string or null would not even sort beside the integers
            entry.fail("has a 'ranks' value that is not an integer")
        if sorted(given) != list(range(1, options + 1)):
            entry.fail(f"has 'ranks' that are not a permutation of 1..{options}")
        ranks[key] = given
    return ranks


def read_dense_relevance(path: Path) -> dict[tuple[str, int], list[float]]:
    """The dense annotations: for one round of each dialog, the relevance of each of the (100) options."""
    relevance = {}
    for entry, key, values in visdial_entries(path, "gt_relevance", "annotation"):
        if not all(is_number(v) for v in values):
            entry.fail("has a 'gt_relevance' value that is not a finite number")
        if not any(v > 0 for v in values):
            entry.fail("has no relevant option: NDCG is undefined")
        relevance[key] = [float(v) for v in values]
    if not relevance or len({len(v) for v in relevance.values()}) != 1:
        raise DataError(f"{path}: expected annotations whose gt_relevance lists all have one length (the number of options)")
    return relevance


def rounds_preview(rounds: list[tuple[str, int]]) -> str:
    return ", ".join(f"image_id {i} round_id {r}" for i, r in rounds[:5]) + (" ..." if len(rounds) > 5 else "")


def score_visdial(submission: Submission) -> dict[str, Any]:
    """NDCG of the densely annotated round of each dialog; the submission's other rounds are ignored,
    as the challenge server does (a val submission ranks every round). With --partial, over the annotated rounds
    the file ranks, as visdialch's NDCG metric averages over the rounds it observes
    (`_ndcg_numerator / _ndcg_denominator`, the denominator growing by each batch's size)."""
    from metrics.ranking import ndcg_sklearn, visdial_ndcg

    relevance = read_dense_relevance(submission.annotations)
    ranks = read_visdial_ranks(submission.predictions, len(next(iter(relevance.values()))))
    reject_unknown({image_id for image_id, _ in ranks}, {image_id for image_id, _ in relevance}, submission, "image_id")
    coverage = covered_ids([key for key in ranks if key in relevance], relevance, submission, "annotated round",
                           describe=rounds_preview)
    ndcg = ndcg_sklearn if submission.variant == "ndcg_sklearn" else visdial_ndcg
    overall, per_round = ndcg([ranks[key] for key in coverage.ids], [relevance[key] for key in coverage.ids])
    return {"scores": {"ndcg": overall}, **coverage.report(),
            "per_round": {f"{i}_{r}": value for (i, r), value in zip(coverage.ids, per_round)}}


# ---------------------------------------------------------------- Winoground

PAIR_KEYS = ("c0_i0", "c0_i1", "c1_i0", "c1_i1")


def score_winoground(submission: Submission) -> dict[str, Any]:
    """Text, image and group scores from the four scores s(caption_i, image_j) of each example; with --partial over
    the examples the file holds, as each score is the share of the examples given that it counts as right."""
    from metrics.ranking import PairScores, winoground_outcome, winoground_scores

    pairs = {}
    examples, coverage = matched(submission, read_jsonl(submission.predictions), read_jsonl(submission.annotations))
    for rid, (example, predicted) in examples.items():
        for key in ("caption_0", "caption_1", "image_0", "image_1"):
            example.get(key)
        pairs[rid] = PairScores(*(predicted.number(key) for key in PAIR_KEYS))
    return {"scores": winoground_scores(list(pairs.values())), **coverage.report(),
            "per_example": {rid: winoground_outcome(p) for rid, p in pairs.items()}}


# ---------------------------------------------------------------- classification (ImageNet, RenderedSST2, ScienceQA)

def top5_labels(entry: Entry) -> list[str]:
    ranked = entry.items("top5")
    if not all(is_label(value) for value in ranked):
        entry.fail("has a 'top5' entry that is not a label (a string or an integer)")
    labels = [str(value) for value in ranked]
    if len(labels) != 5 or len(set(labels)) != 5:
        entry.fail(f"has a 'top5' of {len(labels)} labels ({len(set(labels))} distinct), expected 5 distinct labels")
    return labels


def score_classification(submission: Submission) -> dict[str, Any]:
    """Top-1 accuracy of `label`, and top-5 accuracy when every prediction has a `top5` list; with --partial over the
    examples the file holds (an accuracy is the share of the examples given)."""
    from metrics.ranking import accuracy, percent, top_k_hits

    examples, coverage = matched(submission, read_jsonl(submission.predictions), read_jsonl(submission.annotations))
    pairs = examples.values()
    truth = [gold.label("label") for gold, _ in pairs]
    scores = {"accuracy": accuracy([predicted.label("label") for _, predicted in pairs], truth)}
    if all("top5" in predicted.record for _, predicted in pairs):
        ranked = [top5_labels(predicted) for _, predicted in pairs]
        scores["top5_accuracy"] = percent(sum(top_k_hits(ranked, truth, 5)), len(truth))
    return {"scores": scores, **coverage.report()}
