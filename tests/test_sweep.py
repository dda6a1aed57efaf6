"""Sweeps: --seeds as a count or a list, TOML sweep files with command-line overrides, mean and std over seeds."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer

from evals.cli import app
from evals.errors import ConfigError
from evals.models import ScriptedModel
from evals.registry import TASKS
from evals.runner import RunSettings, run
from evals.sweep import (
    CLI_FIELDS,
    CLI_ONLY,
    CONVERTERS,
    SweepSpec,
    build_spec,
    cli_values,
    parse_seeds,
    read_sweep_file,
    run_settings,
    summarize,
)

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "250"}


def test_seeds_are_a_count_or_a_list():
    assert parse_seeds("3") == (0, 1, 2)
    assert parse_seeds("0,1,7") == (0, 1, 7)
    assert parse_seeds("7,") == (7,)  # one seed that is not a count
    with pytest.raises(ConfigError, match="--seeds: a seed count must be >= 1, got 0"):
        parse_seeds("0")
    with pytest.raises(ConfigError, match="--seeds takes comma-separated integers, got 'a,b'"):
        parse_seeds("a,b")


def test_command_line_seeds_and_repeatable_seed():
    assert cli_values({"seeds": "2"}) == {"seeds": (0, 1)}
    assert cli_values({"seed": [3, 5]}) == {"seeds": (3, 5)}
    with pytest.raises(ConfigError, match="give --seeds .* or --seed .*, not both"):
        cli_values({"seeds": "2", "seed": [1]})


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


SWEEP = '''
models = ["scripted", "HuggingFaceM4/idefics-9b"]
tasks = ["demo_vqa", "demo_classify"]
shots = [0, 4, 8]
seeds = 3
selection = "random,rices"
limit = 16
batch-size = 4
score_closing = false
output_dir = "runs"
[sources]
vqav2 = "/data/vqav2"
'''


def test_sweep_file_is_read_into_typed_settings(tmp_path):
    spec = build_spec(read_sweep_file(write_toml(tmp_path, SWEEP)), {})
    assert spec == SweepSpec(models=("scripted", "HuggingFaceM4/idefics-9b"), tasks=("demo_vqa", "demo_classify"),
                             shots=(0, 4, 8), seeds=(0, 1, 2), selection=("random", "rices"), limit=16, batch_size=4,
                             score_closing=False, output_dir=Path("runs"), sources={"vqav2": "/data/vqav2"})
    assert read_sweep_file(write_toml(tmp_path, "seeds = [0, 1, 7]\nshots = 4\nmodels = \"m\"")) == {
        "seeds": (0, 1, 7), "shots": (4,), "models": ("m",)}
    settings = run_settings(spec, overwrite=True)
    assert (settings.shots, settings.seeds, settings.selections, settings.limit) == ((0, 4, 8), (0, 1, 2), ("random", "rices"), 16)
    assert settings.overwrite and not settings.score_closing and settings.rices.order == "ascending"


def test_flags_given_on_the_command_line_override_the_file(tmp_path):
    file_values = read_sweep_file(write_toml(tmp_path, SWEEP))
    spec = build_spec(file_values, cli_values({"shots": "2", "model": ["tiny-idefics"], "seed": [4], "score_closing": True}))
    assert (spec.shots, spec.models, spec.seeds, spec.score_closing) == ((2,), ("tiny-idefics",), (4,), True)
    assert (spec.tasks, spec.limit, spec.batch_size) == (("demo_vqa", "demo_classify"), 16, 4)  # the rest from the file


@pytest.mark.parametrize(("text", "message"), [
    ("shot = [0, 4]", r"sweep.toml: unknown key 'shot'; did you mean 'shots'\?"),
    ("colour = 1", r"sweep.toml: unknown key 'colour' \(keys: models, tasks, "),
    ("shots = [0, \"4\"]", r"sweep.toml: key 'shots': expected an integer >= 0 or a non-empty list of them, got \[0, '4'\]"),
    ("seeds = true", r"sweep.toml: key 'seeds': expected a seed count \(3\) or a list of seeds \(\[0, 1, 7\]\), got True"),
    ("seeds = 0", r"sweep.toml: key 'seeds': a seed count must be >= 1, got 0"),
    ("limit = 0", r"sweep.toml: key 'limit': expected an integer >= 1, got 0"),
    ("rices_order = \"up\"", r"sweep.toml: key 'rices_order': expected ascending or descending, got 'up'"),
    ("models = [1]", r"sweep.toml: key 'models': expected a list of names, got \[1\]"),
    ("sources = [\"vqav2\"]", r"sweep.toml: key 'sources' takes TASK=LOCATION, got 'vqav2'"),
    ("sources = 3", r"sweep.toml: key 'sources': expected a table of TASK = "),
    ("shots = [0, 4", r"sweep.toml: not valid TOML \("),
])
def test_bad_sweep_files_are_one_clear_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        read_sweep_file(write_toml(tmp_path, text))


def test_missing_sweep_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.toml: sweep file not found"):
        read_sweep_file(tmp_path / "nope.toml")


def test_every_option_is_a_sweep_key_and_the_command_defaults_are_the_specs():
    command = typer.main.get_command(app).commands["run"]
    names = {p.name for p in command.params} - CLI_ONLY  # --config, --overwrite, --verbose: this invocation's
    assert set(CONVERTERS) == {f.name for f in dataclasses.fields(SweepSpec)}
    assert {CLI_FIELDS.get(name, name) for name in names} == set(CONVERTERS)
    defaults = {p.name: p.default for p in command.params if p.name in names and p.default is not None}
    assert build_spec({}, cli_values(defaults)) == SweepSpec()


def last_shot_answer(prompt) -> str:
    """Answers with the last demonstration's answer, so a query's score depends on its (seeded) shots."""
    return prompt.text.rsplit("Short answer: ", 2)[-2].split("\n")[0]


def test_mean_and_std_over_seeds_of_a_scripted_sweep(tmp_path):
    settings = RunSettings(shots=(2, 4), seeds=(0, 1, 2), limit=30, output_dir=tmp_path)
    results = run(ScriptedModel(last_shot_answer), ["demo_vqa"], settings)
    rows = summarize(results, lambda task: TASKS.get(task).headline)
    assert [(r.task, r.shots, r.selection, r.seeds, r.headline) for r in rows] == [
        ("demo_vqa", 2, "random", (0, 1, 2), "vqa_accuracy"), ("demo_vqa", 4, "random", (0, 1, 2), "vqa_accuracy")]
    for row in rows:
        scores = [r.scores["vqa_accuracy"] for r in results if r.shots == row.shots]
        assert len(set(scores)) > 1  # the seeds disagree, so the deviation is not trivially 0
        mean, std = row.stats["vqa_accuracy"]
        assert mean == pytest.approx(statistics.mean(scores)) and std == pytest.approx(statistics.stdev(scores))


def test_summary_over_hand_made_scores():
    @dataclasses.dataclass
    class Fake:
        task: str
        shots: int
        selection: str
        seed: int
        scores: dict
        protocol: object = dataclasses.field(default_factory=lambda: SimpleNamespace(model="m"))

    cells = [Fake("t", 4, "random", s, {"top5": 90.0, "acc": v}) for s, v in ((0, 50.0), (1, 60.0), (2, 70.0))]
    (row,) = summarize(cells, lambda task: "acc")
    assert list(row.stats) == ["acc", "top5"]  # the headline first
    assert row.stats["acc"] == (60.0, 10.0) and row.stats["top5"] == (90.0, 0.0)


PLUGIN = '''
from evals.models import ModelEntry, ScriptedModel
from evals.models.base import ModelInfo
from evals.registry import MODELS

def always_no(device, dtype):
    model = ScriptedModel(default="no")
    model.info = ModelInfo("scripted-no", "scripted", "fixed", "none", "idefics")
    return model

MODELS.add("scripted-no", ModelEntry("test: answers no", always_no))
'''


def test_cli_runs_a_sweep_file_over_two_models_with_an_override(tmp_path):
    (tmp_path / "no_model.py").write_text(PLUGIN)
    config = write_toml(tmp_path, f'''
models = ["scripted", "scripted-no"]
tasks = ["demo_vqa"]
shots = [0, 2]
seeds = 2
limit = 6
output_dir = "{tmp_path / 'out'}"
task_modules = ["{tmp_path / 'no_model.py'}"]
''')
    result = subprocess.run([sys.executable, "-m", "evals", "run", "--config", str(config), "--shots", "2"],
                            check=False, capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode == 0, result.stderr
    for model in ("scripted", "scripted-no"):
        records = sorted(p.name for p in (tmp_path / "out" / model / "demo_vqa").glob("*.json"))
        assert records == ["random-2shot-seed0.json", "random-2shot-seed1.json"]  # --shots 2 overrode [0, 2]
    assert result.stdout.count("mean ± std over seeds") == 2
    for model in ("scripted", "scripted-no"):  # each model's table shows the mean and std of its own two seeds
        scores = [json.loads(p.read_text())["scores"]["vqa_accuracy"] for p in (tmp_path / "out" / model).rglob("*.json")]
        assert f"{statistics.mean(scores):.2f} ± {statistics.stdev(scores):.2f}" in result.stdout


def test_cli_bad_sweep_file_is_one_line(tmp_path):
    config = write_toml(tmp_path, "shots = 4\nbatch_size = \"big\"\n")  # one shot count is fine; "big" is not
    result = subprocess.run([sys.executable, "-m", "evals", "run", "--config", str(config)], check=False,
                            capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{config}: key 'batch_size': expected an integer >= 1, got 'big'" in result.stderr
