"""End-to-end: the installed `evals` command, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "250"}  # wide tables, no folding


def evals(*args, cwd=None, columns=250):
    """`evals ARGS` piped (no terminal), as wide as `columns` (rich reads COLUMNS)."""
    executable = shutil.which("evals") or ""
    command = [executable] if executable else [sys.executable, "-m", "evals"]
    env = {**ENV, "COLUMNS": str(columns)}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


BENCHMARKS = ("vqav2", "okvqa", "textvqa", "vizwiz", "coco", "flickr30k", "nocaps", "textcaps", "imagenet",
              "hateful_memes", "visdial", "scienceqa", "rendered_sst2", "winoground")
DEMO_TASKS = {  # every task kind of the demo suite, with its headline metric
    "demo_vqa": "vqa_accuracy", "demo_caption": "CIDEr", "demo_classify": "accuracy", "demo_memes": "roc_auc",
    "demo_dialog": "ndcg", "demo_match": "group", "demo_what": "vqa_accuracy",
}


@pytest.mark.slow
def test_run_default_demo_suite(tmp_path):
    result = evals("run", "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert all(task in result.stdout and metric in result.stdout for task, metric in DEMO_TASKS.items())
    assert "demo_match runs at most 0 shots" in result.stderr  # Winoground is zero-shot only
    for task, metric in DEMO_TASKS.items():
        records = sorted((tmp_path / "out" / "tiny-idefics" / task).glob("*.json"))
        shots = [0] if task == "demo_match" else [0, 4]
        assert [r.name for r in records] == [f"random-{k}shot-seed0.json" for k in shots]
        for record in records:
            data = json.loads(record.read_text())
            assert data["protocol"]["model"] == "tiny-idefics" and metric in data["scores"]
            samples = record.with_name(record.name.replace(".json", ".samples.jsonl")).read_text().splitlines()
            assert len(samples) == data["protocol"]["n_queries"] > 0
            assert set(json.loads(samples[0])) >= {"id", "shot_ids", "prompt", "output", "prediction", "score"}
    vqa = json.loads((tmp_path / "out" / "tiny-idefics" / "demo_vqa" / "random-0shot-seed0.json").read_text())
    assert vqa["protocol"]["n_queries"] == 119


def test_run_on_official_files_with_scripted_model(tmp_path, vqa_data_dir):
    result = evals("run", "--model", "scripted", "--task", "vqav2", "--data-dir", str(vqa_data_dir),
                   "--shots", "0,2", "--seed", "1", "--seed", "2", "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out" / "scripted" / "vqav2").glob("*.json"))) == 4


def test_score_vqav2_conformance(tmp_path, conformance):
    folder = conformance / "vqa_accuracy"
    output = tmp_path / "scores.json"
    result = evals("score", "vqav2", "--predictions", str(folder / "predictions.json"),
                   "--annotations", str(folder / "annotations.json"), "--questions", str(folder / "questions.json"),
                   "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert "65.10" in result.stdout
    expected = json.loads((folder / "expected.json").read_text())
    written = json.loads(output.read_text())
    assert written["task"] == "vqav2"
    assert written["scores"] == {"vqa_accuracy": 65.1}
    assert written["by_question_type"] == expected["perQuestionType"]
    assert written["by_answer_type"] == expected["perAnswerType"]
    assert written["per_question"] == expected["per_question"]
    for value in list(expected["perQuestionType"].values()) + list(expected["perAnswerType"].values()):
        assert f"{value:.2f}" in result.stdout


def test_listings():
    tasks = evals("tasks")
    models = evals("models")
    assert tasks.returncode == models.returncode == 0
    assert all(name in tasks.stdout for name in (*BENCHMARKS, *DEMO_TASKS))
    assert all(name in models.stdout for name in ("tiny-idefics", "idefics-9b", "scripted"))


def first_cells(table_text: str) -> set[str]:
    """The first column of every row of a rich table as printed (its box lines are passed over)."""
    return {line.split("│")[1].strip() for line in table_text.splitlines() if line.startswith("│")}


def test_listings_at_80_columns_print_every_name_whole():
    from evals.models.families import families
    from evals.registry import MODELS, TASKS

    tasks = evals("tasks", columns=80)
    models = evals("models", columns=80)
    assert tasks.returncode == models.returncode == 0, tasks.stderr + models.stderr
    assert {name for name, _ in TASKS.items()} <= first_cells(tasks.stdout)
    assert {name for name, _ in MODELS.items()} | {f.name for f in families()} <= first_cells(models.stdout)
    assert max(len(line) for line in tasks.stdout.splitlines() + models.stdout.splitlines()) <= 80  # nothing cut off


def test_listings_as_json():
    from evals.models.families import CAPABILITIES, families
    from evals.registry import MODELS, TASKS

    tasks = json.loads(evals("tasks", "--format", "json", columns=80).stdout)
    assert [t["name"] for t in tasks] == [name for name, _ in TASKS.items()]
    fields = {"name", "kind", "loglik", "max_shots", "metric", "metric_variants", "support_split", "query_split", "data",
              "hub_id", "paper"}
    assert all(set(t) == fields for t in tasks)
    winoground = next(t for t in tasks if t["name"] == "winoground")
    assert (winoground["kind"], winoground["loglik"], winoground["max_shots"]) == ("rank", "sum", 0)
    assert next(t for t in tasks if t["name"] == "demo_dialog")["metric_variants"] == ["ndcg_sklearn"]
    models = json.loads(evals("models", "--format", "json").stdout)
    assert [m["name"] for m in models if m["type"] == "model"] == [name for name, _ in MODELS.items()]
    assert [m["name"] for m in models if m["type"] == "family"] == [f.name for f in families()]
    idefics = next(m for m in models if m["type"] == "family" and m["name"] == "idefics")
    assert idefics["supports"] == ["generate", "score", "prefix reuse", "feature cache", "device_map"]
    assert all(set(m["supports"]) <= set(CAPABILITIES) and m["supports"] for m in models if m["type"] == "family")
    assert evals("models", "--format", "yaml").returncode == 2


@pytest.mark.slow
def test_run_random_and_rices_on_the_demo_suite(tmp_path):
    build = evals("rices", "build", "--limit", "16", "--cache-dir", str(tmp_path / "cache"))
    assert build.returncode == 0, build.stderr
    caches = [p.name for p in (tmp_path / "cache").rglob("*.safetensors")]
    assert "offline-pixels" in build.stdout and len(caches) == 2 * len(DEMO_TASKS)  # support and queries per task
    assert all(any(name.startswith(task + "-") for name in caches) for task in DEMO_TASKS)
    result = evals("run", "--selection", "random,rices", "--shots", "0,4", "--limit", "16",
                   "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    records = {p.name for p in (tmp_path / "out" / "tiny-idefics" / "demo_vqa").glob("*.json")}
    assert records == {f"{s}-{k}shot-seed0.json" for s in ("random", "rices") for k in (0, 4)}
    record = json.loads((tmp_path / "out" / "tiny-idefics" / "demo_vqa" / "rices-4shot-seed0.json").read_text())
    assert record["protocol"]["selection_details"]["embedder"] == "offline-pixels-8x8-v1"
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == len(caches)  # the run reused what build made


def test_unknown_embedder_is_one_clear_error(tmp_path):
    result = evals("run", "--model", "scripted", "--selection", "rices", "--embedder", "offlne",
                   "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "unknown embedder 'offlne'" in result.stderr and "did you mean 'offline'" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_rices_with_a_local_clip_folder(tmp_path):
    from tests.test_rices import tiny_clip

    clip = tiny_clip(tmp_path / "clip")
    result = evals("run", "--model", "scripted", "--selection", "rices", "--embedder", str(clip), "--shots", "2",
                   "--limit", "8", "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    (record,) = (tmp_path / "out" / "scripted" / "demo_vqa").glob("rices-2shot-seed0.json")
    assert json.loads(record.read_text())["protocol"]["selection_details"]["embedder"].startswith(f"clip:{clip}@sha256:")


def option_names(command: str) -> list[str]:
    """Every option spelling of an `evals` command (`--rices-dedup-images`, `--no-rices-dedup-images`, ...)."""
    import typer

    from evals.cli import app

    params = typer.main.get_command(app).commands[command].params
    return [name for p in params for name in (*p.opts, *p.secondary_opts) if name.startswith("-")]


@pytest.mark.parametrize("command", ["run", "leaderboard", "compare"])
def test_help_at_80_columns_names_every_option_whole(command):
    result = evals(command, "--help", columns=80)
    assert result.returncode == 0, result.stderr
    words = set(re.findall(r"(?<![\w-])--?[\w-]+", result.stdout))
    assert set(option_names(command)) <= words
    assert "…" not in result.stdout and max(map(len, result.stdout.splitlines())) <= 80


def test_run_table_at_80_columns_keeps_names_whole(tmp_path):
    result = evals("run", "--model", "scripted", "--task", "demo_classify", "--task", "demo_memes", "--shots", "0",
                   "--limit", "4", "--output-dir", str(tmp_path), columns=80)
    assert result.returncode == 0, result.stderr
    assert {"demo_classify", "demo_memes"} <= first_cells(result.stdout)
    for metric in ("accuracy", "top5_accuracy", "roc_auc"):
        assert re.search(rf"│ {metric} +│", result.stdout), result.stdout
    assert "…" not in result.stdout and max(map(len, result.stdout.splitlines())) <= 80
    several = evals("run", "--model", "scripted", "--task", "demo_classify", "--shots", "0", "--seeds", "2", "--limit", "4",
                    "--output-dir", str(tmp_path), columns=80)
    assert "demo_classify" in first_cells(several.stdout) and re.search(r"│ top5_accuracy +│ +75\.00 ± 0\.00 │", several.stdout)


NOISY_MODULE = """
import logging
import warnings

warnings.warn("old_argument is deprecated", DeprecationWarning)
warnings.warn("the default will change", FutureWarning)
logging.getLogger("transformers.modeling_utils").warning("some weights were not initialized")
"""
NOISE = ("old_argument is deprecated", "the default will change", "some weights were not initialized")


def test_library_warnings_go_to_the_run_log(tmp_path):
    """A task module imported during the run warns as libraries do (its import is inside the run, as model loading is)."""
    module = tmp_path / "noisy.py"
    module.write_text(NOISY_MODULE)
    args = ("run", "--model", "scripted", "--task", "demo_vqa", "--shots", "0", "--limit", "2", "--task-module", str(module),
            "--output-dir", str(tmp_path / "out"))
    quiet = evals(*args)
    assert quiet.returncode == 0, quiet.stderr
    assert not any(text in quiet.stdout + quiet.stderr for text in NOISE), quiet.stderr
    log = (tmp_path / "out" / "evals.log").read_text()
    assert all(text in log for text in NOISE) and "DeprecationWarning" in log and log.startswith("---- ")
    verbose = evals(*args, "--verbose")
    assert verbose.returncode == 0 and all(text in verbose.stderr for text in NOISE)
    assert (tmp_path / "out" / "evals.log").read_text().count("\n---- ") == 1  # appended: one header line per run


def test_the_run_log_puts_back_what_it_routed(tmp_path):
    import logging
    import warnings

    import transformers.utils.logging  # noqa: F401  (its own stderr handler, to be put back after the run)

    from evals.runlog import captured

    def state():
        return warnings.showwarning, [logging.getLogger(n).handlers[:] for n in ("py.warnings", "transformers")]

    before = state()
    with captured(tmp_path) as log:
        logging.getLogger("transformers").warning("inside")
        assert state() != before
    logging.getLogger("py.warnings").warning("outside")
    assert state() == before and "inside" in log.read_text() and "outside" not in log.read_text()


@pytest.mark.parametrize("model_id, folder", [
    ("./tiny2", "tiny2"), ("tiny2/", "tiny2"), ("./tiny2/", "tiny2"), ("../ckpts/tiny2", "tiny2"), ("/abs/path/tiny2", "tiny2"),
    ("~/tiny2", "tiny2"), ("HuggingFaceM4/idefics-9b", "HuggingFaceM4--idefics-9b"), ("tiny-idefics", "tiny-idefics"),
    ("ckpts/tiny2", "ckpts--tiny2"),  # relative without ./: named as before (as a hub id), so earlier runs resume
])
def test_a_local_model_folder_gives_a_visible_results_folder(model_id, folder, tmp_path):
    from results.store import cell_path, model_slug

    assert model_slug(model_id) == folder
    assert cell_path(tmp_path, model_id, "demo_vqa", "random", 0, 0) == tmp_path / folder / "demo_vqa" / "random-0shot-seed0"


def test_model_slug_of_the_current_folder(monkeypatch, tmp_path):
    from results.store import model_slug

    monkeypatch.chdir(tmp_path / ".")
    assert model_slug(".") == tmp_path.name and model_slug("./") == tmp_path.name
