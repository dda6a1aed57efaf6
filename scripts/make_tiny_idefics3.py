"""Build a tiny Idefics3 checkpoint (random weights, a few hundred KB) in a folder, for tests and offline trials.

A real Idefics3 architecture (transformers' Idefics3ForConditionalGeneration, as in Idefics3-8B-Llama3 and the
SmolVLM checkpoints: SigLIP-style vision tower, pixel-shuffle connector, Llama decoder) at toy width. The tokenizer is
the bundled tiny IDEFICS one with the tokens Idefics3's processor writes around an image (<global-img>, <row_i_col_j>)
added; the processor splits images as the real checkpoints do (longest edge resized to twice the vision tower's size,
cut into crops of the tower's size) and gets the chat template shape of Idefics3 and SmolVLM instruct checkpoints.

    python scripts/make_tiny_idefics3.py OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, also when a test loads this file by path
from make_tiny_idefics2 import command_line, save

SEED = 0
IMAGE_SIZE = 32  # the vision tower's size: each crop's side
LONGEST_EDGE = 2 * IMAGE_SIZE  # images are resized to this longest side before splitting (at most 2 x 2 crops)
PATCH_SIZE = 8
SCALE_FACTOR = 2  # pixel shuffle: (32 / 8)^2 patches / 2^2 = 4 <image> tokens per crop
IMAGE_SEQ_LEN = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR ** 2
CROP_TAGS = ["<global-img>"] + [f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)]

# The shape of the chat template shipped with HuggingFaceM4/Idefics3-8B-Llama3 and the SmolVLM instruct checkpoints:
# the tokenizer's BOS text first (<|begin_of_text|>, <|im_start|>), then IDEFICS2's turns ("User:" when the turn opens
# with an image, "User: " otherwise, each closed by "<end_of_utterance>\n", "Assistant:" as the generation prompt).
TURNS = (
    "{% for message in messages %}{{ message['role'].capitalize() }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def tokenizer_with_crop_tags():
    from transformers import AutoTokenizer

    from evals.models import BUNDLED_CHECKPOINT

    tokenizer = AutoTokenizer.from_pretrained(str(BUNDLED_CHECKPOINT))
    tokenizer.add_special_tokens({"additional_special_tokens": CROP_TAGS}, replace_extra_special_tokens=False)
    return tokenizer


def build_config(tokenizer):
    from transformers import Idefics3Config

    return Idefics3Config(
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), scale_factor=SCALE_FACTOR,
        pad_token_id=tokenizer.pad_token_id,
        text_config={
            "model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
            "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE},
    )


def build(out: Path) -> Path:
    """Write config, weights, tokenizer and processor to `out` (created); returns `out`."""
    import torch
    from transformers import Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    torch.manual_seed(SEED)
    tokenizer = tokenizer_with_crop_tags()
    model = Idefics3ForConditionalGeneration(build_config(tokenizer)).eval()
    image_processor = Idefics3ImageProcessor(size={"longest_edge": LONGEST_EDGE}, max_image_size={"longest_edge": IMAGE_SIZE},
                                             do_image_splitting=True)
    processor = Idefics3Processor(image_processor, tokenizer, image_seq_len=IMAGE_SEQ_LEN,
                                  chat_template=tokenizer.bos_token + TURNS)
    return save(out, model, processor)


if __name__ == "__main__":
    command_line(build, __doc__)
