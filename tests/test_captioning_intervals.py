"""METEOR's bootstrap interval: recomputed from the redrawn images' summed statistics, written into the cell record."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from evals.models.scripted import ScriptedModel
from evals.runner import RunSettings, run
from metrics.meteor import corpus_meteor
from metrics.uncertainty import bootstrap_statistic
from tasks.captioning import METEOR_RESAMPLING, meteor_resampling

SETTINGS = RunSettings(shots=(0,), seeds=(0,), batch_size=8)


def caption_record(folder: Path) -> dict:
    return json.loads(next((folder / "scripted" / "demo_caption").glob("*seed0.json")).read_text())


@pytest.fixture(scope="module")
def demo_caption(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("caption")
    run(ScriptedModel(), ["demo_caption"], replace(SETTINGS, output_dir=out))
    return caption_record(out)


def test_the_record_carries_a_meteor_interval_around_the_score(demo_caption):
    interval = demo_caption["intervals"]["METEOR"]
    assert interval["low"] <= interval["estimate"] <= interval["high"]
    assert interval["low"] < interval["high"]  # the scripted captions differ in quality: a real spread
    assert interval["estimate"] == pytest.approx(demo_caption["scores"]["METEOR"], rel=1e-12)
    assert (interval["resamples"], interval["seed"], interval["unit"]) == (1000, 0, "query")
    assert interval["method"] == f"percentile bootstrap; {METEOR_RESAMPLING}"


def test_the_same_seed_gives_the_same_meteor_interval(demo_caption, tmp_path):
    run(ScriptedModel(), ["demo_caption"], replace(SETTINGS, output_dir=tmp_path, batch_size=3))
    again = caption_record(tmp_path)
    assert again["intervals"]["METEOR"] == demo_caption["intervals"]["METEOR"]
    assert again["scores"] == demo_caption["scores"]


def test_each_resample_is_the_corpus_meteor_of_the_redrawn_images():
    """The statistic sums the drawn rows, repeats included, and scores them as the jar's EVAL would (x100)."""
    perfect = (6.0, 6.0, 2.0, 2.0, 4.0, 4.0, 2.0, 2.0, *[0.0] * 12, 1.0, 6.0, 6.0)
    partial = (5.0, 7.0, 2.0, 4.0, 1.0, 1.0, *[0.0] * 14, 1.0, 1.0, 1.0)
    none = (3.0, 4.0, 1.0, 1.0, *[0.0] * 19)
    plan = meteor_resampling(("a", "b", "c"), [perfect, partial, none])["METEOR"]
    for positions in ([0, 0], [0, 1], [1, 1, 2], [2], [0, 1, 2, 2]):
        expected = 100 * corpus_meteor([(perfect, partial, none)[p] for p in positions])
        assert plan.statistic(positions) == expected
    assert plan.statistic([0, 0]) == 100.0 and plan.statistic([2]) == 0.0
    interval = bootstrap_statistic(plan.statistic, plan.ids, resamples=200, seed=3)
    assert interval.low <= interval.estimate <= interval.high
    assert meteor_resampling((), []) == {}
