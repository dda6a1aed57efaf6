"""Ranked-task scoring speed: IDEFICS2 (arXiv 2405.02246) `score` (prompt and images once, KV cache shared) vs `score_naive`.

ImageNet-style ranking as in Flamingo (arXiv 2204.14198), the prompt and names of benchmarks/ranking_prefix.py: one
few-shot prompt with 5 images, then 100 (and 1,000) short class names scored as continuations. The naive path runs
each prompt's candidates as rows (prompt + candidate) of full forwards within the same token budget, so it encodes
the images and the prompt again for every chunk. Prints JSON: ms per candidate of both paths, their ratio, the
largest score gap and whether both pick the same best name.

The model is IDEFICS2 built from a config with random weights, no download, and the bundled tiny IDEFICS tokenizer.
"small" (default) keeps the architecture (SigLIP-style vision tower, perceiver resampler, Mistral decoder with grouped
key/value heads) at 256 wide and 4 decoder layers, so the forwards, not Python, dominate as they do for the 8B model;
"tiny" is the test fixture's config (scripts/make_tiny_idefics2.py, 64 wide, 2 layers).

    python benchmarks/ranking_prefix_idefics2.py [--model small|tiny] [--repeats 3] [--threads 1] [--naive-sample 1000]
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from ranking_prefix import run_benchmark, script_module, widened  # the sibling benchmark (this script's folder is on sys.path)
from transformers import AutoTokenizer, Idefics2ForConditionalGeneration, Idefics2ImageProcessor, Idefics2Processor

from evals.models import BUNDLED_CHECKPOINT
from evals.models.base import ModelInfo
from evals.models.idefics2 import Idefics2Model
from evals.models.options import ModelOptions

MAKE_TINY = Path(__file__).resolve().parent.parent / "scripts" / "make_tiny_idefics2.py"
SMALL_IMAGE_SIZE = 64
SMALL_LATENTS = 16  # <image> tokens per image, as the processor writes them
SMALL = {
    "text_config": {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 8,
                    "head_dim": 32},
    "vision_config": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "image_size": SMALL_IMAGE_SIZE},
    "perceiver_config": {"hidden_size": 256, "resampler_n_latents": SMALL_LATENTS, "resampler_depth": 2, "resampler_n_heads": 4,
                         "resampler_head_dim": 32, "num_key_value_heads": 2},
}


def load(kind: str) -> Idefics2Model:
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(str(BUNDLED_CHECKPOINT))
    torch.manual_seed(0)
    tiny = script_module(MAKE_TINY)
    if kind == "small":
        config, size, latents = widened(tiny.build_config(tokenizer), SMALL), SMALL_IMAGE_SIZE, SMALL_LATENTS
    else:
        config, size, latents = tiny.build_config(tokenizer), tiny.IMAGE_SIZE, tiny.IMAGE_SEQ_LEN
    images = Idefics2ImageProcessor(size={"shortest_edge": size // 2, "longest_edge": size}, do_image_splitting=False)
    processor = Idefics2Processor(images, tokenizer, image_seq_len=latents)
    model = Idefics2ForConditionalGeneration(config).eval()
    info = ModelInfo(f"benchmark-idefics2-{kind}", "idefics2", "random", "float32", "idefics2")
    return Idefics2Model(model, processor, info, "cpu", ModelOptions())


def main() -> None:
    run_benchmark("ranking_prefix_idefics2", __doc__.splitlines()[0], load,
                  lambda model, prompt: int(model.encode([prompt], [0], "")["attention_mask"].sum()))


if __name__ == "__main__":
    main()
