"""Build tiny random checkpoints (a few hundred KB each) of architectures the generic family runs, for tests and
offline trials: Gemma 3 and LLaVA-NeXT, whose processors need no torchvision.

Each is transformers' own architecture (Gemma3ForConditionalGeneration: SigLIP tower, pooled to a fixed number of
soft tokens per image, Gemma 3 decoder with sliding-window layers; LlavaNextForConditionalGeneration: CLIP tower,
"anyres" tiling of each image, Mistral decoder) at toy width. The tokenizer is the bundled tiny IDEFICS one with the
architecture's special tokens added; each processor gets a chat template of the shape its real checkpoints ship
(google/gemma-3-*-it; llava-hf/llava-v1.6-mistral-7b-hf), since the generic family renders prompts through it.

    python scripts/make_tiny_generic.py OUT          # writes OUT/gemma3 and OUT/llava_next
"""

from __future__ import annotations

import sys
from pathlib import Path

SEED = 0
IMAGE_SIZE = 32  # each vision tower's input side
GEMMA3_TOKENS_PER_IMAGE = 4  # soft tokens per image (real Gemma 3: 256)

# google/gemma-3-*-it: BOS, then "<start_of_turn>{user|model}\n" + items (an image as <start_of_image>, text trimmed)
# + "<end_of_turn>\n" per message; the generation prompt opens a model turn.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n' }}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<start_of_image>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}{% endfor %}"
    "{{ '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

# llava-hf/llava-v1.6-mistral-7b-hf: "[INST] " + items (an image as "<image>\n") + " [/INST]" for a user message, the
# assistant's text after a space and closed by EOS; no BOS in the template (the tokenizer adds it).
LLAVA_NEXT_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{{ ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + eos_token }}{% endif %}"
    "{% endfor %}"
)

GEMMA3_TOKENS = {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"}


def text_config(tokenizer, model_type: str, **extra) -> dict:
    return {"model_type": model_type, "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
            "max_position_embeddings": 2048, "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, **extra}


def vision_config(model_type: str) -> dict:
    return {"model_type": model_type, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "image_size": IMAGE_SIZE, "patch_size": 8}


def base_tokenizer(extra_tokens: dict[str, str] | None = None, added: tuple[str, ...] = ()):
    from transformers import AutoTokenizer

    from evals.models import BUNDLED_CHECKPOINT

    tokenizer = AutoTokenizer.from_pretrained(str(BUNDLED_CHECKPOINT), extra_special_tokens=extra_tokens or {})
    tokenizer.add_special_tokens({"additional_special_tokens": [*(extra_tokens or {}).values(), *added]})
    return tokenizer


def build_gemma3(out: Path) -> Path:
    """Gemma 3: a fixed number of soft tokens per image (no splitting: pan-and-scan off), sliding-window layers."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor

    tokenizer = base_tokenizer(GEMMA3_TOKENS, ("<start_of_turn>", "<end_of_turn>"))
    config = Gemma3Config(
        text_config=text_config(tokenizer, "gemma3_text", sliding_window=64, query_pre_attn_scalar=16,
                                layer_types=["sliding_attention", "full_attention"]),
        vision_config=vision_config("siglip_vision_model"), mm_tokens_per_image=GEMMA3_TOKENS_PER_IMAGE,
        boi_token_index=tokenizer.convert_tokens_to_ids(GEMMA3_TOKENS["boi_token"]),
        eoi_token_index=tokenizer.convert_tokens_to_ids(GEMMA3_TOKENS["eoi_token"]),
        image_token_index=tokenizer.convert_tokens_to_ids(GEMMA3_TOKENS["image_token"]),
    )
    image_processor = Gemma3ImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = Gemma3Processor(image_processor, tokenizer, chat_template=GEMMA3_CHAT_TEMPLATE,
                                image_seq_length=GEMMA3_TOKENS_PER_IMAGE)
    return save(Gemma3ForConditionalGeneration(config), processor, out)


def build_llava_next(out: Path) -> Path:
    """LLaVA-NeXT: each image as a base view plus "anyres" tiles (grids up to 2 x 2 tiles of IMAGE_SIZE)."""
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextImageProcessor, LlavaNextProcessor

    tokenizer = base_tokenizer()
    grids = [[IMAGE_SIZE, IMAGE_SIZE], [IMAGE_SIZE, 2 * IMAGE_SIZE], [2 * IMAGE_SIZE, IMAGE_SIZE], [2 * IMAGE_SIZE, 2 * IMAGE_SIZE]]
    config = LlavaNextConfig(
        text_config=text_config(tokenizer, "mistral"), vision_config=vision_config("clip_vision_model"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_grid_pinpoints=grids,
        vision_feature_layer=-1, projector_hidden_act="gelu",
    )
    image_processor = LlavaNextImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                                              image_grid_pinpoints=grids)
    processor = LlavaNextProcessor(image_processor, tokenizer, patch_size=8, vision_feature_select_strategy="default",
                                   num_additional_image_tokens=1,
                                   chat_template=LLAVA_NEXT_CHAT_TEMPLATE, image_token="<image>")
    return save(LlavaNextForConditionalGeneration(config), processor, out)


def save(model, processor, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(out)
    processor.save_pretrained(out)
    return out


BUILDERS = {"gemma3": build_gemma3, "llava_next": build_llava_next}


def build(out: Path, names: tuple[str, ...] = tuple(BUILDERS)) -> dict[str, Path]:
    """Write each named checkpoint to `out/<name>`; returns the folders by name."""
    import torch

    folders = {}
    for name in names:
        torch.manual_seed(SEED)
        folders[name] = BUILDERS[name](out / name)
    return folders


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    for folder in build(Path(sys.argv[1])).values():
        print(folder)
