"""Build a tiny IDEFICS2 checkpoint (random weights, a few hundred KB) in a folder, for tests and offline trials.

A real IDEFICS2 architecture (transformers' Idefics2ForConditionalGeneration: SigLIP-style vision tower at native
resolution, perceiver resampler, Mistral decoder) at toy width. The tokenizer is the bundled tiny IDEFICS one, which
already carries <fake_token_around_image>, <image> and <end_of_utterance>; the processor gets the chat template of
the IDEFICS2 instruct checkpoints, so the chat format renders through the same template shape.

    python scripts/make_tiny_idefics2.py OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

SEED = 0
IMAGE_SIZE = 32  # the vision tower's trained size; the image processor's longest edge by default
IMAGE_SEQ_LEN = 4  # perceiver latents per image: the processor writes this many <image> tokens per image

# The shape of the chat template shipped with HuggingFaceM4/idefics2-8b and -8b-chatty: "User:" when the turn opens
# with an image ("User: " otherwise), every turn closed by "<end_of_utterance>\n", and "Assistant:" as the prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].capitalize() }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_config(tokenizer):
    from transformers import Idefics2Config

    return Idefics2Config(
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        text_config={
            "model_type": "mistral", "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
            "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": IMAGE_SIZE, "patch_size": 8},
        perceiver_config={"hidden_size": 64, "resampler_n_latents": IMAGE_SEQ_LEN, "resampler_depth": 1,
                          "resampler_n_heads": 2, "resampler_head_dim": 16, "num_key_value_heads": 1},
    )


def build(out: Path) -> Path:
    """Write config, weights, tokenizer and processor to `out` (created); returns `out`."""
    import torch
    from transformers import AutoTokenizer, Idefics2ForConditionalGeneration, Idefics2ImageProcessor, Idefics2Processor

    from evals.models import BUNDLED_CHECKPOINT

    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(str(BUNDLED_CHECKPOINT))
    model = Idefics2ForConditionalGeneration(build_config(tokenizer)).eval()
    image_processor = Idefics2ImageProcessor(size={"shortest_edge": 16, "longest_edge": IMAGE_SIZE}, do_image_splitting=False)
    processor = Idefics2Processor(image_processor, tokenizer, image_seq_len=IMAGE_SEQ_LEN, chat_template=CHAT_TEMPLATE)
    return save(out, model, processor)


def save(out: Path, model, processor) -> Path:
    """Weights, config, tokenizer and processor in `out` (created), as `from_pretrained` reads a checkpoint folder."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def command_line(build, usage: str) -> None:
    """`python SCRIPT OUT`: build the checkpoint in OUT and print where; otherwise the usage line."""
    if len(sys.argv) != 2:
        sys.exit(usage.strip().splitlines()[-1].strip())
    print(build(Path(sys.argv[1])))


if __name__ == "__main__":
    command_line(build, __doc__)
