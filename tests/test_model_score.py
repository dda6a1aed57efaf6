"""IDEFICS candidate scoring: the prefix-reusing `score` against the one-forward-per-candidate `score_naive`."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.errors import ConfigError, DataError
from evals.models.idefics import IdeficsModel
from evals.records import GenerationParams, ImageRef, ImageSegment, Prompt, TextSegment

IMAGES = Path(__file__).resolve().parent.parent / "tasks" / "demo" / "vqa" / "train2014"
COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "black", "white", "pink", "gray")
SHAPES = ("circle", "square", "triangle", "star", "cross", "heart", "ring", "arrow", "moon", "dot")
# 100 names of 1 to ~10 tokens in the tiny tokenizer: " red" is one token, " purple moon" several.
HUNDRED = tuple(f" {c}" if s == "circle" else f" {c} {s}" for c in COLORS for s in SHAPES)
MIXED = (" red", " yes", " red circle", " dark green triangle", " golden retriever", "cat")


def image(n: int) -> ImageSegment:
    return ImageSegment(ImageRef(f"train-{n}", IMAGES / f"COCO_train2014_{n:012d}.jpg"))


def shot(n: int, answer: str) -> tuple[ImageSegment, TextSegment]:
    return image(n), TextSegment(f"Question: What color is the shape? Answer: {answer}\n")


QUERY = TextSegment("Question: What is in the image? Answer:")
ZERO_SHOT = Prompt((image(7), QUERY))
FOUR_SHOT = Prompt((*shot(0, "red"), *shot(1, "blue"), *shot(2, "green circle"), *shot(3, "no"), image(9), QUERY))
TWO_SHOT = Prompt((TextSegment("Look at these pictures.\n"), *shot(4, "yes"), *shot(5, "2"), image(11), QUERY))
TEXT_ONLY = Prompt((TextSegment("Question: Is the sky blue? Answer:"),))
PROMPTS = (ZERO_SHOT, FOUR_SHOT, TWO_SHOT, TEXT_ONLY)
CANDIDATES = (MIXED, HUNDRED, MIXED[:2], MIXED[2:])


def flat(scores: list[list[float]]) -> list[float]:
    return [s for row in scores for s in row]


def token_count(model, text: str) -> int:
    return len(model.tokenizer.encode(text, add_special_tokens=False))


def test_prompts_and_candidates_cover_the_hard_cases(tiny_idefics):
    # The comparisons below mean something only if lengths differ: prompts (left padding), images
    # per prompt (padded images), candidates of 1 and of many tokens (right padding, chunks).
    lengths = [int(n) for n in tiny_idefics.encode(PROMPTS)["attention_mask"].sum(dim=1)]
    assert len(set(lengths)) == len(PROMPTS)
    assert [len(p.images) for p in PROMPTS] == [1, 5, 3, 0]
    counts = {token_count(tiny_idefics, c) for c in MIXED + HUNDRED}
    assert 1 in counts and max(counts) >= 6
    assert len(set(HUNDRED)) == 100


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_cached_scores_equal_naive_scores(tiny_idefics, reduction):
    cached = tiny_idefics.score(PROMPTS, CANDIDATES, reduction)
    naive = tiny_idefics.score_naive(PROMPTS, CANDIDATES, reduction)
    assert [len(row) for row in cached] == [len(c) for c in CANDIDATES]
    assert flat(cached) == pytest.approx(flat(naive), abs=1e-4)
    assert all(s < 0 for s in flat(cached))


def test_best_candidate_is_the_same_for_both_paths(tiny_idefics):
    cached = tiny_idefics.score(PROMPTS, CANDIDATES)
    naive = tiny_idefics.score_naive(PROMPTS, CANDIDATES)
    for fast, slow in zip(cached, naive):
        assert fast.index(max(fast)) == slow.index(max(slow))
    # random weights still separate the candidates: the argmax is not a tie broken by position
    assert len(set(cached[1])) == 100


def test_mean_is_sum_over_candidate_tokens(tiny_idefics):
    summed = tiny_idefics.score([FOUR_SHOT], [MIXED], "sum")[0]
    mean = tiny_idefics.score([FOUR_SHOT], [MIXED], "mean")[0]
    tokens = [token_count(tiny_idefics, c) for c in MIXED]
    assert mean == pytest.approx([s / n for s, n in zip(summed, tokens)], abs=1e-6)
    assert mean[0] == pytest.approx(summed[0], abs=1e-6) and tokens[0] == 1


def test_batch_composition_does_not_change_a_score(tiny_idefics):
    alone = tiny_idefics.score([TWO_SHOT], [HUNDRED[:30]])[0]
    batched = tiny_idefics.score([FOUR_SHOT, TWO_SHOT, ZERO_SHOT], [MIXED, HUNDRED[:30], HUNDRED])[1]
    assert batched == pytest.approx(alone, abs=1e-5)


def test_small_forward_budget_gives_the_same_scores(tiny_idefics):
    # A budget below one row's tokens puts each candidate in its own forward.
    small = IdeficsModel(tiny_idefics.model, tiny_idefics.processor, tiny_idefics.info, "cpu", score_token_budget=50)
    expected = tiny_idefics.score(PROMPTS, CANDIDATES)
    assert flat(small.score(PROMPTS, CANDIDATES)) == pytest.approx(flat(expected), abs=1e-5)


def test_bad_candidates_and_reductions_are_config_errors(tiny_idefics):
    with pytest.raises(ConfigError, match="unknown log-likelihood reduction 'max'"):
        tiny_idefics.score([ZERO_SHOT], [MIXED], "max")
    with pytest.raises(ConfigError, match="candidate '' encodes to no tokens"):
        tiny_idefics.score([ZERO_SHOT], [(" red", "")])
    with pytest.raises(ConfigError, match="score_token_budget"):
        IdeficsModel(tiny_idefics.model, tiny_idefics.processor, tiny_idefics.info, "cpu", score_token_budget=0)
    with pytest.raises(ConfigError, match="2 prompts but 1 candidate lists"):
        tiny_idefics.score([ZERO_SHOT, TWO_SHOT], [MIXED])
    assert tiny_idefics.score([], []) == []


def prompt_of_length(model, tokens: int) -> Prompt:
    """A one-image prompt of exactly `tokens` tokens (" red" is one token in the tiny tokenizer)."""
    def build(words: int) -> Prompt:
        return Prompt((image(0), TextSegment("Question:" + " red" * words)))

    overhead = int(model.encode([build(0)])["attention_mask"].sum())
    prompt = build(tokens - overhead)
    assert int(model.encode([prompt])["attention_mask"].sum()) == tokens
    return prompt


def test_prompt_past_the_model_positions_is_a_data_error(tiny_idefics):
    assert tiny_idefics.model.config.max_position_embeddings == 2048
    with pytest.raises(DataError, match=r"has 2100 tokens and model 'tiny-idefics' accepts 2048"):
        tiny_idefics.score([prompt_of_length(tiny_idefics, 2100)], [[" red"]])
    near = prompt_of_length(tiny_idefics, 2046)
    with pytest.raises(DataError, match=r"has 2046 tokens plus 3 candidate tokens and model 'tiny-idefics' accepts 2048"):
        tiny_idefics.score([ZERO_SHOT, near], [[" red"], [" red", " red red red"]])
    with pytest.raises(DataError, match=r"has 2046 tokens plus 3 candidate tokens"):
        tiny_idefics.score_naive([near], [[" red red red"]])
    fits = tiny_idefics.score([near], [[" red red"]])  # exactly 2048 positions
    assert fits[0] == pytest.approx(tiny_idefics.score_naive([near], [[" red red"]])[0], abs=1e-4)


def test_generation_past_the_model_positions_is_a_data_error(tiny_idefics):
    near = prompt_of_length(tiny_idefics, 2046)
    with pytest.raises(DataError, match=r"has 2046 tokens plus 3 new tokens to generate and model 'tiny-idefics' accepts 2048"):
        tiny_idefics.generate([near], GenerationParams(max_new_tokens=3, num_beams=1))
    assert len(tiny_idefics.generate([near], GenerationParams(max_new_tokens=2, num_beams=1))) == 1
