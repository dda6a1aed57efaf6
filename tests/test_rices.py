"""RICES: faiss top-k equals brute force, ordering, self-exclusion, the feature cache, run invariance."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from evals.embedders import PixelEmbedder, l2_normalize
from evals.features import FeatureCacheWarning, cache_key, cache_path, load_or_build
from evals.models import ScriptedModel
from evals.records import Example, ImageRef
from evals.registry import TASKS
from evals.rices import RicesSelector
from evals.runner import RunSettings, run
from evals.selection import RicesOptions


def examples(prefix: str, n: int) -> list[Example]:
    return [Example(f"{prefix}{i}", (ImageRef(f"{prefix}img{i}", Path("unused.jpg")),), {}) for i in range(n)]


def random_selector(n_support=1000, n_queries=40, dim=32, **options):
    rng = np.random.default_rng(0)
    support = l2_normalize(rng.normal(size=(n_support, dim)))
    queries = examples("q", n_queries)
    vectors = dict(zip([q.id for q in queries], l2_normalize(rng.normal(size=(n_queries, dim)))))
    selector = RicesSelector([f"s{i}" for i in range(n_support)], support, vectors, RicesOptions(**options))
    return selector, support, queries, vectors


def test_faiss_topk_equals_brute_force_cosine():
    selector, support, queries, vectors = random_selector(order="descending")
    choices = selector.select_many(queries, 8, seed=0)
    for query, choice in zip(queries, choices):
        similarities = support @ vectors[query.id]
        expected = [f"s{i}" for i in np.argsort(-similarities)[:8]]
        assert list(choice.ids) == expected
        assert choice.similarities == pytest.approx(sorted(similarities[np.argsort(-similarities)[:8]], reverse=True), abs=1e-5)


def test_ascending_order_puts_the_most_similar_shot_last():
    ascending, *_ = random_selector()
    descending, _, queries, _ = random_selector(order="descending")
    for up, down in zip(ascending.select_many(queries, 5, 0), descending.select_many(queries, 5, 0)):
        assert list(up.ids) == list(reversed(down.ids))
        assert list(up.similarities) == sorted(up.similarities)


def test_query_never_retrieves_itself():
    rng = np.random.default_rng(1)
    support = examples("s", 50)
    matrix = l2_normalize(rng.normal(size=(50, 16)))
    selector = RicesSelector([e.id for e in support], matrix, dict(zip([e.id for e in support], matrix)))
    for query, choice in zip(support, selector.select_many(support, 4, 0)):
        assert query.id not in choice.ids and len(choice.ids) == 4


def test_dedup_images_and_ivf_index():
    rng = np.random.default_rng(2)
    base = l2_normalize(rng.normal(size=(300, 16)))
    matrix = np.repeat(base, 3, axis=0)  # every image shown by three examples, as VQA questions are
    ids = [f"s{i}" for i in range(900)]
    images = [f"img{i // 3}" for i in range(900)]
    queries = examples("q", 10)
    vectors = dict(zip([q.id for q in queries], l2_normalize(rng.normal(size=(10, 16)))))
    dedup = RicesSelector(ids, matrix, vectors, RicesOptions(dedup_images=True), support_images=images)
    for choice in dedup.select_many(queries, 6, 0):
        assert len({images[ids.index(i)] for i in choice.ids}) == 6
    ivf = RicesSelector(ids, matrix, vectors, RicesOptions(index="ivf"))
    assert all(len(set(c.ids)) == 6 for c in ivf.select_many(queries, 6, 0))


class CountingEmbedder(PixelEmbedder):
    def __init__(self):
        self.calls = 0

    def embed(self, images, on_batch=None):
        self.calls += 1
        return super().embed(images, on_batch)


def demo_split(split):
    task = TASKS.get("demo_vqa")
    return task.read(task.source(None), split)[:30]


def test_second_load_reuses_the_cache(tmp_path):
    embedder, support = CountingEmbedder(), demo_split("train2014")
    first = load_or_build(embedder, "demo_vqa", "train2014", support, "fp1", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean hit warns about nothing
        second = load_or_build(embedder, "demo_vqa", "train2014", support, "fp1", tmp_path)
    assert embedder.calls == 1
    np.testing.assert_array_equal(first.matrix, second.matrix)
    assert first.fingerprint == second.fingerprint


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path):
    embedder, support = CountingEmbedder(), demo_split("train2014")
    table = load_or_build(embedder, "demo_vqa", "train2014", support, "fp1", tmp_path)
    table.path.write_bytes(b"\x00garbage")
    with pytest.warns(FeatureCacheWarning, match="unreadable"):
        rebuilt = load_or_build(embedder, "demo_vqa", "train2014", support, "fp1", tmp_path)
    assert embedder.calls == 2
    np.testing.assert_array_equal(table.matrix, rebuilt.matrix)


def test_mismatched_cache_is_rebuilt_with_a_warning(tmp_path):
    from safetensors.numpy import save_file

    embedder, support = CountingEmbedder(), demo_split("train2014")
    key = cache_key(embedder, "demo_vqa", "train2014", "fp1", len(support))
    path = cache_path(tmp_path, key)
    path.parent.mkdir(parents=True)
    stale_ids = json.dumps([e.id for e in reversed(support)])  # same key, rows of another order
    save_file({"features": np.zeros((len(support), 192), np.float32)}, str(path), metadata={**key, "ids": stale_ids})
    with pytest.warns(FeatureCacheWarning, match="ids differ"):
        table = load_or_build(embedder, "demo_vqa", "train2014", support, "fp1", tmp_path)
    assert embedder.calls == 1 and np.abs(table.matrix).sum() > 0


def shot_ids(output_dir: Path, selection: str, shots: int) -> dict[str, list[str]]:
    (path,) = output_dir.glob(f"*/demo_vqa/{selection}-{shots}shot-seed0.samples.jsonl")
    return {row["id"]: row["shot_ids"] for row in map(json.loads, path.read_text().splitlines())}


def test_rices_shots_differ_from_random_and_ignore_batching(tmp_path, monkeypatch):
    rices = RicesOptions(embedder="offline", cache_dir=tmp_path / "cache")
    settings = RunSettings(shots=(4,), selections=("random", "rices"), limit=40, rices=rices)
    run(ScriptedModel(), ["demo_vqa"], replace(settings, batch_size=1, output_dir=tmp_path / "a"))
    task = TASKS.get("demo_vqa")
    reordered = replace(task, load=lambda root, split: list(reversed(task.load(root, split))))
    monkeypatch.setitem(TASKS._entries, "demo_vqa", reordered)
    run(ScriptedModel(), ["demo_vqa"], replace(settings, batch_size=7, limit=None, output_dir=tmp_path / "b"))
    a_rices, a_random = shot_ids(tmp_path / "a", "rices", 4), shot_ids(tmp_path / "a", "random", 4)
    b_rices = shot_ids(tmp_path / "b", "rices", 4)
    assert a_rices != a_random
    assert all(b_rices[q] == ids for q, ids in a_rices.items())  # other batch size, order and query subset


def test_zero_shot_rices_uses_retrieved_text_only_shots(tmp_path):
    rices = RicesOptions(embedder="offline", cache_dir=tmp_path / "cache", order="descending")
    run(ScriptedModel(), ["demo_vqa"], RunSettings(shots=(0, 2), selections=("rices",), limit=10, rices=rices,
                                                   output_dir=tmp_path / "out"))
    zero, two = shot_ids(tmp_path / "out", "rices", 0), shot_ids(tmp_path / "out", "rices", 2)
    assert zero == two  # the same two retrieved examples; zero-shot just drops their images
    (path,) = (tmp_path / "out").glob("*/demo_vqa/rices-0shot-seed0.samples.jsonl")
    row = json.loads(path.read_text().splitlines()[0])
    assert row["prompt"].count("<image>") == 1 and len(row["shot_similarities"]) == 2


def tiny_clip(folder: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    config = CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "vocab_size": 100, "max_position_embeddings": 16},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=12,
    )
    import torch

    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_clip_checkpoint_from_a_local_folder(tmp_path):
    clip = tiny_clip(tmp_path / "clip")
    rices = RicesOptions(embedder=str(clip), cache_dir=tmp_path / "cache")
    (result,) = run(ScriptedModel(), ["demo_vqa"], RunSettings(shots=(4,), selections=("rices",), limit=12,
                                                               rices=rices, output_dir=tmp_path / "out"))
    details = result.protocol.selection_details
    assert details["embedder"].startswith(f"clip:{clip}@") and details["support_cache"].startswith("sha256:")
    assert all(len(ids) == 4 for ids in shot_ids(tmp_path / "out", "rices", 4).values())


def test_vision_tower_embedder(tmp_path, tiny_idefics):
    rices = RicesOptions(embedder="vision-tower", cache_dir=tmp_path / "cache")
    (result,) = run(tiny_idefics, ["demo_vqa"], RunSettings(shots=(2,), selections=("rices",), limit=4,
                                                            rices=rices, output_dir=tmp_path / "out"))
    assert result.protocol.selection_details["embedder"].startswith("vision-tower:tiny-idefics@")


def test_second_run_calls_no_embedder(tmp_path, monkeypatch):
    from evals.registry import EMBEDDERS

    counting = CountingEmbedder()
    monkeypatch.setitem(EMBEDDERS._entries, "offline", lambda model, device: counting)
    settings = RunSettings(shots=(2, 4), seeds=(0, 1), selections=("rices",), limit=10,
                           rices=RicesOptions(embedder="offline", cache_dir=tmp_path / "cache"))
    run(ScriptedModel(), ["demo_vqa"], replace(settings, output_dir=tmp_path / "first"))
    assert counting.calls == 2  # support and queries, once for all four cells
    run(ScriptedModel(), ["demo_vqa"], replace(settings, output_dir=tmp_path / "second"))
    assert counting.calls == 2
