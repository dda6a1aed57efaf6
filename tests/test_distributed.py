"""Data-parallel evaluation: strided shards, per-rank journals, and 2 processes (torchrun, gloo on CPU) writing
exactly the records that 1 process writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals.distributed import World, current_world, local_device, shard
from evals.errors import ConfigError
from evals.models import ScriptedModel
from evals.registry import PROMPT_FORMATS, TASKS
from evals.runner import NoProgress, RunSettings, build_requests, plan_cells, run_share
from tests.test_batching import records, without_logliks

# torchrun sets one thread per process; the 1-process run uses the same, so float sums reduce in the same order.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "250", "OMP_NUM_THREADS": "1"}


def test_strided_shards_hold_every_item_once_without_padding():
    items = list(range(7))
    shards = [shard(items, World(rank, 3)) for rank in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert shard(items, World()) == items


def test_world_comes_from_the_launcher_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert current_world("cuda") == World(3, 4, 1, "nccl")
    assert current_world("cpu") == World(3, 4, 1, "gloo")
    assert local_device("cuda", current_world("cuda")) == "cuda:1"
    assert local_device("cuda:0", current_world("cuda")) == "cuda:0"  # an explicit device is kept
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="RANK=4 is not below WORLD_SIZE=4"):
        current_world()
    monkeypatch.delenv("WORLD_SIZE")
    assert current_world("cuda") == World()
    assert local_device("cuda", World()) == "cuda"


def test_a_rank_journals_its_own_shard_and_resumes_it(tmp_path):
    settings = RunSettings(shots=(2,), limit=5, batch_size=2, output_dir=tmp_path)
    task = TASKS.get("demo_vqa")
    (plan,) = plan_cells(ScriptedModel(), task, PROMPT_FORMATS.get("idefics"), settings)
    requests = build_requests(task, plan.template, plan.selector, plan.data, plan.cell)
    world = World(1, 2)
    mine = shard(requests, world)
    first_model = ScriptedModel(answers=lambda p: p.text[-7:])
    first = run_share(first_model, plan, mine, settings, NoProgress(), world)
    journal = plan.stem.with_name(plan.stem.name + ".journal.rank1.jsonl")
    assert [json.loads(line)["id"] for line in journal.read_text().splitlines()[1:]] == [r.query.id for r in mine]
    assert sorted(first.entries) == [(r.query.id, 0) for r in requests[1::2]] and first.computed == 2
    again = ScriptedModel()
    resumed = run_share(again, plan, mine, settings, NoProgress(), world)
    assert again.seen == [] and resumed.resumed == 2 and resumed.entries == first.entries


def comparable_records(output: Path) -> tuple[dict[str, object], dict, list[float]]:
    """Every cell record without its timing, by path; every sample record; its candidate log-likelihoods apart."""
    found = {}
    for path in sorted(output.rglob("*shot-seed*.json")):
        record = json.loads(path.read_text())
        record.pop("timing")
        found[str(path.relative_to(output))] = record
    return found, *without_logliks(records(output))


def evals_run(output: Path, processes: int) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "evals"] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m", "evals"]
    command = [*launcher, "run", "--model", "scripted", "--model", "tiny-idefics", "--task", "demo_vqa", "--task",
               "demo_classify", "--shots", "0,2", "--limit", "5", "--batch-size", "2", "--output-dir", str(output)]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=240, check=False)


def test_two_processes_write_exactly_what_one_does(tmp_path):
    one, two = evals_run(tmp_path / "one", 1), evals_run(tmp_path / "two", 2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    cells, samples, logliks = comparable_records(tmp_path / "one")
    assert len(cells) == 8 and len(samples) == 40  # 2 models x 2 tasks x 2 shot counts, 5 queries each
    found = comparable_records(tmp_path / "two")
    assert found[:2] == (cells, samples)  # scores, predictions, shots, prompts, generated text: identical
    assert found[2] == pytest.approx(logliks, abs=1e-4)  # batches differ by rank: padding moves the last float digits
    assert two.stdout.count("records written under") == 1  # rank 0 alone prints (and writes)
    assert not list((tmp_path / "two").rglob("*.journal*"))
    record = json.loads(next((tmp_path / "two").rglob("*shot-seed0.json")).read_text())
    assert record["timing"]["processes"] == 2
