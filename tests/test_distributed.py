"""Data-parallel evaluation: strided shards, per-rank journals, and 2 processes (torchrun, gloo on CPU) writing
exactly the records that 1 process writes; and 2 nodes (two torchrun launches on localhost) sharing no folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from evals import distributed, runner
from evals.distributed import World, current_world, local_device, shard
from evals.errors import ConfigError
from evals.features import write_cached
from evals.journal import Journal, journal_path
from evals.models import ScriptedModel
from evals.registry import PROMPT_FORMATS, TASKS
from evals.runner import NoProgress, RunSettings, build_requests, plan_cells, run_share
from tests.conftest import free_port
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


def test_rank_0_fills_caches_first_then_each_other_nodes_first_process_then_the_rest(monkeypatch):
    events = []
    monkeypatch.setattr(distributed, "barrier", lambda world: events.append("barrier"))

    def turn(world: World) -> int:
        """How many barriers the rank passes before it runs the block (every rank passes both)."""
        events.clear()
        with distributed.main_first(world):
            events.append("block")
        assert events.count("barrier") == 2
        return events.index("block")

    # 2 nodes x 2 processes: ranks 0, 1 on the first node, ranks 2 (LOCAL_RANK 0), 3 on the second
    assert [turn(World(rank, 4, rank % 2)) for rank in range(4)] == [0, 2, 1, 2]
    events.clear()
    with distributed.main_first(World()):
        events.append("block")
    assert events == ["block"]  # one process: no barrier


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


def test_a_rank_settles_its_own_journals_which_rank_0_may_not_see(tmp_path, monkeypatch):
    """On a node without rank 0's output folder: a finished cell's journal, or any under --overwrite, is deleted by
    its own rank; one of another protocol is refused (the line every rank then raises)."""
    monkeypatch.setattr(runner, "first_problem", lambda problem, world: problem)  # no other rank here to ask
    settings = RunSettings(shots=(0, 2), limit=3, output_dir=tmp_path)
    plans = plan_cells(ScriptedModel(), TASKS.get("demo_vqa"), PROMPT_FORMATS.get("idefics"), settings)
    world = World(1, 2)
    own = [journal_path(plan.stem, world.rank) for plan in plans]
    for path in own:
        Journal(path, "sha256:another-protocol").close()
    with pytest.raises(ConfigError, match=f"{re.escape(str(own[0]))}: journal of a run with another protocol"):
        runner.settle_own_journals(plans, [None, None], False, world)
    runner.settle_own_journals(plans, [None, "finished"], False, World(0, 2))  # rank 0 saw them itself
    assert all(path.exists() for path in own)
    with pytest.raises(ConfigError):
        runner.settle_own_journals(plans, [None, "finished"], False, world)  # the finished one goes, the other stops
    assert [path.exists() for path in own] == [True, False]
    runner.settle_own_journals(plans, [None, None], True, world)  # --overwrite
    assert not any(path.exists() for path in own)


def comparable_records(output: Path) -> tuple[dict[str, object], dict, list[float]]:
    """Every cell record without its timing, by path; every sample record; its candidate log-likelihoods apart."""
    found = {}
    for path in sorted(output.rglob("*shot-seed*.json")):
        record = json.loads(path.read_text())
        record.pop("timing")
        found[str(path.relative_to(output))] = record
    return found, *without_logliks(records(output))


def run_command(output: Path, *options: str) -> list[str]:
    """`evals run` of both models (scripted, tiny-idefics) on the two demo tasks, after its launcher."""
    return ["-m", "evals", "run", "--model", "scripted", "--model", "tiny-idefics", "--task", "demo_vqa", "--task",
            "demo_classify", "--shots", "0,2", "--limit", "5", "--batch-size", "2", "--output-dir", str(output), *options]


def evals_run(output: Path, processes: int, *options: str) -> subprocess.CompletedProcess:
    launcher = [sys.executable] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command = [*launcher, *run_command(output, *options)]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=240, check=False)


def assert_same_records(found: Path, expected: Path) -> None:
    """`found` holds exactly the records of `expected` (a one-process run), log-likelihoods to padding's last digits."""
    cells, samples, logliks = comparable_records(expected)
    assert cells and samples
    written = comparable_records(found)
    assert written[:2] == (cells, samples)  # scores, predictions, shots, prompts, generated text: identical
    assert written[2] == pytest.approx(logliks, abs=1e-4)  # batches differ by rank: padding moves the last float digits


def test_two_processes_write_exactly_what_one_does(tmp_path):
    one, two = evals_run(tmp_path / "one", 1), evals_run(tmp_path / "two", 2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    cells, samples, _ = comparable_records(tmp_path / "one")
    assert len(cells) == 8 and len(samples) == 40  # 2 models x 2 tasks x 2 shot counts, 5 queries each
    assert_same_records(tmp_path / "two", tmp_path / "one")
    assert two.stdout.count("records written under") == 1  # rank 0 alone prints (and writes)
    assert not list((tmp_path / "two").rglob("*.journal*"))
    record = json.loads(next((tmp_path / "two").rglob("*shot-seed0.json")).read_text())
    assert record["timing"]["processes"] == 2


RICES = ("--selection", "random,rices")


def two_nodes(root: Path) -> list[subprocess.CompletedProcess]:
    """Two torchrun launches at once, as two nodes of one process each, sharing nothing: node R writes under
    root/nodeR/out and caches RICES features in root/nodeR/cache. Static rendezvous (rank 0's node hosts the store at
    --master-addr:--master-port): it keeps --node-rank, so a relaunch puts each rank on the node that holds its
    journal; c10d ignores --node-rank and ranks nodes by their arrival."""
    port = str(free_port())
    launched = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank",
             str(node), "--master-addr", "127.0.0.1", "--master-port", port,
             *run_command(root / f"node{node}" / "out", *RICES, "--cache-dir", str(root / f"node{node}" / "cache"))],
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for node in (0, 1)
    ]
    try:
        return [subprocess.CompletedProcess(p.args, p.wait(timeout=240), *p.communicate()) for p in launched]
    finally:
        for process in launched:
            if process.poll() is None:
                process.kill()


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The one-process run (random and RICES shots) that the two-node runs are held to; its feature cache in ../cache."""
    root = tmp_path_factory.mktemp("one")
    finished = evals_run(root / "out", 1, *RICES, "--cache-dir", str(root / "cache"))
    assert finished.returncode == 0, finished.stderr
    return root


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_two_nodes_sharing_no_folder_write_exactly_what_one_process_does(one_process, tmp_path):
    nodes = two_nodes(tmp_path)
    assert [n.returncode for n in nodes] == [0, 0], nodes[0].stderr + nodes[1].stderr
    cells, samples, _ = comparable_records(one_process / "out")
    assert len(cells) == 16 and len(samples) == 80  # 2 models x 2 tasks x 2 shot counts x 2 selections, 5 queries each
    assert_same_records(tmp_path / "node0" / "out", one_process / "out")
    assert "records written under" in nodes[0].stdout and "records written under" not in nodes[1].stdout
    assert files_under(tmp_path / "node1" / "out") == ["evals-rank1.log"]  # no record; its journals deleted once used
    assert not list((tmp_path / "node0" / "out").rglob("*.journal*"))
    # node 1 cannot read rank 0's cache, so it computed its own features: the same files, no temporary left
    assert files_under(tmp_path / "node1" / "cache") == files_under(tmp_path / "node0" / "cache") \
        == files_under(one_process / "cache") != []


@pytest.mark.slow
def test_a_node_with_other_rices_features_stops_every_rank_before_any_model_call(one_process, tmp_path):
    """Valid cache files (checksums right) whose features differ from rank 0's: node 1 would choose other shots, which
    rank 0 would score under its own. Both nodes stop with the same line, naming the cell, the rank and its host."""
    cache = tmp_path / "node1" / "cache"
    shutil.copytree(one_process / "cache", cache)
    for path in cache.rglob("*.safetensors"):
        with safe_open(str(path), framework="np") as handle:
            metadata, matrix = handle.metadata(), handle.get_tensor("features")
        key = {field: metadata[field] for field in ("format", "embedder", "dataset", "split", "data_fingerprint", "n")}
        write_cached(path, key, json.loads(metadata["ids"]), matrix[::-1])
    nodes = two_nodes(tmp_path)
    line = r"error: demo_vqa 0-shot rices seed 0: rank 1 \(host .+\) built other queries, shots or prompts than rank 0"
    for node in nodes:
        assert node.returncode != 0
        assert re.search(line, node.stderr), node.stderr
    assert not list((tmp_path / "node0" / "out").rglob("*rices*.json"))  # no RICES cell was scored
    assert files_under(tmp_path / "node0" / "out" / "scripted") == ["demo_vqa/random-0shot-seed0.json",  # the cell before
                                                                   "demo_vqa/random-0shot-seed0.samples.jsonl"]


@pytest.mark.slow
def test_an_error_on_rank_0_alone_stops_every_rank_with_its_line(tmp_path):
    """Scoring fails on rank 0 only (ROC AUC of a single query has one class): the other rank, waiting for rank 0's
    record, gets the same error at once instead of waiting for the collective to time out."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "evals"]
    command = [*launcher, "run", "--model", "scripted", "--task", "demo_memes", "--shots", "0", "--limit", "1",
               "--output-dir", str(tmp_path)]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and len(set(errors)) == 1 and "roc" in errors[0].lower(), done.stderr[-3000:]
    assert not list(tmp_path.rglob("*shot-seed*.json"))
