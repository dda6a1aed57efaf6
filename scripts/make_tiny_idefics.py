"""Regenerate the tiny IDEFICS checkpoint bundled in evals/models/tiny_idefics.

A real IDEFICS architecture (transformers' IdeficsForVisionText2Text: CLIP-style vision tower,
perceiver resampler, gated cross-attention into a Llama-style decoder) at toy width, with a
byte-level BPE tokenizer that carries IDEFICS's special tokens. Weights are random but seeded;
the tokenizer is trained on the demo data and prompt templates. Run twice, it writes identical files.

    python scripts/make_tiny_idefics.py [OUT]   # writes evals/models/tiny_idefics (or OUT)
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    IdeficsConfig,
    IdeficsForVisionText2Text,
    IdeficsImageProcessorPil,
    IdeficsProcessor,
    PreTrainedTokenizerFast,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "evals" / "models" / "tiny_idefics"
SEED = 0
IMAGE_SIZE = 32
SPECIAL = ["<unk>", "<s>", "</s>"]
IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>"]
BASE_VOCAB = 512


# The words of the prompt formats (kept here, not read from prompts/templates, so that editing a
# template never changes the tokenizer).
FORMAT_WORDS = [
    "Question: Short answer: Answer: Caption: Output: User: Assistant: Image: Description of the image:",
    "Instruction: provide an answer to the question. Use the image to answer.",
    "<|endofchunk|> <end_of_utterance> a photo of a Sentiment: positive negative Is it hateful? yes no",
]


def training_corpus() -> list[str]:
    """Demo VQA questions and answers plus the prompt formats' words: what the tiny model will read.

    Only the VQA demo set is read, so that adding other demo sets does not change the shipped tokenizer.
    """
    lines = []
    for path in sorted((ROOT / "tasks" / "demo" / "vqa").rglob("*.json")):
        payload = json.loads(path.read_text())
        for q in payload.get("questions", []):
            lines.append(q["question"])
        for a in payload.get("annotations", []):
            lines.extend(ans["answer"] for ans in a["answers"])
    return lines + FORMAT_WORDS


def build_tokenizer() -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BASE_VOCAB,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(training_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<unk>",
        padding_side="left", model_max_length=2048,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": IMAGE_TOKENS})
    return tokenizer


def build_config(base_vocab: int) -> IdeficsConfig:
    return IdeficsConfig(
        vocab_size=base_vocab,
        additional_vocab_size=len(IMAGE_TOKENS),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=2048,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        use_resampler=True,
        vision_config={
            "embed_dim": 32, "image_size": IMAGE_SIZE, "patch_size": 8, "intermediate_size": 64,
            "num_hidden_layers": 1, "num_attention_heads": 2,
        },
        perceiver_config={
            "use_resampler": True, "resampler_n_latents": 4, "resampler_depth": 1,
            "resampler_n_heads": 2, "resampler_head_dim": 16,
        },
        alpha_type="vector",  # the "float" + "normal" init path of transformers fails on a scalar size
        alpha_initializer="normal",
        alphas_initializer_range=0.2,
    )


def main(out: Path = OUT) -> None:
    torch.manual_seed(SEED)
    tokenizer = build_tokenizer()
    base_vocab = len(tokenizer) - len(IMAGE_TOKENS)
    model = IdeficsForVisionText2Text(build_config(base_vocab)).eval()
    processor = IdeficsProcessor(IdeficsImageProcessorPil(image_size=IMAGE_SIZE), tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(tmp, out, copy_function=shutil.copyfile)
    out.chmod(0o755)  # tempfile makes a private folder; package data must be world-readable
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters()):,} parameters")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
