"""One model spread over devices (`--model-args device_map=auto`), end to end on CPU: the bundled models with part of
their blocks offloaded to disk predict and score as when loaded whole; under a simulated torchrun the placement is
exactly the planned one (never tensor parallelism); impossible requests are one line before any weights load."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evals.errors import ConfigError
from evals.models import BUNDLED_CHECKPOINT
from evals.models.idefics import IdeficsModel
from evals.models.idefics2 import Idefics2Model
from evals.models.idefics3 import Idefics3Model
from evals.models.options import parse_model_args
from evals.records import GenerationParams
from tests.conftest import call_evals, free_port
from tests.test_idefics2 import tiny_idefics2_folder  # noqa: F401  (a fixture)
from tests.test_idefics3 import tiny_idefics3_folder  # noqa: F401  (a fixture)
from tests.test_vision_cache import CANDIDATES, few_shot_prompts, twin

# Scores through the prefix-reuse path may differ in float32's last bits: offloaded blocks get their weights (and the
# continuation its key/value rows) as fresh tensors, and CPU kernels then sum in another order. The naive path, which
# recomputes each candidate whole, is bit for bit the same; every decision (argmax) is the same either way.
LAST_BITS = 1e-4


def offloaded_options(folder, cpu_bytes: int) -> str:
    return f"device_map=auto,max_memory=cpu:{cpu_bytes},offload_folder={folder}"


@pytest.fixture(scope="module")
def offloaded_idefics(tmp_path_factory) -> IdeficsModel:
    """The bundled IDEFICS with 3 MB of its 6 MB of weights allowed in memory: the rest on disk."""
    folder = tmp_path_factory.mktemp("offload")
    return IdeficsModel.load(BUNDLED_CHECKPOINT, options=parse_model_args(offloaded_options(folder, 3 * 10**6)))


def assert_same_scores(got, expected) -> None:
    assert [[pytest.approx(v, abs=LAST_BITS) for v in row] for row in expected] == got
    assert [max(range(len(r)), key=r.__getitem__) for r in got] == [max(range(len(r)), key=r.__getitem__) for r in expected]


def test_offloaded_blocks_are_on_disk_and_inputs_go_to_the_embeddings(offloaded_idefics):
    placement = offloaded_idefics.placement
    assert placement["devices"] == ["cpu", "disk"] and all(n > 0 for n in placement["blocks_per_device"].values())
    assert offloaded_idefics.model.hf_device_map["model.embed_tokens"] == "cpu" and offloaded_idefics.device == "cpu"
    assert offloaded_idefics.options.recorded()["device_map"] == "auto"


@pytest.mark.slow
@pytest.mark.parametrize("feature_cache", [True, False])
def test_idefics_offloaded_to_disk_predicts_and_scores_as_loaded_whole(tiny_idefics, offloaded_idefics, feature_cache):
    whole, spread = twin(tiny_idefics, feature_cache=feature_cache), twin(offloaded_idefics, feature_cache=feature_cache)
    prompts, params = few_shot_prompts(2), GenerationParams(max_new_tokens=5, num_beams=3)
    assert spread.generate(prompts, params) == whole.generate(prompts, params)
    candidates = [CANDIDATES] * len(prompts)
    assert spread.score_naive(prompts, candidates) == whole.score_naive(prompts, candidates)
    assert_same_scores(spread.score(prompts, candidates), whole.score(prompts, candidates))  # prefix reuse


def test_idefics2_offloaded_to_disk_predicts_and_scores_as_loaded_whole(tiny_idefics2_folder, tmp_path):  # noqa: F811
    assert_offloaded_half_predicts_and_scores_as_whole(Idefics2Model, tiny_idefics2_folder, tmp_path)


def test_idefics3_offloaded_to_disk_predicts_and_scores_as_loaded_whole(tiny_idefics3_folder, tmp_path):  # noqa: F811
    assert_offloaded_half_predicts_and_scores_as_whole(Idefics3Model, tiny_idefics3_folder, tmp_path)


def assert_offloaded_half_predicts_and_scores_as_whole(model_class, folder: Path, offload: Path) -> None:
    """Half the weights on disk (loaded through load_pretrained's device_map path): same generations, same scores."""
    whole = model_class.load(folder)
    half = (folder / "model.safetensors").stat().st_size // 2
    spread = model_class.load(folder, options=parse_model_args(offloaded_options(offload, half)))
    assert spread.placement["devices"] == ["cpu", "disk"]
    prompts, params = few_shot_prompts(2), GenerationParams(max_new_tokens=5, num_beams=2)
    assert spread.generate(prompts, params) == whole.generate(prompts, params)
    candidates = [CANDIDATES] * len(prompts)
    assert_same_scores(spread.score(prompts, candidates), whole.score(prompts, candidates))


TORCHRUN_RANK_1 = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0",
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533", "TORCHELASTIC_RUN_ID": "simulated"}


def test_under_torchrun_loading_gives_the_planned_placement_not_tensor_parallelism(monkeypatch, tmp_path, offloaded_idefics):
    """transformers is handed an explicit block -> device map (never the string "auto", which some releases read under
    torchrun as tensor parallelism); no process group is started and every weight is a plain tensor of its own."""
    from transformers import IdeficsForVisionText2Text

    for name, value in TORCHRUN_RANK_1.items():
        monkeypatch.setenv(name, value)
    handed = {}
    original = IdeficsForVisionText2Text.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        handed.update(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(IdeficsForVisionText2Text, "from_pretrained", classmethod(spy))
    loaded = IdeficsModel.load(BUNDLED_CHECKPOINT, options=parse_model_args(offloaded_options(tmp_path, 3 * 10**6)))
    assert isinstance(handed["device_map"], dict) and not {"tp_plan", "tp_size", "distributed_config"} & set(handed)
    assert loaded.model.hf_device_map == offloaded_idefics.model.hf_device_map  # as planned without torchrun
    assert not torch.distributed.is_initialized()
    assert not any(type(p).__name__ == "DTensor" for p in loaded.model.parameters())
    assert loaded.generate(few_shot_prompts(1), GenerationParams(max_new_tokens=4)) == \
        offloaded_idefics.generate(few_shot_prompts(1), GenerationParams(max_new_tokens=4))


RUN = ["run", "--model", "tiny-idefics", "--task", "demo_vqa", "--shots", "0", "--limit", "2"]


@pytest.mark.parametrize(("args", "fragment"), [
    (["--model-args", "max_memory=1GB"], "--model-args max_memory needs device_map=auto (or sequential)"),
    (["--model-args", "offload_folder=/tmp/x"], "--model-args offload_folder needs device_map=auto"),
    (["--model-args", "device_map=balanced"], "unknown placement 'balanced' (choose from auto, sequential)"),
    (["--model-args", "device_map=auto,load_in_4bit=true"], "load_in_4bit=true places the whole model on --device"),
    (["--model-args", "device_map=auto,max_memory=cpu:lots"], "max_memory: 'lots' is not a size"),
    (["--model-args", "device_map=auto,max_memory=cpu:1MB"],
     "in float32 needs 5.8 MiB of weights, but each process may use cpu 1.0 MiB = 1.0 MiB"),
    (["--gpus-per-process", "0"], "--gpus-per-process: expected an integer >= 1, got 0"),
])
def test_impossible_placements_are_one_line_before_any_weights_load(monkeypatch, capsys, tmp_path, args, fragment):
    code, out, err = call_evals(monkeypatch, capsys, [*RUN, "--output-dir", str(tmp_path), *args])
    assert code == 2 and fragment in err and "Traceback" not in err + out
    assert not list(tmp_path.rglob("*.samples.jsonl"))


def planned_map(monkeypatch, gpus: int, args: str) -> dict:
    """The device map planned for the bundled IDEFICS on `gpus` simulated 3.6 MB GPUs (nothing loads: planning needs
    only the model's empty modules)."""
    from transformers import IdeficsForVisionText2Text

    from evals.models import bigmodel

    monkeypatch.setattr(bigmodel, "node_gpu_memory", lambda device: [3_600_000] * gpus)
    return bigmodel.placement_kwargs(IdeficsForVisionText2Text, BUNDLED_CHECKPOINT, "cuda", parse_model_args(args), "IDEFICS")


def test_auto_spreads_whole_blocks_over_the_process_gpus_and_sequential_fills_in_order(monkeypatch):
    auto = planned_map(monkeypatch, 2, "device_map=auto,max_memory=3500000")["device_map"]
    assert set(auto.values()) == {0, 1} and auto["model.embed_tokens"] == 0
    assert all(not k.startswith("model.layers.0.") for k in auto)  # a decoder layer is never cut
    assert set(planned_map(monkeypatch, 2, "device_map=sequential,max_memory=0:9MB;1:9MB")["device_map"].values()) == {0}


def test_blocks_that_do_not_fit_whole_without_an_offload_folder_are_refused(monkeypatch):
    with pytest.raises(ConfigError, match=r"its blocks do not fit whole in 6.1 MiB \(max_memory\): allow more, or offload"):
        planned_map(monkeypatch, 2, "device_map=auto,max_memory=0:3200000;1:3200000")
    with_disk = planned_map(monkeypatch, 2, "device_map=auto,max_memory=0:3200000;1:3200000,offload_folder=/tmp/o")
    assert "disk" in with_disk["device_map"].values() and with_disk["offload_folder"] == "/tmp/o"


def test_a_numbered_cuda_device_with_device_map_is_refused(monkeypatch):
    from transformers import IdeficsForVisionText2Text

    from evals.models import bigmodel

    with pytest.raises(ConfigError, match="--device cuda:1 with device_map: give --device cuda"):
        bigmodel.placement_kwargs(IdeficsForVisionText2Text, BUNDLED_CHECKPOINT, "cuda:1", parse_model_args("device_map=auto"),
                                  "IDEFICS")


# ---------------------------------------------------------------- README's command lines, run with the bundled model

README = Path(__file__).parent.parent / "README.md"
MARKER = "tests/test_bigmodel.py::test_readme_placement_commands"


def readme_commands() -> list[str]:
    """The command lines of the bash block after MARKER, continuation lines joined, comments dropped."""
    text = README.read_text().split(MARKER, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [line for line in text.replace("\\\n", " ").splitlines() if line.strip() and not line.startswith("#")]
    return [" ".join(line.split()) for line in lines]


def on_this_machine(command: str, data_dir: Path, output: Path) -> list[str]:
    """The README line with only the model id, the device and the data folder changed (and local addresses)."""
    command = (command.replace("HuggingFaceM4/idefics-80b", "tiny-idefics").replace("--device cuda", "--device cpu")
               .replace("~/data", str(data_dir)).replace("results/80b", str(output)).replace("10.0.0.1", "127.0.0.1"))
    program, *args = shlex.split(command)
    launcher = {"torchrun": [sys.executable, "-m", "torch.distributed.run"], "evals": [sys.executable, "-m", "evals"]}
    return [*launcher[program], *args]


def launch_all(commands: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Start the commands at once (the nodes of one run) and wait for all."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    port = str(free_port())
    processes = [subprocess.Popen([a.replace("29500", port) for a in c], env={**env, "PET_MASTER_PORT": port},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    outputs = [p.communicate(timeout=400) for p in processes]
    return [subprocess.CompletedProcess(p.args, p.returncode, *out) for p, out in zip(processes, outputs)]


@pytest.mark.slow
def test_readme_placement_commands(tmp_path, vqa_data_dir):
    """8 x 80 GB as 2 processes x 4 GPUs, 4 x 80 GB as one process, two nodes: each line runs (here on CPU, where the
    GPUs per process have nothing to divide) and writes every cell with its placement and options recorded."""
    eight, four, nodes = readme_commands()
    assert "--gpus-per-process 4" in eight and "device_map=auto" in four and "--node-rank 0" in nodes
    runs = {"eight": [eight], "four": [four], "nodes": [nodes, nodes.replace("--node-rank 0", "--node-rank 1")]}
    for name, lines in runs.items():
        done = launch_all([on_this_machine(line, vqa_data_dir, tmp_path / name) for line in lines])
        assert all(d.returncode == 0 for d in done), [d.stderr[-2000:] for d in done]
        records = sorted((tmp_path / name).rglob("*shot-seed0.json"))
        assert [json.loads(r.read_text())["shots"] for r in records] == [0, 4, 8]
        for record in map(json.loads, (r.read_text() for r in records)):
            protocol = record["protocol"]
            assert protocol["model_args"] == {"device_map": "auto", "dtype": "bfloat16"} and protocol["dtype"] == "bfloat16"
            assert protocol["placement"] == {"devices": ["cpu"]} and record["protocol"]["n_queries"] == 6
        processes = {"eight": 2, "four": None, "nodes": 4}[name]
        assert json.loads(records[0].read_text())["timing"].get("processes") == processes


@pytest.mark.parametrize(("given", "args", "visible", "processes", "expected"), [
    (None, "device_map=auto", 8, "2", 4),  # the node's GPUs divided among its processes
    (2, "device_map=auto", 8, "2", 2),
    (None, "", 8, "2", 1),  # a model loaded whole: one GPU a process
])
def test_each_process_owns_its_share_of_the_node(monkeypatch, given, args, visible, processes, expected):
    """A rank's collectives run on its first GPU (local_rank * N), so ranks never share one."""
    from dataclasses import replace

    from evals.distributed import World, local_device
    from evals.models.bigmodel import gpus_per_process

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", processes)
    n = gpus_per_process("cuda", replace(parse_model_args(args), gpus_per_process=given))
    world = World(rank=1, size=2, local_rank=1, gpus_per_process=n)
    assert n == expected and world.first_gpu == expected
    assert local_device("cuda", world, spread=bool(args)) == ("cuda" if args else f"cuda:{expected}")
