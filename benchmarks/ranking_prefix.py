"""Ranked-task scoring speed: IDEFICS (arXiv 2306.16527) `score` (prompt once, KV cache shared) vs `score_naive`.

ImageNet-style ranking as in Flamingo (arXiv 2204.14198): one few-shot prompt with 5 images, then
100 or 1,000 short class names scored as continuations. Both paths run in this process on the same
model and prompt; prints JSON with the seconds per candidate, their ratio and the largest score gap.

The default model ("small") is IDEFICS built from a config with random weights, no download: the
bundled tiny checkpoint is so small (128 wide, 4 layers, 1.5M parameters) that Python overhead hides what a forward
costs, while IDEFICS-9B (4096 wide, 32 layers) is out of reach of a 2-core CPU. "small" keeps the
real architecture (vision tower, perceiver, gated cross-attention every 2nd layer, as in 9B every 4th)
at 256 wide and 4 layers, so the prompt's forward dominates as it does for the real model, and
the whole benchmark stays within about two minutes on 2 cores. `--model tiny` uses the bundled one.

    python benchmarks/ranking_prefix.py [--model small|tiny] [--repeats 3] [--threads 1] [--naive-sample 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers
from transformers import IdeficsConfig, IdeficsForVisionText2Text, IdeficsProcessor

from evals.models import BUNDLED_CHECKPOINT
from evals.models.base import ModelInfo
from evals.models.idefics import IdeficsModel
from evals.records import ImageRef, ImageSegment, Prompt, TextSegment

IMAGES = Path(__file__).resolve().parent.parent / "tasks" / "demo" / "vqa" / "train2014"
NOUNS = (
    "cat dog fox wolf bear lion tiger shark whale eagle owl frog snake turtle crab spider bee ant moth horse "
    "goat sheep camel zebra mouse rat bat duck goose swan robin finch trout salmon lobster snail squid seal otter beaver"
).split()
MODIFIERS = (
    "red white black grey golden spotted striped great little giant sea snow desert river tree house field "
    "water mountain tabby common king silver brown"
).split()
SHOTS = ("tabby cat", "sea turtle", "golden eagle", "red fox")


def class_names(count: int) -> list[str]:
    """`count` distinct ImageNet-like names: 40 single nouns, then two-word names ("spotted owl")."""
    names = NOUNS + [f"{m} {n}" for m in MODIFIERS for n in NOUNS]
    if count > len(names):
        raise SystemExit(f"at most {len(names)} class names")
    return names[:count]


def few_shot_prompt() -> Prompt:
    """Four labelled images and the query image, in IDEFICS's plain format for classification."""
    def image(n: int) -> ImageSegment:
        return ImageSegment(ImageRef(f"train-{n}", IMAGES / f"COCO_train2014_{n:012d}.jpg"))

    segments = []
    for n, name in enumerate(SHOTS):
        segments += [image(n), TextSegment(f"Output: This is a photo of a {name}.\n")]
    return Prompt((*segments, image(len(SHOTS)), TextSegment("Output: This is a photo of a")))


def small_config(tiny: IdeficsConfig) -> IdeficsConfig:
    """The bundled model's vocabulary and image size, with a wider and deeper decoder and vision tower."""
    return IdeficsConfig(
        vocab_size=tiny.vocab_size, additional_vocab_size=tiny.additional_vocab_size,
        hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=8, cross_layer_interval=2,
        max_position_embeddings=2048, pad_token_id=0, bos_token_id=1, eos_token_id=2, use_resampler=True,
        vision_config={
            "embed_dim": 128, "image_size": tiny.vision_config.image_size, "patch_size": 4, "intermediate_size": 512,
            "num_hidden_layers": 2, "num_attention_heads": 4,
        },
        perceiver_config={
            "use_resampler": True, "resampler_n_latents": 16, "resampler_depth": 2, "resampler_n_heads": 4,
            "resampler_head_dim": 32,
        },
        alpha_type="vector", alpha_initializer="normal", alphas_initializer_range=0.2,
    )


def load(kind: str) -> IdeficsModel:
    transformers.utils.logging.disable_progress_bar()
    processor = IdeficsProcessor.from_pretrained(str(BUNDLED_CHECKPOINT))
    if kind == "small":
        torch.manual_seed(0)
        model = IdeficsForVisionText2Text(small_config(IdeficsConfig.from_pretrained(str(BUNDLED_CHECKPOINT))))
    else:
        model = IdeficsForVisionText2Text.from_pretrained(str(BUNDLED_CHECKPOINT))
    info = ModelInfo(f"benchmark-{kind}", "idefics", "random", "float32", "idefics")
    return IdeficsModel(model.eval(), processor, info, "cpu")


def timed(function, repeats: int) -> tuple[float, list[list[float]]]:
    """The fewest seconds of `repeats` calls (the one least disturbed on a shared machine), and its result."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return min(seconds), result


def compare(model: IdeficsModel, prompt: Prompt, names: list[str], repeats: int, naive_sample: int) -> dict:
    """Both paths on one prompt; the naive one on the first `naive_sample` names only (its cost is linear)."""
    candidates = [f" {name}" for name in names]
    fast_seconds, fast = timed(lambda: model.score([prompt], [candidates]), repeats)
    sample = candidates[:naive_sample]
    naive_repeats = 1 if len(sample) > 100 else repeats
    naive_seconds, naive = timed(lambda: model.score_naive([prompt], [sample]), naive_repeats)
    fast_each, naive_each = fast_seconds / len(candidates), naive_seconds / len(sample)
    tokens = [len(model.tokenizer.encode(c, add_special_tokens=False)) for c in candidates]
    return {
        "candidates": len(candidates), "candidate_tokens_mean": round(statistics.mean(tokens), 2),
        "candidate_tokens_max": max(tokens),
        "prefix_seconds": round(fast_seconds, 4), "prefix_repeats": repeats,
        "naive_seconds": round(naive_seconds, 4), "naive_candidates_timed": len(sample), "naive_repeats": naive_repeats,
        "prefix_ms_per_candidate": round(1000 * fast_each, 3), "naive_ms_per_candidate": round(1000 * naive_each, 3),
        "speedup_per_candidate": round(naive_each / fast_each, 1),
        "max_abs_score_difference": max(abs(a - b) for a, b in zip(fast[0], naive[0])),
        "same_best_candidate": fast[0][: len(sample)].index(max(fast[0][: len(sample)])) == naive[0].index(max(naive[0])),
    }


def script_module(path: Path):
    """A script of this repository (scripts/make_tiny_*.py) as a module: the tiny checkpoints' configs, widened here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def widened(config, changes: dict[str, dict]):
    """`config` with each sub-config's fields set as `changes` says (head_dim too: decoder configs derive it once, at
    construction, so it is set, not recomputed)."""
    for part, values in changes.items():
        for key, value in values.items():
            setattr(getattr(config, part), key, value)
    return config


def run_benchmark(benchmark: str, description: str, load_model: Callable, prompt_tokens: Callable) -> None:
    """Parse the command line, time both paths at 100 and 1,000 names on `load_model(--model)` and print the JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", choices=("small", "tiny"), default="small")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per path, fastest kept (naive over >100 names: once)")
    # One thread by default: on a shared 2-core machine two OpenMP threads spin-wait on each other
    # whenever another process takes a core, which made runs 10x slower at random.
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--naive-sample", type=int, default=1000, help="names the naive path scores at 1,000 (its time is linear)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    prompt = few_shot_prompt()
    model.score([prompt], [[" cat dog"]])  # warm-up: first-call allocations and lazy imports
    runs = [compare(model, prompt, class_names(n), args.repeats, min(n, args.naive_sample)) for n in (100, 1000)]
    print(json.dumps({
        "benchmark": benchmark, "model": args.model,
        "parameters": sum(p.numel() for p in model.model.parameters()),
        "prompt_tokens": prompt_tokens(model, prompt), "prompt_images": len(prompt.images),
        "torch_threads": torch.get_num_threads(), "score_token_budget": model.score_token_budget,
        "note": "compare ms per candidate: the naive path is timed once (and on --naive-sample names) at 1,000 to keep the run short",
        "runs": runs,
    }, indent=1))


def main() -> None:
    run_benchmark("ranking_prefix", __doc__.splitlines()[0], load, lambda model, prompt: int(model.encode([prompt])["attention_mask"].sum()))


if __name__ == "__main__":
    main()
