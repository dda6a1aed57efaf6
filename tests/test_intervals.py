"""Intervals per cell (evals.intervals, records) and the leaderboard's --uncertainty modes with the variance split."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from matplotlib.collections import PolyCollection

from evals.errors import DataError
from evals.models.scripted import ScriptedModel
from evals.runner import RunSettings, run
from metrics.uncertainty import bootstrap_mean, variance_split
from results.leaderboard import render, summarize
from results.plots import shot_curves
from results.records import read_records
from tests.cells import cell, write

SETTINGS = RunSettings(shots=(0,), seeds=(0,), limit=12)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    run(ScriptedModel(), ["demo_vqa", "demo_memes"], replace(SETTINGS, output_dir=out, batch_size=4))
    return out


def record(folder: Path, task: str) -> dict:
    return json.loads(next((folder / "scripted" / task).glob("*seed0.json")).read_text())


def test_records_carry_each_scores_interval(demo_run):
    vqa, memes = record(demo_run, "demo_vqa"), record(demo_run, "demo_memes")
    interval = vqa["intervals"]["vqa_accuracy"]
    assert interval["low"] <= interval["estimate"] <= interval["high"]
    assert (interval["resamples"], interval["seed"], interval["level"]) == (1000, 0, 0.95)
    assert interval["unit"] == "group"  # demo VQA questions share images: redrawn by image
    assert abs(interval["estimate"] - vqa["scores"]["vqa_accuracy"]) < 0.006  # vqaEval rounds to 2 decimals
    assert set(memes["intervals"]) <= {"roc_auc", "accuracy"} and "accuracy" in memes["intervals"]
    assert "mean of per-query scores" in memes["intervals"]["accuracy"]["method"]
    if "roc_auc" in memes["intervals"]:
        assert "recomputed" in memes["intervals"]["roc_auc"]["method"]


def test_the_interval_is_the_bootstrap_of_the_samples_by_image(demo_run):
    """Recomputed from the samples file and the queries' images: the record's numbers exactly."""
    from evals.registry import TASKS

    stem = next((demo_run / "scripted" / "demo_vqa").glob("*seed0.json"))
    samples = [json.loads(line) for line in stem.with_name(stem.name.replace(".json", ".samples.jsonl")).read_text().splitlines()]
    task = TASKS.get("demo_vqa")
    queries = {q.id: q for q in task.read(task.source(None), task.query_split)}
    expected = bootstrap_mean([s["score"] for s in samples], [s["id"] for s in samples],
                              groups=[queries[s["id"]].images[0].id for s in samples])
    assert record(demo_run, "demo_vqa")["intervals"]["vqa_accuracy"] == {
        **expected.as_record(), "method": "percentile bootstrap; mean of per-query scores"}


def test_intervals_do_not_depend_on_batch_size(demo_run, tmp_path):
    run(ScriptedModel(), ["demo_vqa", "demo_memes"], replace(SETTINGS, output_dir=tmp_path, batch_size=1))
    for task in ("demo_vqa", "demo_memes"):
        assert record(tmp_path, task)["intervals"] == record(demo_run, task)["intervals"]
        assert record(tmp_path, task)["scores"] == record(demo_run, task)["scores"]


def test_no_resamples_no_intervals_and_the_same_scores(demo_run, tmp_path):
    run(ScriptedModel(), ["demo_vqa"], replace(SETTINGS, output_dir=tmp_path, bootstrap_resamples=0))
    assert record(tmp_path, "demo_vqa")["intervals"] == {}
    assert record(tmp_path, "demo_vqa")["scores"] == record(demo_run, "demo_vqa")["scores"]


def interval(estimate: float, low: float, high: float) -> dict:
    return {"estimate": estimate, "low": low, "high": high, "level": 0.95, "resamples": 1000, "seed": 0,
            "method": "percentile bootstrap; mean of per-query scores", "unit": "query", "groups": 20}


@pytest.mark.parametrize(("intervals", "message"), [
    ({"vqa_accuracy": interval(50.0, 52.0, 60.0)}, "field 'intervals.vqa_accuracy': low 52, estimate 50, high 60 are not in order"),
    ({"vqa_accuracy": interval(50.0, float("nan"), 60.0)}, "field 'intervals.vqa_accuracy.low' must be a finite number"),
    ({"vqa_accuracy": {"estimate": 50.0, "high": 60.0}}, "field 'intervals.vqa_accuracy.low' must be a finite number, got None"),
    ({"CIDEr": interval(50.0, 40.0, 60.0)}, "field 'intervals.CIDEr': the record has no score 'CIDEr'"),
    ([1, 2], "field 'intervals' must map metric names to intervals"),
])
def test_bad_intervals_are_one_line_naming_the_field(tmp_path, intervals, message):
    path = write(tmp_path, replace(cell(score=50.0), intervals=intervals) if isinstance(intervals, dict) else cell(score=50.0),
                 **({} if isinstance(intervals, dict) else {"intervals": intervals}))
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        read_records([path])
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_older_records_read_as_no_intervals(tmp_path):
    data = cell(score=50.0).to_dict()
    del data["intervals"]
    data["schema_version"] = 5
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    assert read_records([path])[0].intervals == {}
    assert summarize(read_records([path]), uncertainty="ci")["low"].isna().all()


def one_seed(folder: Path) -> Path:
    write(folder, replace(cell("demo_vqa", 0, 0, 50.0), intervals={"vqa_accuracy": interval(50.0, 41.25, 58.5)}))
    write(folder, cell("demo_vqa", 4, 0, 60.0))  # no interval stored
    return folder


@pytest.mark.parametrize(("mode", "cells"), [
    ("std", ["50.00 ± 0.00", "60.00 ± 0.00"]),
    ("ci", ["50.00 [41.25, 58.50]", "60.00 [n/a]"]),
    ("both", ["50.00 ± 0.00 [41.25, 58.50]", "60.00 ± 0.00 [n/a]"]),
])
def test_leaderboard_modes_for_one_seed(tmp_path, mode, cells):
    text = render(summarize(read_records([one_seed(tmp_path)]), uncertainty=mode), "md")
    assert f"| tiny-idefics | idefics | random | {' | '.join(cells)} |" in text
    assert ("95% interval" in text) == (mode != "std")


def test_std_mode_csv_is_unchanged(tmp_path):
    assert render(summarize(read_records([one_seed(tmp_path)])), "csv").splitlines()[0] == \
        "model,prompt_format,selection,task,metric,shots,mean,std,n"


def seeds_with_samples(folder: Path, images: list[str] | None = None) -> list[list[float]]:
    """Three seeds x 6 queries of per-sample scores, written beside records whose score is their mean (`images`: each
    query's image id, as the runner writes it)."""
    matrix = [[100, 0, 100, 50, 0, 100], [100, 0, 0, 50, 0, 100], [100, 100, 100, 50, 0, 100]]
    for seed, row in enumerate(matrix):
        path = write(folder, cell("demo_vqa", 4, seed, sum(row) / len(row)))
        lines = [json.dumps({"id": f"q{j}", "score": float(s), **({"image_ids": [images[j]]} if images else {})})
                 for j, s in enumerate(row)]
        path.with_name(path.name.replace(".json", ".samples.jsonl")).write_text("\n".join(lines) + "\n")
    return matrix


def test_over_seeds_the_interval_and_split_come_from_the_per_sample_scores(tmp_path):
    matrix = seeds_with_samples(tmp_path)
    summary = summarize(read_records([tmp_path]), uncertainty="both")
    split = variance_split(matrix)
    row = summary.iloc[0]
    mean = sum(map(sum, matrix)) / 18
    assert row["standard_error"] == pytest.approx(math.sqrt(split.total))
    assert (row["low"], row["high"]) == pytest.approx((mean - 1.959964 * math.sqrt(split.total), mean + 1.959964 * math.sqrt(split.total)))
    assert row["demonstration_share"] == pytest.approx(split.demonstration_share)
    text = render(summary, "md")
    share = round(100 * split.demonstration_share)
    assert f"demo_vqa 4-shot: demonstrations {share}%, queries {100 - share}% of the seed mean's variance" in text
    assert "demonstration_share" in render(summary, "csv").splitlines()[0]


def test_over_seeds_questions_of_one_image_are_one_unit(tmp_path):
    """Queries sharing an image are averaged into one column before the split (they are not independent draws)."""
    matrix = seeds_with_samples(tmp_path, images=["i0", "i0", "i1", "i1", "i1", "i2"])
    by_image = [[(r[0] + r[1]) / 2, (r[2] + r[3] + r[4]) / 3, r[5]] for r in matrix]
    row = summarize(read_records([tmp_path]), uncertainty="ci").iloc[0]
    assert row["standard_error"] == pytest.approx(math.sqrt(variance_split(by_image).total))
    assert row["standard_error"] != pytest.approx(math.sqrt(variance_split(matrix).total))


def test_samples_name_the_query_images(tmp_path):
    run(ScriptedModel(), ["demo_vqa"], RunSettings(shots=(0,), limit=4, output_dir=tmp_path))
    rows = [json.loads(line) for line in next(tmp_path.rglob("*.samples.jsonl")).read_text().splitlines()]
    assert all(len(r["image_ids"]) == 1 for r in rows) and len({r["image_ids"][0] for r in rows}) < len(rows)


def test_over_seeds_a_missing_samples_file_is_named(tmp_path):
    for seed in range(2):
        write(tmp_path, cell("demo_vqa", 4, seed, 50.0 + seed))
    with pytest.raises(DataError, match=r"samples\.jsonl: not found"):
        summarize(read_records([tmp_path]), uncertainty="ci")


def test_plot_draws_bands_with_ci(tmp_path):
    seeds_with_samples(tmp_path)
    records = read_records([tmp_path])
    def bands(figure) -> int:
        return sum(isinstance(c, PolyCollection) for c in figure.axes[0].collections)

    assert bands(shot_curves(summarize(records, uncertainty="ci"))) == 1
    assert bands(shot_curves(summarize(records))) == 0
