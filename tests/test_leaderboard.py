"""The leaderboard (mean ± std over seeds, snapshot per format), its protocol checks, the record reader and the plot.

Regenerate the snapshots after an intended change with: UPDATE_SNAPSHOTS=1 pytest tests/test_leaderboard.py
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.container import ErrorbarContainer
from PIL import Image

from evals.errors import DataError
from results.leaderboard import render, summarize
from results.plots import save_png, shot_curves
from results.records import read_records
from tests.cells import cell, write

SNAPSHOTS = Path(__file__).parent / "snapshots"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "250"}
NINE_B = {"model": "idefics-9b", "model_revision": "sha256:bbbb", "dtype": "bfloat16"}
RICES = {"selection_details": {"embedder": "offline", "order": "ascending"}}
# (task, shots, extra protocol, scores over seeds 0, 1, 2) -> hand-computed mean and sample std
SWEEP = [
    ("demo_vqa", 0, {}, [50.0, 52.0, 57.0]),  # 53 ± sqrt(13) = 3.61
    ("demo_vqa", 4, {}, [60.0, 62.0, 64.0]),  # 62 ± 2
    ("demo_caption", 0, {}, [10.0, 20.0, 30.0]),  # 20 ± 10
    ("demo_caption", 4, {}, [40.0, 40.0, 40.0]),  # 40 ± 0
    ("demo_vqa", 0, NINE_B, [70.0, 71.0, 72.0]),  # 71 ± 1
    ("demo_vqa", 4, NINE_B, [75.0, 76.0, 80.0]),  # 77 ± sqrt(7) = 2.65
    ("demo_vqa", 4, {"selection": "rices", **RICES}, [66.0, 66.0, 69.0]),  # 67 ± sqrt(3) = 1.73
]


def write_sweep(folder: Path) -> Path:
    for task, shots, extra, scores in SWEEP:
        for seed, score in enumerate(scores):
            write(folder, cell(task, shots, seed, score, **extra))
    return folder


@pytest.fixture
def sweep(tmp_path) -> Path:
    return write_sweep(tmp_path / "results")


def test_mean_and_std_over_seeds(sweep):
    summary = summarize(read_records([sweep])).set_index(["model", "selection", "task", "shots"])
    assert len(summary) == 7 and set(summary["n"]) == {3}
    expected = {
        ("tiny-idefics", "random", "demo_vqa", 0): (53.0, math.sqrt(13)), ("tiny-idefics", "random", "demo_vqa", 4): (62.0, 2.0),
        ("tiny-idefics", "random", "demo_caption", 0): (20.0, 10.0), ("tiny-idefics", "random", "demo_caption", 4): (40.0, 0.0),
        ("idefics-9b", "random", "demo_vqa", 0): (71.0, 1.0), ("idefics-9b", "random", "demo_vqa", 4): (77.0, math.sqrt(7)),
        ("tiny-idefics", "rices", "demo_vqa", 4): (67.0, math.sqrt(3)),
    }
    for key, (mean, std) in expected.items():
        assert summary.loc[key, "mean"] == pytest.approx(mean) and summary.loc[key, "std"] == pytest.approx(std)
    assert summary.loc[("tiny-idefics", "random", "demo_caption", 0), "metric"] == "CIDEr"


@pytest.mark.parametrize("table_format, suffix", [("md", "md"), ("csv", "csv"), ("latex", "tex"), ("html", "html")])
def test_leaderboard_snapshot(sweep, table_format, suffix):
    text = render(summarize(read_records([sweep])), table_format)
    path = SNAPSHOTS / f"leaderboard_sweep.{suffix}"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert path.exists(), f"missing snapshot {path.name}: run with UPDATE_SNAPSHOTS=1"
    assert text == path.read_text()


def test_markdown_cells_hold_the_hand_computed_values(sweep):
    lines = render(summarize(read_records([sweep])), "md").splitlines()
    assert lines[0] == ("| model | format | selection | demo_caption 0-shot | demo_caption 4-shot | demo_vqa 0-shot | "
                        "demo_vqa 4-shot |")
    assert "| tiny-idefics | idefics | random | 20.00 ± 10.00 | 40.00 ± 0.00 | 53.00 ± 3.61 | 62.00 ± 2.00 |" in lines
    assert "| idefics-9b | idefics | random | - | - | 71.00 ± 1.00 | 77.00 ± 2.65 |" in lines
    assert "| tiny-idefics | idefics | rices | - | - | - | 67.00 ± 1.73 |" in lines
    assert lines[-1].startswith("Scores (0-100): mean ± sample std over 3 seeds. Metric per task: demo_caption CIDEr")


def test_unequal_seed_counts_are_shown_per_cell(tmp_path):
    for seed, score in enumerate([40.0, 50.0]):
        write(tmp_path, cell("demo_vqa", 0, seed, score))
    write(tmp_path, cell("demo_vqa", 4, 0, 70.0))
    text = render(summarize(read_records([tmp_path])), "md")
    assert "| 45.00 ± 7.07 (n=2) | 70.00 ± 0.00 (n=1) |" in text and "over seeds (n per cell)" in text


def test_metric_option_picks_another_score_where_a_task_has_it(tmp_path):
    for seed, (cider, bleu) in enumerate([(30.0, 10.0), (50.0, 20.0)]):
        write(tmp_path, cell("demo_caption", 0, seed, scores={"CIDEr": cider, "Bleu_4": bleu}))
    write(tmp_path, cell("demo_vqa", 0, 0, 12.5))
    summary = summarize(read_records([tmp_path]), metrics=("Bleu_4",)).set_index("task")
    assert summary.loc["demo_caption", "metric"] == "Bleu_4" and summary.loc["demo_caption", "mean"] == 15.0
    assert summary.loc["demo_vqa", "metric"] == "vqa_accuracy" and summary.loc["demo_vqa", "mean"] == 12.5


@pytest.mark.parametrize("field, value", [("template_hash", "ffffffffffff"), ("query_fingerprint", "sha256:q2"),
                                          ("n_queries", 19), ("metric", "score_vqa_stemmed")])
def test_a_column_with_two_protocols_is_refused(sweep, field, value):
    write(sweep, cell("demo_vqa", 4, 0, 10.0, model="other-model", **{field: value}))
    with pytest.raises(DataError, match=f"column demo_vqa 4-shot mixes protocols: {field} ") as error:
        summarize(read_records([sweep]))
    assert "other-model" in str(error.value) and "--allow-mixed-protocols" in str(error.value)
    mixed = summarize(read_records([sweep]), allow_mixed_protocols=True).set_index(["model", "task", "shots"])
    assert mixed.loc[("other-model", "demo_vqa", 4), "mean"] == 10.0


def test_decoding_change_within_one_row_is_refused(sweep):
    write(sweep, cell("demo_vqa", 0, 3, 55.0, generation={"max_new_tokens": 5, "num_beams": 3, "length_penalty": 0.0,
                                                           "stop_sequences": ["\n"]}))
    with pytest.raises(DataError, match=r"column demo_vqa 0-shot mixes protocols: generation.max_new_tokens \(.*: 10, .*: 5\)"):
        summarize(read_records([sweep]))


def test_rows_may_differ_in_their_own_format_and_selection(sweep):
    instruct = {"prompt_format": "idefics-instruct", "template_hash": "1234567890ab",
                "generation": {"max_new_tokens": 10, "num_beams": 3, "length_penalty": 0.0, "stop_sequences": ["<end_of_utterance>"]}}
    write(sweep, cell("demo_vqa", 4, 0, 30.0, **instruct), name="instruct/cell")
    summary = summarize(read_records([sweep])).set_index(["model", "prompt_format", "selection", "task", "shots"])
    assert summary.loc[("tiny-idefics", "idefics-instruct", "random", "demo_vqa", 4), "mean"] == 30.0
    write(sweep, cell("demo_vqa", 4, 5, 30.0, selection="rices", selection_details={"embedder": "clip"}))  # vs 'offline'
    with pytest.raises(DataError, match="selection_details.embedder"):
        summarize(read_records([sweep]))


def test_the_same_cell_twice_names_both_files(sweep):
    copy = write(sweep, cell("demo_vqa", 4, 1, 62.0), name="rerun/cell")
    with pytest.raises(DataError, match="the cell tiny-idefics demo_vqa 4-shot random seed 1 appears twice") as error:
        summarize(read_records([sweep]))
    assert str(copy) in str(error.value) and "random-4shot-seed1.json" in str(error.value)


def test_reader_skips_samples_journals_and_other_json_and_keeps_extra_fields(tmp_path):
    path = write(tmp_path, cell(), git_commit="0123abc", timing={"wall_seconds": 1.0, "model_seconds": 0.5, "new_key": 3})
    path.with_name("random-0shot-seed0.samples.jsonl").write_text("{}\n")
    (tmp_path / "tiny-idefics" / "random-0shot-seed0.journal.json").write_text("{}")
    (tmp_path / "scores.json").write_text(json.dumps({"task": "vqav2", "scores": {"vqa_accuracy": 1.0}}))
    (record,) = read_records([tmp_path, path])  # named twice, read once
    assert record.path == path and record.scores == {"vqa_accuracy": 50.0} and record.key == ("tiny-idefics", "demo_vqa", 0, "random", 0)
    assert "versions.python" not in record.comparable() and record.comparable()["generation.num_beams"] == 3


@pytest.mark.parametrize("content, message", [
    ("{not json", "malformed JSON"),
    (json.dumps({**cell().to_dict(), "schema_version": 1}), "schema_version 1 is older than 2"),
    (json.dumps({k: v for k, v in cell().to_dict().items() if k != "seed"}), "has no field 'seed'"),
    (json.dumps({**cell().to_dict(), "scores": {"vqa_accuracy": "high"}}), "'scores' must map metric names to numbers"),
])
def test_bad_records_name_the_file(tmp_path, content, message):
    path = tmp_path / "run" / "cell.json"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(DataError, match=message) as error:
        read_records([tmp_path / "run"] if message == "malformed JSON" else [path])
    assert str(path) in str(error.value)
    with pytest.raises(DataError, match="no such file or folder"):
        read_records([tmp_path / "absent"])


def test_plot_has_one_subplot_per_task_and_one_line_per_row(sweep, tmp_path):
    figure = shot_curves(summarize(read_records([sweep])))
    axes = {ax.get_title(): ax for ax in figure.axes}
    assert sorted(axes) == ["demo_caption: CIDEr", "demo_vqa: vqa_accuracy"]
    lines = {title: [c for c in ax.containers if isinstance(c, ErrorbarContainer)] for title, ax in axes.items()}
    assert {title: len(found) for title, found in lines.items()} == {"demo_caption: CIDEr": 1, "demo_vqa: vqa_accuracy": 3}
    nine_b = next(c for c in lines["demo_vqa: vqa_accuracy"] if c.get_label() == "idefics-9b (idefics, random)")
    assert list(nine_b.lines[0].get_xdata()) == [0, 4] and list(nine_b.lines[0].get_ydata()) == [71.0, 77.0]
    assert axes["demo_vqa: vqa_accuracy"].get_ylabel() == "vqa_accuracy (0-100)"
    assert list(axes["demo_vqa: vqa_accuracy"].get_xticks()) == [0, 4]
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    save_png(figure, first)
    save_png(shot_curves(summarize(read_records([sweep]))), second)
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and first.read_bytes() == second.read_bytes()
    with Image.open(io.BytesIO(first.read_bytes())) as image:
        image.load()
        assert image.format == "PNG" and image.size[0] > image.size[1] > 100


def evals(*args):
    executable = shutil.which("evals") or ""
    command = [executable] if executable else [sys.executable, "-m", "evals"]
    return subprocess.run([*command, *args], check=False, capture_output=True, text=True, env=ENV, timeout=300)


def test_leaderboard_command(sweep, tmp_path):
    table, plot = tmp_path / "board.tex", tmp_path / "board.png"
    result = evals("leaderboard", str(sweep), "--format", "latex", "--output", str(table), "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    assert table.read_text() == (SNAPSHOTS / "leaderboard_sweep.tex").read_text()
    with Image.open(plot) as image:
        assert image.format == "PNG"
    printed = evals("leaderboard", str(sweep))
    assert printed.returncode == 0 and printed.stdout == (SNAPSHOTS / "leaderboard_sweep.md").read_text()
    write(sweep, cell("demo_vqa", 0, 0, 1.0, model="other", template_hash="ffffffffffff"))
    refused = evals("leaderboard", str(sweep), "--format", "csv")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "column demo_vqa 0-shot mixes protocols: template_hash" in refused.stderr
    assert "Traceback" not in refused.stderr
    bad_format = evals("leaderboard", str(sweep), "--format", "xlsx", "--allow-mixed-protocols")
    assert bad_format.returncode == 2 and "unknown leaderboard format 'xlsx'" in bad_format.stderr
