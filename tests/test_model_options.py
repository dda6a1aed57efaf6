"""--model-args: parsing into ModelOptions, clear errors, from_pretrained keyword arguments, what results record."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import asdict, replace

import pytest
import torch

from evals.errors import ConfigError
from evals.models import resolve_model
from evals.models.options import ModelOptions, from_pretrained_kwargs, model_args, parse_model_args
from evals.runner import RunSettings, run
from evals.sweep import SweepSpec, cli_values, model_options, to_model_args
from results.compare import compare
from results.records import read_records
from results.schema import CellResult
from tests.cells import BASE, cell, write


def test_pairs_become_typed_options_with_aliases():
    options = parse_model_args("dtype=bf16, attn_implementation=sdpa,load_in_4bit=false,revision=abc123,"
                               "local_files_only=yes,do_image_splitting=true,longest_edge=490")
    assert options == ModelOptions(dtype="bfloat16", attn_implementation="sdpa", load_in_4bit=False, revision="abc123",
                                   local_files_only=True, do_image_splitting=True, longest_edge=490)
    assert parse_model_args("").dtype == "float32" and parse_model_args("dtype=fp16").dtype == "float16"
    assert parse_model_args({"trust_remote_code": True, "longest_edge": 980}) == ModelOptions(trust_remote_code=True, longest_edge=980)


def test_unknown_key_lists_the_valid_keys():
    with pytest.raises(ConfigError) as error:
        parse_model_args("dtype=bf16,attention=sdpa")
    message = str(error.value)
    assert "unknown key 'attention'" in message and "attn_implementation" in message and "longest_edge" in message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "says"), [
    ("dtype=fp8", "unknown dtype 'fp8'"), ("attn_implementation=flash", "unknown attention 'flash'"),
    ("load_in_4bit=maybe", "expected true or false"), ("longest_edge=0", "positive integer"),
    ("dtype", "key=value pairs"), ("dtype=bf16,dtype=fp16", "gives 'dtype' twice"),
])
def test_bad_values_are_one_line_errors(text, says):
    with pytest.raises(ConfigError, match=says):
        parse_model_args(text)


def test_dtype_flag_is_an_alias_and_must_agree():
    assert parse_model_args("", dtype="bfloat16").dtype == "bfloat16"
    assert parse_model_args("dtype=bf16", dtype="bfloat16").dtype == "bfloat16"
    with pytest.raises(ConfigError, match="disagree"):
        parse_model_args("dtype=bf16", dtype="float16")
    spec = SweepSpec(**cli_values({"model_args": "dtype=bf16,revision=main", "dtype": "bf16"}))
    assert model_options(spec) == ModelOptions(dtype="bfloat16", revision="main")
    assert model_options(SweepSpec()) == ModelOptions()  # `evals run` defaults load as before: float32, nothing else


def test_sweep_file_takes_a_table_or_a_string():
    assert to_model_args({"dtype": "bf16", "load_in_4bit": False}, "f: key 'model_args'") == {"dtype": "bf16", "load_in_4bit": "false"}
    assert to_model_args("longest_edge=490", "f") == {"longest_edge": "490"}
    with pytest.raises(ConfigError, match="unknown key 'dtyp'"):
        to_model_args({"dtyp": "bf16"}, "f")


def test_from_pretrained_kwargs():
    kwargs = from_pretrained_kwargs(parse_model_args("dtype=bf16,attn_implementation=eager,revision=r1"), "cpu")
    assert kwargs == {"dtype": torch.bfloat16, "revision": "r1", "local_files_only": False, "trust_remote_code": False,
                      "attn_implementation": "eager"}
    assert "attn_implementation" not in from_pretrained_kwargs(ModelOptions(), "cpu")  # transformers' own default


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed here")
def test_flash_attention_without_the_package_says_what_to_install():
    with pytest.raises(ConfigError, match="pip install flash-attn"):
        from_pretrained_kwargs(ModelOptions(attn_implementation="flash_attention_2"), "cpu")


def test_4bit_needs_bitsandbytes_and_cuda():
    expected = "pip install bitsandbytes" if importlib.util.find_spec("bitsandbytes") is None else "needs a CUDA device"
    with pytest.raises(ConfigError, match=expected):
        from_pretrained_kwargs(ModelOptions(load_in_4bit=True), "cpu")


def test_recorded_options_leave_out_defaults():
    assert ModelOptions().recorded() == {} and parse_model_args("dtype=fp32").recorded() == {}
    assert ModelOptions(attn_implementation="sdpa", longest_edge=490).recorded() == {"attn_implementation": "sdpa", "longest_edge": 490}


def test_a_dtype_passed_in_model_args_is_recorded_there(tmp_path):
    """`--model-args dtype=bf16` shows in protocol.model_args (where the user looks for it); the gate compares the
    dtype field alone, so a record of the same run written before dtype was recorded there still compares equal."""
    options = parse_model_args("dtype=bf16,attn_implementation=eager")
    assert options.recorded() == {"dtype": "bfloat16", "attn_implementation": "eager"}
    assert options.set_keys() == ["attn_implementation"]  # every model takes a dtype
    assert model_args(resolve_model("tiny-idefics", options=options)) == {"dtype": "bfloat16", "attn_implementation": "eager"}
    now = write(tmp_path / "now", cell(dtype="bfloat16", model_args={"dtype": "bfloat16"}))
    before = write(tmp_path / "before", cell(dtype="bfloat16", model_args={}))
    assert json.loads(now.read_text())["protocol"]["model_args"] == {"dtype": "bfloat16"}
    assert compare(read_records([now]), read_records([before])).passed
    assert not compare(read_records([now]), read_records([write(tmp_path / "fp32", cell())])).passed  # dtype field


def test_model_args_are_compared_except_provenance():
    base = BASE
    assert base.model_args == {}  # the default: every option at its default
    sdpa = replace(base, model_args={"attn_implementation": "sdpa"})
    offline = replace(base, model_args={"local_files_only": True})
    assert sdpa.comparable()["model_args"] == {"attn_implementation": "sdpa"}
    assert sdpa.comparable_hash() != base.comparable_hash()
    assert offline.comparable_hash() == base.comparable_hash()


def test_family_options_are_refused_by_idefics():
    with pytest.raises(ConfigError, match="do_image_splitting does not apply to idefics models"):
        resolve_model("tiny-idefics", options=ModelOptions(do_image_splitting=True))


def test_a_model_without_options_takes_only_dtype():
    with pytest.raises(ConfigError, match="model 'scripted' takes no --model-args but dtype"):
        resolve_model("scripted", options=ModelOptions(revision="main"))
    assert resolve_model("scripted", options=ModelOptions(dtype="bfloat16")).info.family == "scripted"


def test_an_in_process_run_records_the_models_options(tmp_path):
    """The runner reads the options off the model it is given: no command around it has to set anything."""
    model = resolve_model("tiny-idefics", options=ModelOptions(attn_implementation="eager", local_files_only=True))
    (result,) = run(model, ["demo_vqa"], RunSettings(shots=(0,), limit=2, output_dir=tmp_path))
    assert result.protocol.model_args == {"attn_implementation": "eager", "local_files_only": True}
    assert result.protocol.comparable()["model_args"] == {"attn_implementation": "eager"}  # where it loaded from: provenance
    (path,) = [p for p in tmp_path.rglob("*.json") if ".samples." not in p.name]
    assert CellResult.from_dict(json.loads(path.read_text()), str(path)) == result
    default = replace(result.protocol, model_args={})
    assert default.comparable_hash() != result.protocol.comparable_hash()


def v3_record(folder, task: str, shots: int):
    """A cell record as schema v3 wrote it before model_args existed (the committed baselines are such records)."""
    result = cell(task, shots)
    protocol = {k: v for k, v in asdict(result.protocol).items() if k != "model_args"}
    return write(folder, result, schema_version=3, protocol=protocol)


@pytest.mark.parametrize("model_args, changed", [
    ({}, []),
    ({"local_files_only": True}, []),  # provenance: the same weights, read from the cache
    # the flattened protocol names both the emptied object and the new key (as for any nested protocol field)
    ({"attn_implementation": "eager"}, ["protocol: model_args", "protocol: model_args.attn_implementation"]),
])
def test_the_gate_reads_v3_baselines_as_model_args_unset(tmp_path, model_args, changed):
    for task, shots in (("demo_vqa", 0), ("demo_caption", 4)):
        v3_record(tmp_path / "baseline", task, shots)
        write(tmp_path / "current", cell(task, shots, model_args=model_args))
    comparison = compare(read_records([tmp_path / "current"]), read_records([tmp_path / "baseline"]))
    assert sorted({r.metric for r in comparison.failures}) == changed
    assert [r.status for r in comparison.rows if r.metric.startswith("protocol")] == ["PROTOCOL CHANGED"] * 2 * len(changed)


def test_evals_compare_passes_v4_records_against_a_v3_baseline(tmp_path):
    v3_record(tmp_path / "baseline", "demo_vqa", 0)
    write(tmp_path / "current", cell("demo_vqa", 0))
    done = subprocess.run([sys.executable, "-m", "evals", "compare", str(tmp_path / "current"), str(tmp_path / "baseline")], check=False,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gate passed: 1 cells" in done.stdout and "protocol" not in done.stdout
    assert json.loads((tmp_path / "baseline/tiny-idefics/demo_vqa/random-0shot-seed0.json").read_text())["schema_version"] == 3
