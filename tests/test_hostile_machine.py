"""Hostile input about the machine and the model: a device it lacks, a damaged checkpoint folder, a hub id it has
not cached while offline, repeated or negative shots and seeds. Each is one line and exit 2 before anything runs
(never a traceback, never a table), or, for a repeat, a note and each cell once."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field

import pytest

from evals.cli import main
from evals.models import BUNDLED_CHECKPOINT

RUN = ["run", "--task", "demo_classify", "--shots", "0", "--limit", "2"]


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]  # after RUN; "{model}" is the broken checkpoint copy, "{sweep}" the sweep file
    status: int
    says: tuple[str, ...]  # fragments of the one stderr line
    gpus: int = 0  # CUDA devices the machine pretends to have
    config: dict = field(default_factory=dict)  # config.json fields to set ("a.b": nested) in the checkpoint copy
    damage: str = ""  # config_text | truncate | tiny: how the copy's files are broken
    sweep: str = ""  # sweep file text
    rows: int = 0  # table rows of demo_classify expected on stdout (a run that goes ahead)


SCRIPTED = ("--model", "scripted")
FOLDER = ("--model", "{model}")
NOT_CACHED = ("not in the local Hugging Face cache", "offline (HF_HUB_OFFLINE=1)", "--model FOLDER")

CASES = [
    # the machine: --device names one it does not have
    Case("device-not-torch", (*SCRIPTED, "--device", "gpu0"), 2, ("--device gpu0: not a torch device", "this machine has: cpu")),
    Case("device-cuda-absent", (*SCRIPTED, "--device", "cuda"), 2, ("--device cuda: CUDA is not available", "(devices: cpu)")),
    Case("device-cuda-index-absent", (*SCRIPTED, "--device", "cuda:3"), 2, ("CUDA is not available",)),
    Case("device-cuda-index-beyond", (*SCRIPTED, "--device", "cuda:3"), 2,
         ("--device cuda:3: this machine has 2 cuda devices", "cpu, cuda:0, cuda:1"), gpus=2),
    Case("device-mps-absent", (*SCRIPTED, "--device", "mps"), 2, ("--device mps: MPS is not available",)),
    Case("device-meta", (*SCRIPTED, "--device", "meta"), 2, ("the 'meta' device is not available",)),
    Case("device-bad-index-no-emoji", (*SCRIPTED, "--device", "cuda:x"), 2, ("--device cuda:x: not a torch device",)),
    Case("device-in-sweep-file", (*SCRIPTED, "--config", "{sweep}"), 2, ("--device gpu1: not a torch device",),
         sweep='device = "gpu1"\n'),
    # model folders: a copy of the bundled checkpoint with one file broken
    Case("config-negative-vocab", FOLDER, 2, ("config.json: field 'vocab_size' must be a positive integer, got -5",),
         config={"vocab_size": -5}),
    Case("config-string-size", FOLDER, 2, ("config.json: field 'hidden_size' must be a positive integer, got 'abc'",),
         config={"hidden_size": "abc"}),
    Case("config-nested-zero", FOLDER, 2, ("config.json: field 'vision_config.embed_dim'",), config={"vision_config.embed_dim": 0}),
    Case("config-wrong-type", FOLDER, 2, ("config.json: Validation error for field 'dropout'",), config={"dropout": "abc"}),
    Case("config-not-json", FOLDER, 2, ("config.json: not a readable JSON config",), damage="config_text"),
    Case("weights-truncated", FOLDER, 2, ("model.safetensors: not a readable safetensors file", "file not fully covered"),
         damage="truncate"),
    Case("weights-header-only", FOLDER, 2, ("model.safetensors: not a readable safetensors file", "header too small"),
         damage="tiny"),
    # a hub id this offline machine has not cached
    Case("hub-id-not-cached", ("--model", "someorg/not-cached-model"), 2,
         ("'someorg/not-cached-model'", "hf download someorg/not-cached-model", *NOT_CACHED)),
    Case("registered-hub-model-not-cached", ("--model", "idefics-9b"), 2, ("hf download HuggingFaceM4/idefics-9b", *NOT_CACHED)),
    # shots and seeds: negatives and non-integers refused, repeats run once
    Case("shots-negative", (*SCRIPTED, "--shots", "-4"), 2, ("--shots: expected integers >= 0, got -4",)),
    Case("seeds-negative", (*SCRIPTED, "--seeds", "-1,2"), 2, ("--seeds: expected integers >= 0, got -1",)),
    Case("seed-negative", (*SCRIPTED, "--seed", "-1"), 2, ("--seed: expected integers >= 0, got -1",)),
    Case("shots-not-integer", (*SCRIPTED, "--shots", "1.5"), 2, ("--shots takes comma-separated integers, got '1.5'",)),
    Case("seeds-not-integer", (*SCRIPTED, "--seeds", "a,b"), 2, ("--seeds takes comma-separated integers",)),
    Case("sweep-shots-negative", (*SCRIPTED, "--config", "{sweep}"), 2, ("key 'shots': expected integers >= 0, got -1",),
         sweep="shots = [0, -1]\n"),
    Case("shots-repeated", (*SCRIPTED, "--shots", "0,0"), 0, ("note: --shots: 0 given more than once",), rows=1),
    Case("seeds-repeated", (*SCRIPTED, "--seeds", "1,1"), 0, ("note: --seeds: 1 given more than once",), rows=1),
    Case("seed-flag-repeated", (*SCRIPTED, "--seed", "1", "--seed", "1"), 0, ("note: --seed: 1 given more than once",), rows=1),
    Case("sweep-seeds-repeated", (*SCRIPTED, "--config", "{sweep}"), 0, ("key 'seeds': 2, 5 given more than once", "running 2, 5"),
         sweep="seeds = [2, 5, 2, 5]\n", rows=1),
]


def broken_checkpoint(case: Case, folder):
    """A copy of the bundled checkpoint with the case's one file broken."""
    shutil.copytree(BUNDLED_CHECKPOINT, folder)
    config_file, weights = folder / "config.json", folder / "model.safetensors"
    config = json.loads(config_file.read_text())
    for key, value in case.config.items():
        *parents, last = key.split(".")
        table = config
        for parent in parents:
            table = table[parent]
        table[last] = value
    config_file.write_text(json.dumps(config))
    if case.damage == "config_text":
        config_file.write_text('{"model_type": "idefics",')
    elif case.damage in ("truncate", "tiny"):
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2] if case.damage == "truncate" else data[:5])
    return folder


def pretend_gpus(monkeypatch, count: int) -> None:
    """The machine has `count` CUDA devices and no MPS, whatever this one has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def exit_status() -> int:
    """`evals`' exit status, run in this process (a finished run returns without SystemExit)."""
    try:
        main()
    except SystemExit as end:
        return end.code or 0
    return 0


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_machine_input(case, tmp_path, monkeypatch, capsys):
    pretend_gpus(monkeypatch, case.gpus)
    model = broken_checkpoint(case, tmp_path / "model") if "{model}" in case.args else None
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(case.sweep)
    args = [arg.format(model=model, sweep=sweep) for arg in case.args]
    monkeypatch.setattr(sys, "argv", ["evals", *RUN, "--output-dir", str(tmp_path / "out"), *args])
    status = exit_status()
    out, err = capsys.readouterr()
    assert status == case.status, err
    assert "Traceback" not in out + err and "internal error" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for fragment in case.says:
        assert fragment in lines[0], err
    assert out.count("│ demo_classify") == case.rows, out  # no table where an error is due; each cell once


def test_rices_build_checks_its_device_too(monkeypatch, capsys, tmp_path):
    """`evals rices build --device` is checked as `evals run`'s is, before an embedder or model loads."""
    from tests.conftest import call_evals

    pretend_gpus(monkeypatch, 0)
    code, out, err = call_evals(monkeypatch, capsys, ["rices", "build", "--task", "demo_vqa", "--device", "gpu0",
                                                      "--cache-dir", str(tmp_path / "cache")])
    assert (code, out) == (2, "")
    assert "--device gpu0: not a torch device" in err and "Traceback" not in err
    assert not (tmp_path / "cache").exists()
