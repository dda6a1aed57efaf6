"""The regression gate (`evals compare`): exit 0 on a pass, 1 on a regression, missing cell or protocol change, 2 on bad input."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from evals import cli, terminal
from evals.models import ScriptedModel
from evals.registry import PROMPT_FORMATS, suite_tasks
from evals.runner import RunSettings, run
from results.compare import compare
from results.records import read_records
from tests.cells import cell, write

DEMO = suite_tasks("demo")


@pytest.fixture
def evals(monkeypatch, capsys):
    """Run `evals ARGS` in this process through its entry point; (exit status, stdout, stderr)."""
    def call(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["evals", *map(str, args)])
        monkeypatch.setattr(terminal, "console", Console(width=250, no_color=True))
        monkeypatch.setattr(terminal, "errors", Console(width=250, no_color=True, stderr=True))
        capsys.readouterr()
        try:
            cli.main()
            status = 0
        except SystemExit as exit:
            status = exit.code
        out, err = capsys.readouterr()
        return status, out, err

    return call


def two_runs(tmp_path: Path, current_scores: dict[tuple[str, int], float], **current_protocol) -> tuple[Path, Path]:
    """A baseline of four cells (vqa and caption, 0 and 4 shots) and a current run with the given scores."""
    baseline_scores = {("demo_vqa", 0): 50.0, ("demo_vqa", 4): 60.0, ("demo_caption", 0): 20.0, ("demo_caption", 4): 30.0}
    for (task, shots), score in baseline_scores.items():
        write(tmp_path / "baseline", cell(task, shots, 0, score))
    for (task, shots), score in current_scores.items():
        write(tmp_path / "current", cell(task, shots, 0, score, **current_protocol))
    return tmp_path / "current", tmp_path / "baseline"


SAME = {("demo_vqa", 0): 50.0, ("demo_vqa", 4): 60.0, ("demo_caption", 0): 20.0, ("demo_caption", 4): 30.0}


@pytest.mark.parametrize("change, status, label", [
    ({}, 0, "same"),
    ({("demo_vqa", 4): 61.25}, 0, "improved"),
    ({("demo_vqa", 4): 59.5}, 0, "within tolerance"),  # exactly the tolerance: allowed
    ({("demo_vqa", 4): 59.49}, 1, "REGRESSED"),
    ({("demo_caption", 0): 12.0}, 1, "REGRESSED"),
])
def test_exit_status_follows_the_scores(tmp_path, evals, change, status, label):
    current, baseline = two_runs(tmp_path, {**SAME, **change})
    code, out, _ = evals("compare", current, baseline)
    assert code == status
    (task, shots), = change or {("demo_vqa", 0): 50.0}
    line = next(line for line in out.splitlines() if f"{task} {shots}-shot random seed 0" in line)
    assert label in line
    assert ("gate passed: 4 cells" in out) == (status == 0)


def test_delta_and_values_are_printed(tmp_path, evals):
    current, baseline = two_runs(tmp_path, {**SAME, ("demo_vqa", 4): 57.0})
    comparison = compare(read_records([current]), read_records([baseline]))
    row = next(r for r in comparison.rows if r.cell.startswith("tiny-idefics demo_vqa 4-shot"))
    assert (row.metric, row.baseline, row.current, row.delta, row.status) == ("vqa_accuracy", "60.00", "57.00", "-3.00", "REGRESSED")
    assert comparison.summary() == "gate FAILED: 1 regressed"
    tiny = compare(read_records([write(tmp_path / "tiny", cell("demo_vqa", 4, 0, 60.001))]), read_records([baseline]))
    row = next(r for r in tiny.rows if r.cell.startswith("tiny-idefics demo_vqa 4-shot"))
    assert (row.delta, row.status) == ("+1.0e-03", "improved")  # too small for two decimals, still shown
    assert not tiny.passed and tiny.summary() == "gate FAILED: 3 missing cell"
    assert evals("compare", current, baseline, "--tolerance", "3")[0] == 0


def test_a_missing_cell_fails_and_a_new_one_passes(tmp_path, evals):
    current, baseline = two_runs(tmp_path, {k: v for k, v in SAME.items() if k != ("demo_caption", 4)})
    code, out, _ = evals("compare", current, baseline)
    assert code == 1 and "tiny-idefics demo_caption 4-shot random seed 0" in out and "MISSING CELL" in out
    write(current, cell("demo_caption", 4, 0, 30.0))
    write(current, cell("demo_caption", 8, 0, 35.0))
    code, out, _ = evals("compare", current, baseline)
    assert code == 0 and "new cell" in out


def test_a_protocol_change_fails_unless_allowed(tmp_path, evals):
    current, baseline = two_runs(tmp_path, SAME, template_hash="ffffffffffff", versions={"python": "3.13.0"})
    code, out, _ = evals("compare", current, baseline)
    assert code == 1 and "gate FAILED: 4 protocol changed" in out
    line = next(line for line in out.splitlines() if "demo_vqa 0-shot" in line and "protocol" in line)
    assert "protocol: template_hash" in line and "'a34fa499d5b9'" in line and "'ffffffffffff'" in line
    assert "protocol: versions" not in out  # package versions are provenance, never a protocol change: a note
    assert "note: package versions or placement differ (shown, not compared): evals 0.1.0 -> absent, python 3.11.7 -> 3.13.0" in out
    code, out, _ = evals("compare", current, baseline, "--allow-protocol-change")
    assert code == 0 and "changed (allowed)" in out


def test_metric_selection(tmp_path, evals):
    write(tmp_path / "baseline", cell("demo_caption", 0, 0, scores={"CIDEr": 20.0, "Bleu_4": 10.0}))
    write(tmp_path / "current", cell("demo_caption", 0, 0, scores={"CIDEr": 20.0, "Bleu_4": 5.0}))
    current, baseline = tmp_path / "current", tmp_path / "baseline"
    assert evals("compare", current, baseline)[0] == 0  # the headline (CIDEr) did not move
    assert evals("compare", current, baseline, "--metric", "Bleu_4")[0] == 1
    code, out, _ = evals("compare", current, baseline, "--metric", "all")
    assert code == 1 and "Bleu_4" in out and "CIDEr" in out
    code, _, err = evals("compare", current, baseline, "--metric", "SPICE")
    assert code == 2 and "--metric SPICE: no baseline cell has it" in err


def test_bad_input_is_status_2(tmp_path, evals):
    current, baseline = two_runs(tmp_path, SAME)
    write(current, cell("demo_vqa", 0, 0, 50.0), name="again/cell")
    code, _, err = evals("compare", current, baseline)
    assert code == 2 and "appears twice" in err and "again/cell.json" in err
    code, _, err = evals("compare", tmp_path / "nowhere", baseline)
    assert code == 2 and "no such file or folder" in err
    code, _, err = evals("compare", baseline, baseline, "--tolerance", "-1")
    assert code == 2 and "--tolerance must be >= 0" in err


def test_update_records_a_deliberate_change(tmp_path, evals):
    current, baseline = two_runs(tmp_path, {**SAME, ("demo_vqa", 4): 40.0})
    (current / "tiny-idefics" / "demo_vqa" / "random-4shot-seed0.samples.jsonl").write_text("{}\n")
    stale = write(baseline, cell("demo_vqa", 8, 0, 70.0))
    code, out, _ = evals("compare", current, baseline, "--update")
    assert code == 0 and "REGRESSED" in out and f"removed {stale}" in out
    assert "gate FAILED" not in out and "differences recorded as the new baseline: 1 regressed" in out
    updated = baseline / "tiny-idefics" / "demo_vqa" / "random-4shot-seed0.json"
    assert f"wrote {updated}" in out and json.loads(updated.read_text())["scores"] == {"vqa_accuracy": 40.0}
    assert not stale.exists() and not list(baseline.rglob("*.samples.jsonl"))
    assert sorted(p.relative_to(baseline) for p in baseline.rglob("*.json")) == sorted(p.relative_to(current) for p in current.rglob("*.json"))
    assert evals("compare", current, baseline)[0] == 0
    fresh = tmp_path / "new-baseline"
    code, out, _ = evals("compare", current, fresh, "--update")
    assert code == 0 and len(list(fresh.rglob("*.json"))) == 4 and "gate" not in out
    assert "baseline updated: 4 cells" in out


NEWER = {"python": "3.11.7", "evals": "0.1.0", "transformers": "5.25.0"}  # the baseline's: no transformers recorded


@pytest.mark.parametrize("change, status", [({}, 0), ({("demo_vqa", 4): 50.0}, 1)])
def test_package_versions_that_differ_are_noted_not_judged(tmp_path, evals, change, status):
    current, baseline = two_runs(tmp_path, {**SAME, **change}, versions={**NEWER, "evals": "0.2.0"})
    code, out, _ = evals("compare", current, baseline)
    assert code == status
    note = "note: package versions or placement differ (shown, not compared): evals 0.1.0 -> 0.2.0, transformers absent -> 5.25.0"
    assert note in out.splitlines()
    assert ("gate passed" in out) == (status == 0)


def test_no_version_note_when_versions_agree(tmp_path, evals):
    current, baseline = two_runs(tmp_path, SAME)
    assert "package versions" not in evals("compare", current, baseline)[1]


def answers_after(closing: str):
    """A scripted model that answers 'no' when the prompt ends with `closing`, else 'xyzzy' (never right): on the
    demo VQA queries it scores 25.0 with the shipped template and 0.0 once the template changes."""
    return lambda prompt: "no" if prompt.text.rstrip().endswith(closing) else "xyzzy"


def test_a_changed_prompt_template_fails_the_gate(tmp_path, evals, monkeypatch):
    settings = RunSettings(shots=(0, 4), limit=12)
    model = ScriptedModel(answers=answers_after("Short answer:"))
    before = run(model, DEMO, replace(settings, output_dir=tmp_path / "main"))
    idefics = PROMPT_FORMATS.get("idefics")
    vqa = replace(idefics.templates["vqa"], example="<image>Question: {question} Answer: {answer}\n")
    monkeypatch.setitem(PROMPT_FORMATS._entries, "idefics", replace(idefics, templates={**idefics.templates, "vqa": vqa}))
    after = run(model, DEMO, replace(settings, output_dir=tmp_path / "changed"))
    assert evals("compare", tmp_path / "main", tmp_path / "main")[0] == 0
    code, out, _ = evals("compare", tmp_path / "changed", tmp_path / "main")
    # demo_vqa and demo_what share the VQA template: all four cells changed protocol; demo_vqa's two regressed
    assert code == 1 and "gate FAILED: 4 protocol changed, 2 regressed" in out
    changed = [line for line in out.splitlines() if "protocol: template_hash" in line]
    assert len(changed) == 4 and all("demo_vqa" in line or "demo_what" in line for line in changed)
    vqa_before = {r.shots: r.scores["vqa_accuracy"] for r in before if r.task == "demo_vqa"}
    vqa_after = {r.shots: r.scores["vqa_accuracy"] for r in after if r.task == "demo_vqa"}
    assert vqa_before == {0: 25.0, 4: 25.0} and vqa_after == {0: 0.0, 4: 0.0}  # the score moved too
    code, out, _ = evals("compare", tmp_path / "changed", tmp_path / "main", "--allow-protocol-change")
    assert code == 1 and "gate FAILED: 2 regressed" in out
