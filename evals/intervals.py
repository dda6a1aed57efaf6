"""A cell's 95% bootstrap intervals: each score resampled as its metric declares (tasks.base.Resampling).

How each metric is resampled (the record's `method` says which, per score):
- Mean-decomposable scores (VQA accuracy, accuracy, ANLS, Winoground text/image/group, VisDial NDCG per dialog
  round, MMBench circular accuracy per question): the mean of per-query values, by `bootstrap_mean`.
- ROC AUC (Hateful Memes): recomputed on each resample from the redrawn queries' labels and probabilities
  (`bootstrap_statistic`).
- CIDEr-D and ROUGE-L: the mean of the per-image scores, with CIDEr-D's document frequencies fixed from the full
  reference set: rerunning pycocoevalcap (and its Java tokenizer) 1,000 times per cell is out of reach, so the
  interval is conditional on the reference corpus and somewhat narrower than one that redrew the idf too.
- BLEU-1..4: recomputed exactly on each resample from the redrawn images' summed n-gram counts and lengths
  (metrics.captioning.corpus_bleu, equal to pycocoevalcap's corpus BLEU on the full set).
- METEOR: recomputed exactly on each resample from the redrawn images' summed match statistics (the jar's SCORE
  answers, kept per image), aggregated as the jar's EVAL does (metrics.meteor, English parameters of -l en -norm).
- Any other task: its headline score as the mean of its per-sample scores, unless the metric declares otherwise.

Queries that share an image (the questions about one VQA image, the rounds of one VisDial dialog, MMBench's circular
passes) are redrawn together: a cluster bootstrap by the query's first image id. The intervals depend only on the
per-query scores and ids (seed 0), never on batch size, process count or resume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from evals.errors import DataError
from evals.records import Example
from metrics.uncertainty import bootstrap_mean, bootstrap_statistic
from tasks.base import MetricResult, Resampling, Task

BOOTSTRAP_SEED = 0


def cell_intervals(task: Task, metric: MetricResult, queries: Sequence[Example], resamples: int) -> dict[str, dict]:
    """Metric name -> Interval.as_record() for each score that has a resampling; {} when `resamples` is 0."""
    if resamples == 0:
        return {}
    plans = resamplings(task, metric)
    image_of = image_groups(queries)
    intervals = {}
    for name in metric.scores:
        if name in plans:
            interval = interval_of(plans[name], image_of, resamples)
            if interval is not None:
                intervals[name] = interval
    return intervals


def resamplings(task: Task, metric: MetricResult) -> dict[str, Resampling]:
    """The metric's declarations, with the generic one for the headline: the mean of the per-sample scores."""
    plans = dict(metric.resampling)
    if task.headline not in plans and task.headline in metric.scores:
        ids = tuple(metric.per_sample)
        plans[task.headline] = Resampling(ids, "mean of per-query scores",
                                          values=tuple(metric.per_sample[i] for i in ids))
    return plans


def image_groups(queries: Sequence[Example]) -> dict[str, str] | None:
    """Query id -> its first image's id where some image serves several queries; None where none does (each query
    is its own unit, the plain bootstrap)."""
    image_of = {q.id: q.images[0].id if q.images else q.id for q in queries}
    return image_of if len(set(image_of.values())) < len(image_of) else None


def interval_of(plan: Resampling, image_of: Mapping[str, str] | None, resamples: int) -> dict | None:
    """One score's interval record; None where a resample leaves the metric undefined (ROC AUC with one class)."""
    groups = plan.groups
    if groups is None and image_of is not None and all(i in image_of for i in plan.ids):
        groups = tuple(image_of[i] for i in plan.ids)
    if plan.values is not None:
        interval = bootstrap_mean(plan.values, plan.ids, groups=groups, resamples=resamples, seed=BOOTSTRAP_SEED)
    else:
        try:
            interval = bootstrap_statistic(plan.statistic, plan.ids, groups=groups, resamples=resamples,
                                           seed=BOOTSTRAP_SEED)
        except DataError:  # a resample of a small set without both classes: no interval rather than a wrong one
            return None
    return {**interval.as_record(), "method": f"{interval.method} bootstrap; {plan.method}"}
