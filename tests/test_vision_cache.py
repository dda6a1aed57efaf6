"""IDEFICS image-feature cache: identical predictions and scores with and without it, hit counts, LRU bounds."""

from __future__ import annotations

import pytest
import torch

from evals.errors import ConfigError
from evals.models.idefics import IdeficsModel
from evals.models.vision_cache import FeatureCache, cache_from_settings
from evals.records import GenerationParams, Prompt, TextSegment
from evals.registry import PROMPT_FORMATS, TASKS
from prompts import render

ANSWERS = ("red", "2", "yes", "blue")
CANDIDATES = (" red", " yes", " red circle", " two dogs", "cat")


def few_shot_prompts(queries: int = 4):
    """`queries` 4-shot demo VQA prompts that share the same four support images and differ in their query image."""
    task = TASKS.get("demo_vqa")
    # the demo asks three questions about each image: every third example shows a new one
    one_per_image = task.read(task.source(None), "train2014")[::3]
    template = PROMPT_FORMATS.get("idefics").template("vqa")
    shots = list(zip(one_per_image[:4], ANSWERS))
    return [render(template, shots, query) for query in one_per_image[4 : 4 + queries]]


def twin(model: IdeficsModel, **cache) -> IdeficsModel:
    """The same weights and processor behind a differently configured feature cache."""
    return IdeficsModel(model.model, model.processor, model.info, model.device, **cache)


def test_generate_identical_with_and_without_cache_and_shared_images_hit(tiny_idefics):
    prompts = few_shot_prompts()
    assert all(len(p.images) == 5 for p in prompts) and len({i for p in prompts for i in p.images}) == 8
    cached, plain = twin(tiny_idefics, feature_cache=True), twin(tiny_idefics, feature_cache=False)
    params = GenerationParams(max_new_tokens=6, num_beams=3)
    expected = plain.generate(prompts, params)
    assert cached.generate(prompts[:2], params) + cached.generate(prompts[2:], params) == expected
    stats = cached.feature_cache.stats()
    # 20 images shown, 8 distinct (4 shared shots, 4 queries): each encoded once.
    assert (stats.misses, stats.hits, stats.entries) == (8, 12, 8)
    assert plain.feature_cache is None


def test_score_matches_uncached_and_naive_to_float32_rounding(tiny_idefics):
    """Log-likelihoods of tens of nats carry float32 rounding of about 1e-6 relative between batch shapes."""
    prompts = few_shot_prompts(3)
    cached, plain = twin(tiny_idefics, feature_cache=True), twin(tiny_idefics, feature_cache=False)
    candidates = [CANDIDATES] * len(prompts)
    with_cache = [s for row in cached.score(prompts, candidates) for s in row]
    references = [[s for row in scores for s in row] for scores in (plain.score(prompts, candidates), cached.score_naive(prompts, candidates))]
    for reference in references:
        assert with_cache == pytest.approx(reference, rel=1e-6, abs=1e-5)
    assert len(set(with_cache)) > 5  # scores tell candidates apart: the comparison is not between constants
    # score_naive (the reference) never touches the cache: 7 distinct images of 15 shown, all from score.
    assert (cached.feature_cache.stats().misses, cached.feature_cache.stats().hits) == (7, 8)


def test_text_only_and_mixed_image_counts_match_uncached(tiny_idefics):
    task = TASKS.get("demo_vqa")
    support = task.read(task.source(None), "train2014")
    one_shot = render(PROMPT_FORMATS.get("idefics").template("vqa"), [(support[0], "red")], support[5])
    text_only = Prompt((TextSegment("Question: Is the sky blue? Answer:"),))
    params = GenerationParams(max_new_tokens=5, num_beams=1)
    # padded image slots (1 and 5 images in one batch) and a batch with no image at all
    for prompts in ([few_shot_prompts(1)[0], one_shot, text_only], [text_only]):
        cached = twin(tiny_idefics, feature_cache=True).generate(prompts, params)
        assert cached == twin(tiny_idefics, feature_cache=False).generate(prompts, params)


def test_bounded_cache_evicts_and_predictions_stay_identical(tiny_idefics):
    prompts = few_shot_prompts()
    latents, width = tiny_idefics.feature_shape()
    one_image = latents * width * 4  # tokens x vision width, float32
    small = twin(tiny_idefics, feature_cache=True, feature_cache_bytes=2 * one_image)
    params = GenerationParams(max_new_tokens=6, num_beams=1)
    assert small.generate(prompts, params) == twin(tiny_idefics, feature_cache=False).generate(prompts, params)
    stats = small.feature_cache.stats()
    assert (stats.entries, stats.bytes) == (2, 2 * one_image)
    assert stats.evictions > 0


def tensor(values: int):
    return torch.zeros(values, dtype=torch.float32)


def test_lru_order_and_byte_bound():
    cache = FeatureCache(max_bytes=3 * 16)  # three 4-float tensors
    for key in "abc":
        cache.put(key, tensor(4))
    assert cache.get("a") is not None  # a becomes most recent: b is next to go
    cache.put("d", tensor(4))
    assert cache.get("b") is None
    assert [k for k in "acd" if cache.get(k) is not None] == ["a", "c", "d"]
    cache.put("huge", tensor(100))  # larger than the whole cache: kept out, nothing evicted for it
    assert cache.stats() == cache.stats().__class__(hits=4, misses=1, evictions=1, entries=3, bytes=48)


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("EVALS_FEATURE_CACHE", "off")
    assert cache_from_settings(None, None) is None
    assert cache_from_settings(True, None) is not None
    monkeypatch.delenv("EVALS_FEATURE_CACHE")
    monkeypatch.setenv("EVALS_FEATURE_CACHE_MB", "2")
    assert cache_from_settings(None, None).max_bytes == 2 * 2**20
    monkeypatch.delenv("EVALS_FEATURE_CACHE_MB")
    assert cache_from_settings(None, None).max_bytes == 2**30
    monkeypatch.setenv("EVALS_FEATURE_CACHE_MB", "lots")
    with pytest.raises(ConfigError, match="EVALS_FEATURE_CACHE_MB"):
        cache_from_settings(None, None)
    with pytest.raises(ConfigError, match="positive"):
        FeatureCache(0)
