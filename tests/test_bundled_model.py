"""The bundled tiny IDEFICS through transformers: batch-size invariance, scoring, loading paths."""

from __future__ import annotations

import json

import pytest

from evals.errors import EvalsError
from evals.models import BUNDLED_CHECKPOINT, resolve_model
from evals.records import GenerationParams
from evals.registry import PROMPT_FORMATS, TASKS
from evals.runner import RunSettings, run
from prompts import render


def predictions(tmp_path, model, batch_size, name):
    run(model, ["demo_vqa"], RunSettings(shots=(0, 4), limit=12, batch_size=batch_size, output_dir=tmp_path / name))
    rows = {}
    for path in sorted((tmp_path / name).rglob("*.samples.jsonl")):
        for row in map(json.loads, path.read_text().splitlines()):
            rows[(path.name, row["id"])] = (row["output"], row["prediction"])
    return rows


def test_predictions_identical_for_batch_sizes_1_and_4(tmp_path, tiny_idefics):
    one = predictions(tmp_path, tiny_idefics, 1, "b1")
    four = predictions(tmp_path, tiny_idefics, 4, "b4")
    assert len(one) == 24
    assert one == four


def test_generation_is_not_constant(tmp_path, tiny_idefics):
    # A pipeline bug that fed the same input to every row would give one output for all.
    outputs = {o for o, _ in predictions(tmp_path, tiny_idefics, 4, "x").values()}
    assert len(outputs) > 3


def prompt_and_template():
    task = TASKS.get("demo_vqa")
    support = task.read(task.source(None), "train2014")
    template = PROMPT_FORMATS.get("idefics").template("vqa")
    return render(template, [(support[0], "red"), (support[1], "2")], support[2])


def test_score_ranks_like_greedy_decoding(tiny_idefics):
    prompt = prompt_and_template()
    greedy = tiny_idefics.generate([prompt], GenerationParams(max_new_tokens=1, num_beams=1))[0]
    tokenizer = tiny_idefics.tokenizer
    others = [t for t in ("red", " blue", " 2", " yes", " no") if t != greedy]
    (scores,) = tiny_idefics.score([prompt], [[greedy, *others]])
    assert len(tokenizer.encode(greedy, add_special_tokens=False)) == 1
    assert scores[0] == max(scores)
    assert all(s < 0 for s in scores)


def test_score_sums_token_log_likelihoods(tiny_idefics):
    prompt = prompt_and_template()
    (whole,) = tiny_idefics.score([prompt], [[" red circle"]])
    ids = tiny_idefics.tokenizer.encode(" red circle", add_special_tokens=False)
    assert len(ids) >= 2
    first = tiny_idefics.tokenizer.decode(ids[:1])
    (part,) = tiny_idefics.score([prompt], [[first]])
    assert part[0] > whole[0]  # a longer continuation's summed log-likelihood is lower


def test_local_folder_loads_like_the_registered_name():
    model = resolve_model(str(BUNDLED_CHECKPOINT))
    assert model.info.family == "idefics" and model.info.revision.startswith("sha256:")
    assert model.info.prompt_format == "idefics"


def test_missing_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(EvalsError, match="cannot load IDEFICS checkpoint"):
        resolve_model(str(tmp_path))
    with pytest.raises(EvalsError, match="cannot load IDEFICS checkpoint 'HuggingFaceM4/not-a-model'"):
        resolve_model("HuggingFaceM4/not-a-model")
