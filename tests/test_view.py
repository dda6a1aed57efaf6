"""`evals view`: the report's data (prompts split at their image markers and resolved to the demonstrations' and the
query's images, candidates marked, the leaderboard's numbers), its safety against markup in data, and, in headless
Chromium, the page it renders."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evals.records import ImageRef
from evals.registry import TASKS
from results.leaderboard import summarize
from results.pairing import query_examples
from results.records import read_records
from results.view.cells import marker_images, outcome
from results.view.page import embedded_json, render_page, report_data
from tests.conftest import assert_refused, call_evals

HOSTILE = '<script>document.body.dataset.pwned="1"</script><img src=x onerror="document.body.dataset.pwned=2">'
DATA_BLOCK = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.DOTALL)


def evals(args: list[str]) -> None:
    """`evals ARGS` in this process for a module fixture (no function-scoped monkeypatch there)."""
    from evals.cli import main

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["evals", *args])
        try:
            main()
        except SystemExit as stop:
            assert not stop.code, f"evals {' '.join(args)} exited {stop.code}"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The scripted model on a generative and a ranked demo task at 0 and 2 shots (a few seconds)."""
    out = tmp_path_factory.mktemp("view") / "run"
    evals(["run", "--model", "scripted", "--task", "demo_vqa", "--task", "demo_classify", "--shots", "0,2",
           "--limit", "60", "--output-dir", str(out)])
    return out


@pytest.fixture(scope="module")
def data(run) -> dict:
    return report_data([run])


def cell(data: dict, task: str, shots: int) -> tuple[int, dict]:
    return next((i, c) for i, c in enumerate(data["cells"]) if c["task"] == task and c["shots"] == shots)


def image_ids(sample: dict) -> list[str]:
    return [s["image_id"] for prompt in sample["prompts"] for s in prompt if "image_id" in s]


def demo_images(task: str, split_of: str, ids: list[str]) -> list[str]:
    """The image ids of the named examples, read from the task's data independently of the viewer."""
    task_ = TASKS.get(task)
    examples, why = query_examples(task, getattr(task_, split_of), None)
    assert examples is not None, why
    return [ref.id for i in ids for ref in examples[i].images]


def test_prompt_shows_the_demonstrations_images_then_the_querys(data):
    _, vqa = cell(data, "demo_vqa", 2)
    for sample in vqa["samples"][:10]:
        expected = demo_images("demo_vqa", "support_split", sample["shot_ids"]) + demo_images("demo_vqa", "query_split", [sample["id"]])
        assert image_ids(sample) == expected and len(expected) == 3
        assert all(data["images"][s["image"]].startswith("data:image/jpeg;base64,") for p in sample["prompts"] for s in p if "image" in s)
        text = "".join(s.get("text", "<image>") for s in sample["prompts"][0])
        lines = Path(vqa["path"].replace(".json", ".samples.jsonl")).read_text().splitlines()
        assert text == next(json.loads(line)["prompt"] for line in lines if json.loads(line)["id"] == sample["id"])
        assert sample["references"] and sample["outcome"] == outcome(sample["score"])


def test_zero_shot_text_only_demonstrations_leave_the_query_image_alone(data):
    _, vqa = cell(data, "demo_vqa", 0)
    sample = vqa["samples"][0]
    assert len(sample["shot_ids"]) == 2  # Flamingo's two text-only shots: their images are not in the prompt
    assert image_ids(sample) == demo_images("demo_vqa", "query_split", [sample["id"]])


def test_marker_images_refuses_a_count_it_cannot_explain():
    query, shot = ImageRef("q"), ImageRef("s")
    assert marker_images("<image>a<image>b", [shot], [query], 0, 1) == [shot, query]
    assert marker_images("<image>a<image>b<image>", [shot], [query], 0, 1) == [None, None, None]
    assert marker_images("<image>x", None, [query, ImageRef("r")], 1, 2) == [ImageRef("r")]  # one prompt per image


def test_ranked_samples_mark_the_chosen_and_the_gold_candidate(data, run):
    _, classify = cell(data, "demo_classify", 2)
    for sample in classify["samples"][:10]:
        (candidates,) = sample["candidates"]
        chosen = [c for c in candidates if c["chosen"]]
        assert len(chosen) == 1 and chosen[0]["loglik"] == max(c["loglik"] for c in candidates)
        assert chosen[0]["text"] == sample["prediction"]["label"]
        assert [c["text"] for c in candidates if c["gold"]] == sample["references"][:1]
        assert (sample["score"] == 100.0) == chosen[0]["gold"]


def test_winoground_marks_one_gold_caption_per_image(tmp_path):
    """Both captions are references, but caption i is the right one for image i only."""
    out = tmp_path / "match"
    evals(["run", "--model", "scripted", "--task", "demo_match", "--shots", "0", "--limit", "4", "--output-dir", str(out)])
    (match,) = report_data([out])["cells"]
    for sample in match["samples"]:
        captions = [[c["text"] for c in prompt] for prompt in sample["candidates"]]
        gold = [[c["text"] for c in prompt if c["gold"]] for prompt in sample["candidates"]]
        assert len(captions) == 2 and captions[0] == captions[1]
        assert gold == [[captions[0][0]], [captions[0][1]]]


def test_overview_is_the_leaderboards_numbers(data, run):
    expected = summarize(read_records([run]), uncertainty="both")
    assert [(r["task"], r["shots"], r["mean"], r["n"], r["low"], r["high"]) for r in data["overview"]] == \
        list(zip(expected["task"], expected["shots"], expected["mean"], expected["n"], expected["low"], expected["high"]))
    assert all(r["low"] <= r["mean"] <= r["high"] for r in data["overview"])  # one seed: each cell's stored interval
    assert data["overview_note"].startswith("Scores (0-100): mean ± sample std [95% interval]")
    assert data["plot"].startswith("data:image/png;base64,")


def test_view_writes_one_self_contained_file(run, tmp_path, monkeypatch, capsys):
    report = tmp_path / "out" / "report.html"
    code, _, err = call_evals(monkeypatch, capsys, ["view", str(run), "--output", str(report)])
    assert code == 0 and "report written" in err, err
    page = report.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "<link" not in page and "@import" not in page
    assert "/*STYLE*/" not in page and "/*SCRIPT*/" not in page and "{{title}}" not in page
    embedded = json.loads(DATA_BLOCK.search(page).group(1))
    lines = sum(len(f.read_text().splitlines()) for f in run.rglob("*.samples.jsonl"))
    assert len(embedded["cells"]) == 4 and sum(len(c["samples"]) for c in embedded["cells"]) == lines


def test_max_samples_caps_a_cell_and_says_so(run):
    capped = report_data([run], max_samples=7)
    assert all(len(c["samples"]) == 7 and c["total"] > 7 for c in capped["cells"])
    assert all(any(f"first 7 of {c['total']}" in n for n in c["notes"]) for c in capped["cells"])


def test_page_assets_are_package_data():
    import tomllib
    from fnmatch import fnmatch

    root = Path(__file__).parent.parent
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["results.view"]
    assets = sorted(p.relative_to(root / "results/view").as_posix() for p in (root / "results/view/assets").iterdir())
    assert assets == ["assets/report.css", "assets/report.html", "assets/report.js"]
    assert all(any(fnmatch(a, g) for g in globs) for a in assets)


def test_a_record_without_samples_is_shown_with_a_note(run, tmp_path):
    record = next(run.glob("scripted/demo_vqa/*0shot*.json"))
    shutil.copy(record, tmp_path / record.name)  # as `compare --update` writes a baseline: the record alone
    (only,) = report_data([tmp_path])["cells"]
    assert only["samples"] == [] and "no per-sample file" in only["notes"][0]


def test_view_refuses_a_missing_path(tmp_path, monkeypatch, capsys):
    assert_refused(*call_evals(monkeypatch, capsys, ["view", str(tmp_path / "nothing"), "--output", str(tmp_path / "r.html")]),
                   2, "no such file or folder")


@pytest.fixture(scope="module")
def hostile(run, tmp_path_factory) -> Path:
    """The 2-shot VQA cell copied with markup in its first sample's question, output and prediction."""
    folder = tmp_path_factory.mktemp("hostile")
    record = next(run.glob("scripted/demo_vqa/*2shot*.json"))
    shutil.copy(record, folder / record.name)
    lines = [json.loads(line) for line in record.with_name(record.name.replace(".json", ".samples.jsonl")).open()]
    lines[0]["prompt"] = lines[0]["prompt"].replace("Question:", "Question: " + HOSTILE)
    lines[0]["output"] = lines[0]["prediction"] = HOSTILE + "</script><!--"
    (folder / record.name.replace(".json", ".samples.jsonl")).write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


def test_markup_in_data_cannot_leave_the_json_block(hostile):
    data = report_data([hostile])
    page = render_page(data)
    block = DATA_BLOCK.search(page).group(1)
    assert "<" not in block and ">" not in block  # nothing in the data can close the block or open a comment
    assert json.loads(block) == json.loads(json.dumps(data))  # and it reads back whole
    assert page.count("</script>") == 2 and "<img src=x" not in page
    assert embedded_json({"a": "</script>\u2028"}) == '{"a":"\\u003c/script\\u003e\\u2028"}'


# --- headless Chromium on the report file: what the page's script renders ---

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium; .ci/run does)")


def rendered(report: Path, fragment: str) -> str:
    """The DOM after the page's script ran, for `report#fragment` opened from disk."""
    done = subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--virtual-time-budget=5000",
                           "--dump-dom", f"{report.resolve().as_uri()}#{fragment}"],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def articles(dom: str) -> list[str]:
    return re.findall(r"<article .*?</article>", dom, re.DOTALL)


@pytest.fixture(scope="module")
def report(run, data, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("page") / "report.html"
    path.write_text(render_page(data), encoding="utf-8")
    return path


@needs_chromium
def test_browser_shows_a_samples_demonstration_images_in_order(report, data):
    index, vqa = cell(data, "demo_vqa", 2)
    shown = articles(rendered(report, f"view=cell&cell={index}"))
    assert len(shown) == 50  # one page
    for sample, html in zip(vqa["samples"][:5], shown):
        assert f'data-id="{sample["id"]}"' in html
        assert re.findall(r'<img class="thumb" src="data:image/jpeg;base64,[^"]+" alt="[^"]*" data-image-id="([^"]+)"', html) \
            == image_ids(sample)


@needs_chromium
def test_browser_overview_shows_each_rows_interval(report, data):
    dom = rendered(report, "view=overview")
    rows = re.findall(r"<tr><td>.*?</tr>", dom.split('class="leaderboard"', 1)[1])
    assert len(rows) == len(data["overview"])
    for row, html in zip(data["overview"], rows):
        assert f"<td>[{row['low']:.2f}, {row['high']:.2f}]</td>" in html and f">{row['mean']:.2f}<" in html


@needs_chromium
def test_browser_filter_in_the_hash_changes_the_visible_rows(report, data):
    index, vqa = cell(data, "demo_vqa", 2)
    wrong = [s["id"] for s in vqa["samples"] if s["outcome"] == "wrong"]
    assert 0 < len(wrong) < len(vqa["samples"])
    shown = articles(rendered(report, f"cell={index}&filter=wrong"))
    assert [re.search(r'data-id="([^"]+)"', a).group(1) for a in shown] == wrong[:50]
    assert all('data-outcome="wrong"' in a for a in shown)
    last = articles(rendered(report, f"cell={index}&filter=wrong&page=2"))
    assert len(last) == len(wrong[50:100])


def test_samples_carry_their_question_and_answer_types(data):
    _, vqa = cell(data, "demo_vqa", 2)
    assert {s["types"]["answer_type"] for s in vqa["samples"]} == {"number", "other", "yes/no"}
    assert all(set(s["types"]) <= {"question_type", "answer_type"} for s in vqa["samples"])


@needs_chromium
def test_browser_type_filter_in_the_hash_keeps_that_answer_type(report, data):
    index, vqa = cell(data, "demo_vqa", 2)
    of_type = {t: [s for s in vqa["samples"] if s["types"]["answer_type"] == t] for t in ("number", "other", "yes/no")}
    kind = next(t for t, samples in of_type.items() if {s["outcome"] for s in samples} >= {"correct", "wrong"})
    ids = [s["id"] for s in of_type[kind]]
    wrong = [s["id"] for s in of_type[kind] if s["outcome"] == "wrong"]
    for fragment, expected in ((f"cell={index}&type=answer_type%3D{kind.replace('/', '%2F')}", ids),
                               (f"cell={index}&type=answer_type%3D{kind.replace('/', '%2F')}&filter=wrong", wrong)):
        dom = rendered(report, fragment)
        assert [re.search(r'data-id="([^"]+)"', a).group(1) for a in articles(dom)] == expected[:50]
        assert f'<option value="answer_type={kind}">answer_type: {kind} ({len(ids)})</option>' in dom


@needs_chromium
def test_browser_renders_markup_in_data_as_text(hostile, tmp_path):
    page = tmp_path / "hostile.html"
    page.write_text(render_page(report_data([hostile])), encoding="utf-8")
    dom = rendered(page, "view=cell&cell=0")
    first = articles(dom)[0]
    assert "pwned=" not in dom.split("<body", 1)[1].split(">", 1)[0]  # neither payload ran
    assert "<img src=" not in dom and 'src="x"' not in dom  # no element was injected
    assert "&lt;script&gt;document.body.dataset.pwned" in first and "onerror=" in first  # the text is shown as text
