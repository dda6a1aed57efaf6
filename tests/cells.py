"""Hand-made cell records (results.schema dataclasses written as JSON) for the leaderboard and gate tests."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from results.schema import CellResult, Protocol

HEADLINES = {"demo_vqa": "vqa_accuracy", "demo_caption": "CIDEr"}
TASK_PROTOCOL = {  # what differs between the two tasks' protocols
    "demo_vqa": {},
    "demo_caption": {"support_split": "train", "query_split": "test", "template": "caption", "template_hash": "c0ffee123456",
                     "metric": "score_captions", "postprocess": "postprocess_caption"},
}

BASE = Protocol(
    model="tiny-idefics", model_family="idefics", model_revision="sha256:aaaa", dtype="float32", task="demo_vqa",
    support_split="train2014", query_split="val2014", support_fingerprint="sha256:s1", query_fingerprint="sha256:q1",
    n_queries=20, shots=0, selection="random", selection_details={}, seed=0, zero_shot="2 text-only shots",
    prompt_format="idefics", template="vqa", template_hash="a34fa499d5b9", kind="generate",
    generation={"max_new_tokens": 10, "num_beams": 3, "length_penalty": 0.0, "stop_sequences": ["\n"]},
    loglik="n/a", candidate_text="n/a", metric="score_vqa", postprocess="postprocess_vqa",
    versions={"python": "3.11.7", "evals": "0.1.0"},
)


def cell(task: str = "demo_vqa", shots: int = 0, seed: int = 0, score: float = 50.0, selection: str = "random",
         scores: dict[str, float] | None = None, **protocol) -> CellResult:
    """A record whose headline metric is `score` (or whose scores are `scores`); `protocol` overrides fields."""
    fields = {"task": task, "shots": shots, "seed": seed, "selection": selection, **TASK_PROTOCOL[task], **protocol}
    return CellResult(task=task, shots=shots, selection=selection, seed=seed,
                      scores=scores if scores is not None else {HEADLINES[task]: score}, breakdowns={},
                      protocol=replace(BASE, **fields), timing={"wall_seconds": 1.0})


def write(folder: Path, result: CellResult, name: str | None = None, **extra) -> Path:
    """Write `result` as its JSON record under `folder` (`extra`: fields a newer writer may add)."""
    stem = name or f"{result.protocol.model}/{result.task}/{result.selection}-{result.shots}shot-seed{result.seed}"
    path = folder / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result.to_dict(), **extra}, indent=1) + "\n")
    return path
