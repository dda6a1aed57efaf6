"""Context budgets: a cell whose prompts (images' tokens counted) do not fit the model's context is refused with the
arithmetic before any model call; with --fit-context the shots farthest from the query are dropped until each fits,
and every sample records the shots requested and delivered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.errors import ConfigError
from evals.runner import RunSettings, run
from tests.test_vision_cache import twin


def limited(model, limit: int):
    """The bundled IDEFICS with a shorter context, counting its model calls."""
    small = twin(model)
    small.context_limit = lambda: limit
    small.calls = 0
    generate, score = small.generate, small.score

    def counted(method):
        def call(*args, **kwargs):
            small.calls += 1
            return method(*args, **kwargs)
        return call

    small.generate, small.score = counted(generate), counted(score)
    return small


def samples(output: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(output.rglob("*.samples.jsonl")) for line in path.read_text().splitlines()]


def test_the_bundled_model_says_its_context_and_what_an_image_costs(tiny_idefics):
    assert tiny_idefics.context_limit() == 2048  # its config's max_position_embeddings
    assert tiny_idefics.image_tokens() == 3  # <fake_token_around_image><image><fake_token_around_image>


@pytest.mark.parametrize("shots", [0, 2, 4])
def test_counted_lengths_equal_what_the_processor_writes(tiny_idefics, shots):
    """IDEFICS prompts are counted from the tokenizer alone; on every demo task's prompts the count is exact."""
    from evals.registry import PROMPT_FORMATS, TASKS
    from evals.runner import build_requests, plan_cells

    prompts = []
    for name in ("demo_vqa", "demo_caption", "demo_classify", "demo_memes", "demo_dialog", "demo_match"):
        plan = plan_cells(tiny_idefics, TASKS.get(name), PROMPT_FORMATS.get("idefics"), RunSettings(shots=(shots,), limit=4))
        if plan:
            prompts += [p for r in build_requests(plan[0].task, plan[0].template, plan[0].selector, plan[0].data, plan[0].cell)
                        for p in r.prompts]
    written = tiny_idefics.processor_inputs(prompts, tiny_idefics.blank_image)["attention_mask"].sum(dim=1).tolist()
    assert len(prompts) >= 16 and tiny_idefics.prompt_lengths(prompts) == written


def test_a_prompt_past_the_context_is_refused_with_the_arithmetic_before_any_model_call(tiny_idefics, tmp_path):
    model = limited(tiny_idefics, 60)
    with pytest.raises(ConfigError) as error:
        run(model, ["demo_vqa"], RunSettings(shots=(4,), limit=3, output_dir=tmp_path))
    message = str(error.value)
    assert message.startswith("demo_vqa 4-shot random seed 0, query ")
    assert ": 4 shots, 5 images x 3 tokens: the prompt and what follows it need " in message
    assert "but tiny-idefics reads at most 60: use fewer shots, or --fit-context" in message
    assert model.calls == 0 and not list(tmp_path.rglob("*.json*"))


@pytest.mark.parametrize(("task", "context"), [("demo_vqa", 70), ("demo_classify", 45)])  # 4-shot: 91 and 56 tokens
def test_fit_context_drops_the_shots_farthest_from_the_query(tiny_idefics, tmp_path, task, context):
    whole, fitted = tmp_path / "whole", tmp_path / "fitted"
    run(tiny_idefics, [task], RunSettings(shots=(4,), limit=3, output_dir=whole))
    model = limited(tiny_idefics, context)
    results = run(model, [task], RunSettings(shots=(4,), limit=3, output_dir=fitted, fit_context=True))
    assert results[0].protocol.context_fit == "drop_farthest_shots"
    rows, reference = samples(fitted), samples(whole)
    assert all(r["shots_requested"] == 4 for r in rows) and any(r["shots_delivered"] < 4 for r in rows)
    for row, full in zip(rows, reference, strict=True):
        assert row["shots_delivered"] == len(row["shot_ids"])
        assert tuple(row["shot_ids"]) == tuple(full["shot_ids"][4 - row["shots_delivered"]:])  # the ones nearest the query
        prompts = row["prompt"] if isinstance(row["prompt"], list) else [row["prompt"]]
        assert all(p.count("<image>") == row["shots_delivered"] + 1 for p in prompts)
    assert all(r["shots_requested"] == r["shots_delivered"] == 4 for r in reference)


def test_a_prompt_that_cannot_fit_even_without_shots_is_refused(tiny_idefics, tmp_path):
    with pytest.raises(ConfigError, match=r"reads at most 12: .* \(even with every shot dropped\)"):
        run(limited(tiny_idefics, 12), ["demo_vqa"], RunSettings(shots=(2,), limit=1, output_dir=tmp_path, fit_context=True))


def test_the_refusal_and_the_fit_are_the_same_across_batch_sizes(tiny_idefics, tmp_path):
    """Dropping is decided per query from its own prompt, so batches (and ranks) cannot change it."""
    outputs = []
    for batch in (1, 3):
        output = tmp_path / f"b{batch}"
        run(limited(tiny_idefics, 70), ["demo_vqa"], RunSettings(shots=(4,), limit=3, batch_size=batch, output_dir=output,
                                                                  fit_context=True))
        outputs.append([(r["shot_ids"], r["prediction"]) for r in samples(output)])
    assert outputs[0] == outputs[1]
