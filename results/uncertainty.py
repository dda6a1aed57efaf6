"""What the leaderboard shows of a cell group's uncertainty: a cell's bootstrap interval, or over seeds the interval
of the seed mean from the demonstration vs query variance split of the per-sample scores (metrics.uncertainty).

Over seeds the interval is mean ± 1.96 · sqrt(demonstration variance + query variance), the normal interval of the
row mean under the two-way random-effects model of `variance_split` (seeds x queries, the queries every seed scored,
matched by id). It needs the samples files beside the records, and a metric that is the mean of the per-sample scores
(VQA accuracy, accuracy, ANLS, NDCG, CIDEr-D with fixed document frequencies): for ROC AUC (whose per-sample score is
the hard label's accuracy) it shows no interval. Where several queries share an image (VQA's questions), the columns
are images, each the mean of its questions (the samples' `image_ids`): questions of one image are not independent
draws, and treating them as such would understate the query part.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evals.errors import DataError
from metrics.uncertainty import variance_split
from results.records import CellRecord
from results.schema import METRIC_RANGES
from tasks.base import read_jsonl, require

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile
# How far the mean of a cell's per-sample scores may sit from its score and still be that score: vqaEval.py rounds
# the overall accuracy to 2 decimals.
MEAN_SLACK = 0.006


@dataclass(frozen=True)
class RowUncertainty:
    """A leaderboard cell's interval (NaN where there is none) and, over seeds, the variance split's shares."""

    low: float = math.nan
    high: float = math.nan
    interval: str = ""  # "bootstrap" (one seed), "seeds and queries" (over seeds), "" (none)
    demonstration_share: float = math.nan
    standard_error: float = math.nan


def row_uncertainty(cells: Sequence[CellRecord], metric: str, mean: float) -> RowUncertainty:
    """One seed: the cell's stored bootstrap interval. Several: the seed mean's interval from the variance split."""
    if len(cells) == 1:
        interval = cells[0].intervals.get(metric)
        return RowUncertainty(interval["low"], interval["high"], "bootstrap") if interval else RowUncertainty()
    if any("recomputed" in cell.intervals.get(metric, {}).get("method", "") for cell in cells):
        return RowUncertainty()  # a corpus metric (ROC AUC): its per-sample scores are another metric's
    read = [read_samples_of(cell) for cell in cells]
    scores = [per_sample for per_sample, _ in read]
    if not all(is_mean_of(cell.scores[metric], per_sample) for cell, per_sample in zip(cells, scores)):
        return RowUncertainty()
    common = sorted(set.intersection(*(set(s) for s in scores)))
    columns = independent_columns(common, read[0][1])
    if len(columns) < 2:
        return RowUncertainty()
    split = variance_split([[math.fsum(s[i] for i in ids) / len(ids) for ids in columns] for s in scores])
    error = math.sqrt(split.total)
    low, high = METRIC_RANGES.get(metric, (-math.inf, math.inf))  # a normal interval may pass a bound the score cannot
    return RowUncertainty(max(low, mean - Z_95 * error), min(high, mean + Z_95 * error), "seeds and queries",
                          split.demonstration_share, error)


def is_mean_of(score: float, per_sample: Mapping[str, float]) -> bool:
    """Whether `score` is the mean of the per-sample scores (so their variance split describes it)."""
    return bool(per_sample) and abs(math.fsum(per_sample.values()) / len(per_sample) - score) <= MEAN_SLACK


def independent_columns(ids: Sequence[str], images: Mapping[str, str]) -> list[list[str]]:
    """The queries as independent units: one per image where some image serves several queries, else one each."""
    by_image: dict[str, list[str]] = {}
    for query in ids:
        by_image.setdefault(images.get(query, query), []).append(query)
    if all(len(group) == 1 for group in by_image.values()):
        return [[query] for query in ids]
    return [by_image[image] for image in sorted(by_image)]


def read_samples_of(cell: CellRecord) -> tuple[dict[str, float], dict[str, str]]:
    """Query id -> score, and query id -> its first image (where the samples name one), from the cell's samples file;
    one line naming the file where it is missing or malformed."""
    path = cell.samples_path
    if not path.is_file():
        raise DataError(f"{path}: not found; --uncertainty over seeds reads each cell's per-sample scores")
    scores, images = {}, {}
    for number, line in read_jsonl(path):
        where = f"line {number}"
        score = require(line, "score", path, where)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise DataError(f"{path}: {where}: field 'score' is not a finite number")
        query = str(require(line, "id", path, where))
        scores[query] = float(score)
        image_ids = line.get("image_ids") or []
        if isinstance(image_ids, list) and image_ids and isinstance(image_ids[0], str):
            images[query] = image_ids[0]
    return scores, images
