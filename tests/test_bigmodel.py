"""One model spread over devices (`--model-args device_map=auto`), end to end on CPU: the bundled models with part of
their blocks offloaded to disk predict and score as when loaded whole; under a simulated torchrun the placement is
exactly the planned one (never tensor parallelism); impossible requests are one line before any weights load."""

from __future__ import annotations

import pytest
import torch

from evals.errors import ConfigError
from evals.models import BUNDLED_CHECKPOINT
from evals.models.idefics import IdeficsModel
from evals.models.idefics2 import Idefics2Model
from evals.models.options import parse_model_args
from evals.records import GenerationParams
from tests.conftest import call_evals
from tests.test_idefics2 import tiny_idefics2_folder  # noqa: F401  (a fixture)
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


@pytest.mark.parametrize("feature_cache", [True, False])
def test_idefics_offloaded_to_disk_predicts_and_scores_as_loaded_whole(tiny_idefics, offloaded_idefics, feature_cache):
    whole, spread = twin(tiny_idefics, feature_cache=feature_cache), twin(offloaded_idefics, feature_cache=feature_cache)
    prompts, params = few_shot_prompts(), GenerationParams(max_new_tokens=6, num_beams=3)
    assert spread.generate(prompts, params) == whole.generate(prompts, params)
    candidates = [CANDIDATES] * len(prompts)
    assert spread.score_naive(prompts, candidates) == whole.score_naive(prompts, candidates)
    assert_same_scores(spread.score(prompts, candidates), whole.score(prompts, candidates))  # prefix reuse


def test_idefics2_offloaded_to_disk_predicts_and_scores_as_loaded_whole(tiny_idefics2_folder, tmp_path):  # noqa: F811
    whole = Idefics2Model.load(tiny_idefics2_folder)
    half = (tiny_idefics2_folder / "model.safetensors").stat().st_size // 2
    spread = Idefics2Model.load(tiny_idefics2_folder, options=parse_model_args(offloaded_options(tmp_path, half)))
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
        bigmodel.placement_kwargs(IdeficsForVisionText2Text, BUNDLED_CHECKPOINT, "cuda:1", parse_model_args("device_map=auto"), "IDEFICS")
