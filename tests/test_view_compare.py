"""The report's comparison view: its flip lists are `evals compare --test paired`'s, and in headless Chromium the view
for a URL hash lists exactly those queries, each with both cells' contexts side by side, markup in data as text."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from evals.models import ScriptedModel
from evals.runner import RunSettings, run
from results.view.page import render_page, report_data
from tests.conftest import call_evals
from tests.test_paired import shot_dependent_answers
from tests.test_view import HOSTILE, cell, image_ids, needs_chromium, rendered

FLIP_ROW = re.compile(r'<div class="flip" data-id="([^"]+)">(.*?)(?=<div class="flip" |</div>\s*</section>)', re.DOTALL)
THUMB_ID = re.compile(r'<img class="thumb" src="data:image/jpeg;base64,[^"]+" alt="[^"]*" data-image-id="([^"]+)"')


@pytest.fixture(scope="module")
def shots_run(tmp_path_factory) -> Path:
    """demo_vqa and demo_classify at 0 and 2 shots, answered 'yes' with demonstrations and 'no' without: the queries
    whose answer is one of the two flip, each way (a second or two)."""
    out = tmp_path_factory.mktemp("compare") / "run"
    run(ScriptedModel(answers=shot_dependent_answers), ["demo_vqa", "demo_classify"],
        RunSettings(shots=(0, 2), limit=60, output_dir=out))
    return out


@pytest.fixture(scope="module")
def data(shots_run) -> dict:
    return report_data([shots_run])


def pair(data: dict, task: str) -> tuple[int, int, dict]:
    """(index of the 0-shot cell, of the 2-shot cell, their comparison as stored)."""
    zero, _ = cell(data, task, 0)
    two, _ = cell(data, task, 2)
    return zero, two, next(c for c in data["comparisons"] if (c["a"], c["b"]) == (min(zero, two), max(zero, two)))


def test_flip_lists_are_what_evals_compare_computes(data, shots_run, monkeypatch, capsys):
    zero, two, stored = pair(data, "demo_vqa")
    assert zero < two  # the stored pair's A is the 0-shot cell, as --a-shots 0 below
    code, out, err = call_evals(monkeypatch, capsys, ["compare", str(shots_run), str(shots_run), "--test", "paired",
                                                      "--a-shots", "0", "--b-shots", "2", "--flips", "5", "--format", "json"])
    assert code == 0, err
    (row,) = [r for r in json.loads(out) if r["cell"].startswith("scripted demo_vqa")]
    assert stored["right_to_wrong"] and stored["wrong_to_right"]  # the fixture flips both ways
    assert (stored["right_to_wrong"], stored["wrong_to_right"]) == (row["better_in_a"], row["better_in_b"])
    assert stored["paired"] == len(data["cells"][zero]["samples"]) and stored["note"] is None


def test_only_cells_of_one_task_are_paired(data):
    tasks = [c["task"] for c in data["cells"]]
    assert len(data["comparisons"]) == 2 and all(tasks[c["a"]] == tasks[c["b"]] for c in data["comparisons"])


def test_flips_are_paired_on_the_full_samples_past_max_samples(data, shots_run):
    capped = report_data([shots_run], max_samples=5)
    assert capped["comparisons"] == data["comparisons"]


def test_ids_in_only_one_cell_are_left_out_with_a_note(shots_run, tmp_path):
    """A 2-shot cell with ten fewer queries (a run with a smaller --limit) pairs on the ids both have."""
    for record in shots_run.glob("scripted/demo_vqa/*.json"):
        shutil.copy(record, tmp_path / record.name)
        samples = record.with_name(record.name.replace(".json", ".samples.jsonl"))
        lines = samples.read_text().splitlines(keepends=True)
        (tmp_path / samples.name).write_text("".join(lines[:-10] if "2shot" in record.name else lines))
    (only,) = report_data([tmp_path])["comparisons"]
    assert only["paired"] == 50 and "10 queries are in only one of the two cells" in only["note"]


# --- headless Chromium ---

@pytest.fixture(scope="module")
def report(data, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("compare-page") / "report.html"
    path.write_text(render_page(data), encoding="utf-8")
    return path


def flip_rows(dom: str) -> list[tuple[str, str]]:
    section = dom.split('<section id="compare"', 1)[1]
    return FLIP_ROW.findall(section)


def sides(row: str) -> tuple[str, str]:
    a, b = re.split(r'<div class="side" data-side="B">', row.split('<div class="side" data-side="A">', 1)[1])
    return a, b


@needs_chromium
def test_browser_lists_exactly_the_flipped_ids_each_kind(report, data):
    zero, two, stored = pair(data, "demo_vqa")
    dom = rendered(report, f"view=compare&a={zero}&b={two}&flip=right-to-wrong")
    assert [i for i, _ in flip_rows(dom)] == stored["right_to_wrong"][:50]
    for name, ids in (("right-to-wrong", stored["right_to_wrong"]), ("wrong-to-right", stored["wrong_to_right"])):
        assert f'data-kind="{name}" data-count="{len(ids)}"' in dom
    swapped = rendered(report, f"a={two}&b={zero}&flip=right-to-wrong")  # B before A (no view=: a and b mean compare): the lists swap
    assert [i for i, _ in flip_rows(swapped)] == stored["wrong_to_right"][:50]


@needs_chromium
def test_browser_shows_both_contexts_side_by_side_images_in_order(report, data):
    zero, two, stored = pair(data, "demo_vqa")
    by_id = [{s["id"]: s for s in data["cells"][i]["samples"]} for i in (zero, two)]
    rows = flip_rows(rendered(report, f"view=compare&a={zero}&b={two}&flip=wrong-to-right"))
    assert [i for i, _ in rows] == stored["wrong_to_right"][:50] and rows
    for flipped, html in rows:
        for side, samples in zip(sides(html), by_id):
            assert f'data-id="{flipped}"' in side and THUMB_ID.findall(side) == image_ids(samples[flipped])
        assert len(THUMB_ID.findall(sides(html)[1])) == 3  # 2 shots: two demonstrations' images, then the query's


@needs_chromium
def test_browser_compare_renders_markup_in_a_question_as_text(shots_run, data, tmp_path):
    """Both demo_vqa cells copied with markup in the question of the first query that flips."""
    _, _, stored = pair(data, "demo_vqa")
    target = stored["wrong_to_right"][0]
    for record in shots_run.glob("scripted/demo_vqa/*.json"):
        shutil.copy(record, tmp_path / record.name)
        samples = record.with_name(record.name.replace(".json", ".samples.jsonl"))
        lines = [json.loads(line) for line in samples.open()]
        for line in lines:
            if line["id"] == target:
                line["prompt"] = line["prompt"].replace("Question:", "Question: " + HOSTILE)
        (tmp_path / samples.name).write_text("".join(json.dumps(x) + "\n" for x in lines))
    page = tmp_path / "hostile.html"
    page.write_text(render_page(report_data([tmp_path])), encoding="utf-8")
    dom = rendered(page, "view=compare&a=0&b=1&flip=wrong-to-right")
    rows = dict(flip_rows(dom))
    assert "pwned=" not in dom.split("<body", 1)[1].split(">", 1)[0]  # neither payload ran
    assert "<img src=" not in dom and 'src="x"' not in dom  # no element was injected
    assert all("&lt;script&gt;document.body.dataset.pwned" in side and "onerror=" in side for side in sides(rows[target]))


@needs_chromium
def test_browser_lists_a_flip_past_max_samples_by_id(shots_run, data, tmp_path):
    _, _, stored = pair(data, "demo_vqa")
    page = tmp_path / "capped.html"
    capped = report_data([shots_run], max_samples=5)
    page.write_text(render_page(capped), encoding="utf-8")
    zero, two, _ = pair(capped, "demo_vqa")
    rows = flip_rows(rendered(page, f"view=compare&a={zero}&b={two}&flip=right-to-wrong"))
    assert [i for i, _ in rows] == stored["right_to_wrong"][:50]
    shown = {s["id"] for s in capped["cells"][zero]["samples"]}
    for flipped, html in rows:
        a_side, _ = sides(html)
        assert (f'data-id="{flipped}"' in a_side) == (flipped in shown)
        assert ("is not in this report" in a_side) == (flipped not in shown)
    assert any(i not in shown for i, _ in rows)


@needs_chromium
def test_browser_pages_through_the_flips(shots_run, tmp_path):
    """Both demo_vqa cells copied with every query at 100 in A and 0 in B: 60 flips, the second page holds the last 10."""
    for record in shots_run.glob("scripted/demo_vqa/*.json"):
        shutil.copy(record, tmp_path / record.name)
        samples = record.with_name(record.name.replace(".json", ".samples.jsonl"))
        lines = [json.loads(line) for line in samples.open()]
        for line in lines:
            line["score"] = 0.0 if "2shot" in record.name else 100.0
        (tmp_path / samples.name).write_text("".join(json.dumps(x) + "\n" for x in lines))
    data = report_data([tmp_path])
    (only,) = data["comparisons"]
    assert len(only["right_to_wrong"]) == 60 and not only["wrong_to_right"]
    page = tmp_path / "paged.html"
    page.write_text(render_page(data), encoding="utf-8")
    dom = rendered(page, "view=compare&a=0&b=1&flip=right-to-wrong&page=2")
    assert [i for i, _ in flip_rows(dom)] == only["right_to_wrong"][50:]
    assert 'data-page="2">page 2 of 2 · 60 queries' in dom
