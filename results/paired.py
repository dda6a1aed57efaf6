"""Paired comparison of two runs' cells (`evals compare A B --test paired`): per cell, B - A on the same queries, its
paired-bootstrap interval, a p-value, Holm's correction across the cells, and the queries that flip."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from evals.errors import ConfigError
from metrics.uncertainty import LEVEL, RESAMPLES, PairedComparison, flips, holm, paired_difference, paired_statistic
from results.compare import compared_metrics
from results.pairing import CellSamples, Pairing, image_groups, pair_samples, query_examples
from results.records import CellRecord, index_unique

# Corpus metrics that no per-sample score decomposes: recomputed by the task's metric on each resample.
RECOMPUTED = frozenset({"roc_auc"})
# Metrics whose per-sample scores average to the cell's score only with the idf of the whole set (CIDEr-D's document
# frequencies): the test is on those per-image scores, so the resamples keep the full set's idf (said in each row).
PER_IMAGE = frozenset({"CIDEr"})
# Caption metrics recomputed on each resample from per-image statistics (ROUGE-L's per-image scores, BLEU's n-gram
# counts, METEOR's match statistics), made once per side by pycocoevalcap and the METEOR jar on the paired images: the
# same statistics the cell's own interval resamples (tasks.captioning), so no Java runs per resample.
CAPTION_STATISTICS = frozenset({"ROUGE_L", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR"})
MEAN_SLACK = 0.005 + 1e-6  # points: a record writes its scores with two decimals; per-sample scores whose mean rounds to it decompose it


@dataclass(frozen=True)
class Settings:
    """How the paired tests run (recorded nowhere: the numbers depend on them, so the table says them)."""

    resamples: int = RESAMPLES
    level: float = LEVEL
    seed: int = 0
    common_only: bool = False
    data_dir: Path | None = None


@dataclass(frozen=True)
class PairedRow:
    """One metric of one pair of cells: both scores and, where it could be tested, the comparison (B - A)."""

    cell: str
    metric: str
    a: float
    b: float
    comparison: PairedComparison | None
    how: str  # what was resampled and tested, or why nothing was
    better_in_a: tuple = ()
    better_in_b: tuple = ()
    adjusted_p: float | None = None
    note: str | None = None  # samples left out with --common-ids

    def columns(self) -> tuple[str, ...]:
        """The row as PAIRED_COLUMNS shows it."""
        both = f"{self.a:.2f}", f"{self.b:.2f}"
        if self.comparison is None:
            return (self.cell, self.metric, *both, "", "", "", "", self.how, "")
        c, interval = self.comparison, self.comparison.interval
        flipped = f"{len(self.better_in_a)}/{len(self.better_in_b)}" if c.a_only is not None or self.better_in_a or self.better_in_b else ""
        return (self.cell, self.metric, *both, f"{c.difference:+.2f}", f"[{interval.low:+.2f}, {interval.high:+.2f}]",
                f"{c.p_value:.3g}", f"{self.adjusted_p:.3g}", f"{c.test}: {self.how}", flipped)

    def as_record(self) -> dict[str, Any]:
        return {"cell": self.cell, "metric": self.metric, "a": self.a, "b": self.b, "how": self.how,
                "comparison": self.comparison.as_record() if self.comparison else None, "adjusted_p": self.adjusted_p,
                "better_in_a": list(self.better_in_a), "better_in_b": list(self.better_in_b)}


PAIRED_COLUMNS = ("cell", "metric", "A", "B", "B - A", "95% CI", "p", "p (Holm)", "test", "flips A/B")


def flip_lines(rows: Sequence[PairedRow], shown: int, settings: Settings) -> list[str]:
    """Below the table: the first flipped ids of each cell (better in A, better in B), notes, and how it was computed."""
    lines = []
    for row in rows:
        if row.note:
            lines.append(row.note)
        for side, ids in (("A", row.better_in_a), ("B", row.better_in_b)):
            if ids and shown > 0:
                more = f" (+{len(ids) - shown} more)" if len(ids) > shown else ""
                lines.append(f"{row.cell} {row.metric}: better in {side}: {', '.join(map(str, ids[:shown]))}{more}")
    lines.append(f"{settings.level:.0%} paired percentile bootstrap, {settings.resamples} resamples, seed {settings.seed}; "
                 f"p (Holm): adjusted across the {sum(r.comparison is not None for r in rows)} rows tested; "
                 "flips A/B: queries scoring higher in A / in B")
    return lines


def cell_label(a: CellRecord, b: CellRecord) -> str:
    """A's label, with B's shots where the two differ (0 against k shots within one run)."""
    return a.label if a.shots == b.shots else a.label.replace(f" {a.shots}-shot ", f" {a.shots}->{b.shots}-shot ")


def match_cells(a: Sequence[CellRecord], b: Sequence[CellRecord], a_shots: int | None = None,
                b_shots: int | None = None) -> list[tuple[CellRecord, CellRecord]]:
    """Cells of A and B with the same (model, task, shots, selection, seed); with `a_shots`/`b_shots`, A's cells of
    `a_shots` shots against B's of `b_shots` that agree on everything else (A and B may be the same run)."""
    if (a_shots is None) != (b_shots is None):
        raise ConfigError("--a-shots and --b-shots go together: the shots of A's cells and of B's")
    if a_shots is None:
        left, right = index_unique(a, lambda r: r.key), index_unique(b, lambda r: r.key)
    else:
        without_shots = lambda r: (r.model, r.task, r.selection, r.seed)
        left = index_unique([r for r in a if r.shots == a_shots], without_shots)
        right = index_unique([r for r in b if r.shots == b_shots], without_shots)
    pairs = [(left[key], right[key]) for key in sorted(left.keys() & right.keys())]
    if not pairs:
        shots = f" ({a_shots} shots in A, {b_shots} in B)" if a_shots is not None else ""
        raise ConfigError(f"no cell of A matches a cell of B{shots}: nothing to compare")
    return pairs


def compare_paired(a: Sequence[CellRecord], b: Sequence[CellRecord], metrics: Sequence[str] = (), settings: Settings = Settings(),
                   a_shots: int | None = None, b_shots: int | None = None) -> list[PairedRow]:
    """Every matched pair of cells, each compared metric tested on its samples, Holm-adjusted across the rows tested."""
    rows = []
    examples: dict[tuple[str, str], Any] = {}
    statistics: dict[tuple, Mapping[str, Any]] = {}  # a cell's caption statistics on its paired ids, made once for all its metrics
    for left, right in match_cells(a, b, a_shots, b_shots):
        pairing = pair_samples(left.path, right.path, settings.common_only)
        split = str(left.protocol.get("query_split", ""))
        if (left.task, split) not in examples:
            examples[(left.task, split)] = query_examples(left.task, split, settings.data_dir)
        for metric in compared_metrics(left, b, metrics):
            rows.append(paired_row(left, right, metric, pairing, examples[(left.task, split)], settings, statistics))
    return adjust(rows)


def adjust(rows: list[PairedRow]) -> list[PairedRow]:
    """Holm's adjusted p-values across the rows that were tested (the family is the cells compared)."""
    tested = [i for i, row in enumerate(rows) if row.comparison is not None]
    adjusted = holm([rows[i].comparison.p_value for i in tested]) if tested else []
    out = list(rows)
    for i, p in zip(tested, adjusted):
        out[i] = replace(rows[i], adjusted_p=p)
    return out


def paired_row(a: CellRecord, b: CellRecord, metric: str, pairing: Pairing, data: tuple[Mapping | None, str],
               settings: Settings, statistics: dict[tuple, Mapping[str, Any]]) -> PairedRow:
    """One metric of a pair of cells, tested the way the metric allows (see `how_to_test`)."""
    found, why = data
    label, ids = cell_label(a, b), pairing.ids
    base = PairedRow(label, metric, a.scores.get(metric, float("nan")), b.scores.get(metric, float("nan")), None, "",
                     note=pairing.note())
    if metric not in a.scores or metric not in b.scores:
        return replace(base, how=f"not tested: {metric} missing from {a.path if metric not in a.scores else b.path}")
    groups = image_groups(ids, found)
    unit = "by image" if groups else "by query"
    options = {"groups": groups, "resamples": settings.resamples, "level": settings.level, "seed": settings.seed}
    if metric in RECOMPUTED or metric in CAPTION_STATISTICS:
        if found is None:
            return replace(base, how=f"not tested: {metric} is recomputed from the task's references; {why}")
        if metric in RECOMPUTED:
            score_a, score_b = (recompute(a, metric, found, ids, side.predictions) for side in (pairing.a, pairing.b))
            how = f"{metric} recomputed per resample, {unit}"
        else:
            score_a, score_b = (caption_statistic(side, metric, found, ids, statistics) for side in (pairing.a, pairing.b))
            how = f"{metric} recomputed per resample from per-image statistics, {unit}"
        return replace(base, comparison=paired_statistic(score_a, score_b, ids, **options), how=how)
    if not (decomposes(a.scores[metric], pairing.a.mean()) and decomposes(b.scores[metric], pairing.b.mean())):
        return replace(base, how=f"not tested: the per-sample scores are not {metric}'s")
    result = paired_difference(pairing.scores_a, pairing.scores_b, ids, **options)
    better_a, better_b = flips(pairing.scores_a, pairing.scores_b, list(ids))
    how = f"per-image {metric} (full set's idf), {unit}" if metric in PER_IMAGE else f"per-query scores, {unit}"
    return replace(base, comparison=result, how=how, better_in_a=tuple(better_a), better_in_b=tuple(better_b))


def decomposes(score: float, sample_mean: float) -> bool:
    return abs(score - sample_mean) <= MEAN_SLACK


def recompute(record: CellRecord, metric: str, examples: Mapping, ids: Sequence[str], predictions: Mapping[str, Any]):
    """`positions -> metric` of one run on a resample: the task's own metric on the drawn queries, each draw under its
    own key (a query drawn twice counts twice in ROC AUC's ranking)."""
    from evals.registry import TASKS

    task = TASKS.get(record.task)
    variant = str(record.protocol.get("metric", ""))
    score = task.metric_named(variant if variant in task.metric_variants else None)

    def statistic(positions) -> float:
        keys = [str(n) for n in range(len(positions))]
        drawn = [replace(examples[ids[p]], id=key) for key, p in zip(keys, positions)]
        return score({key: predictions[ids[p]] for key, p in zip(keys, positions)}, drawn).scores[metric]

    return statistic


def caption_statistic(side: CellSamples, metric: str, examples: Mapping, ids: Sequence[str],
                      cache: dict[tuple, Mapping[str, Any]]):
    """`positions -> metric` for one side's captions of the paired images, from their per-image statistics (scored
    once per side and set of paired ids, kept in `cache` for the side's other metrics: with --common-ids one cell
    paired with two others may pair different ids)."""
    from metrics.captioning import caption_scores
    from tasks.captioning import caption_resampling

    key = (side.path, tuple(ids))
    if key not in cache:
        scored = caption_scores({i: str(side.predictions[i]) for i in ids}, {i: examples[i].references for i in ids})
        cache[key] = caption_resampling(scored)
    resampling = cache[key][metric]
    if resampling.statistic is not None:
        return resampling.statistic
    values = np.asarray(resampling.values, dtype=np.float64)
    return lambda positions: float(values[positions].mean())


def gate_p_values(rows: Sequence[PairedRow]) -> dict[tuple[str, str], float]:
    """(cell label, metric) -> Holm-adjusted p, for the noise-aware gate."""
    return {(row.cell, row.metric): row.adjusted_p for row in rows if row.adjusted_p is not None}
