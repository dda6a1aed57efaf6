"""Ranked-task scoring speed: Idefics3 / SmolVLM (arXiv 2408.12637, 2504.05299) `score` (prompt and images once, KV
cache shared) vs `score_naive`.

ImageNet-style ranking as in Flamingo (arXiv 2204.14198), the prompt and names of benchmarks/ranking_prefix.py: one
few-shot prompt with 5 images, then 100 (and 1,000) short class names scored as continuations. Images are split as
the real checkpoints split them (each square image as 2 x 2 crops and the whole image), so the prompt is long and
mostly image tokens. The naive path runs each prompt's candidates as rows (prompt + candidate) of full forwards within
the same token budget, so it encodes the images and the prompt again for every chunk. Prints JSON: ms per candidate of
both paths, their ratio, the largest score gap and whether both pick the same best name.

The model is Idefics3 built from a config with random weights, no download, and the tiny checkpoint's tokenizer
(scripts/make_tiny_idefics3.py). "small" (default) keeps the architecture (SigLIP-style vision tower, pixel-shuffle
connector, Llama decoder with grouped key/value heads) at 256 wide and 4 decoder layers, so the forwards, not Python,
dominate as they do for SmolVLM and Idefics3-8B; "tiny" is the test fixture's config (64 wide, 2 layers).

    python benchmarks/ranking_prefix_idefics3.py [--model small|tiny] [--repeats 3] [--threads 1] [--naive-sample 1000]
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from ranking_prefix import run_benchmark, script_module, widened  # the sibling benchmark (this script's folder is on sys.path)
from transformers import Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

from evals.models.base import ModelInfo
from evals.models.idefics3 import Idefics3Model
from evals.models.options import ModelOptions

MAKE_TINY = Path(__file__).resolve().parent.parent / "scripts" / "make_tiny_idefics3.py"
SMALL_IMAGE_SIZE = 64  # the vision tower's crop side; 16 <image> tokens per crop (8 x 8 patches, pixel shuffle by 2)
SMALL = {
    "text_config": {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 8,
                    "head_dim": 32},
    "vision_config": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "image_size": SMALL_IMAGE_SIZE},
}


def load(kind: str) -> Idefics3Model:
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    tiny = script_module(MAKE_TINY)
    tokenizer = tiny.tokenizer_with_crop_tags()
    torch.manual_seed(0)
    if kind == "small":
        config, size = widened(tiny.build_config(tokenizer), SMALL), SMALL_IMAGE_SIZE
    else:
        config, size = tiny.build_config(tokenizer), tiny.IMAGE_SIZE
    seq_len = (size // config.vision_config.patch_size) ** 2 // config.scale_factor ** 2
    images = Idefics3ImageProcessor(size={"longest_edge": 2 * size}, max_image_size={"longest_edge": size}, do_image_splitting=True)
    processor = Idefics3Processor(images, tokenizer, image_seq_len=seq_len)
    model = Idefics3ForConditionalGeneration(config).eval()
    info = ModelInfo(f"benchmark-idefics3-{kind}", "idefics3", "random", "float32", "idefics3")
    return Idefics3Model(model, processor, info, "cpu", ModelOptions())


def main() -> None:
    run_benchmark("ranking_prefix_idefics3", __doc__.splitlines()[0], load,
                  lambda model, prompt: int(model.encode([prompt], [0], "")["attention_mask"].sum()))


if __name__ == "__main__":
    main()
