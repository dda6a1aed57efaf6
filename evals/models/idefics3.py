"""Idefics3 (Laurençon et al. 2024, arXiv 2408.12637) and SmolVLM (Marafioti et al. 2025, arXiv 2504.05299) through
transformers' Idefics3ForConditionalGeneration (SmolVLM2, model_type smolvlm: SmolVLMForConditionalGeneration).

The same mechanics as IDEFICS2 (evals/models/idefics2.py: left-padded batches, prefix-reusing `score`, stop strings),
with Idefics3's image handling: an image is resized to `longest_edge` and, with `do_image_splitting`, cut into crops
of the vision tower's size, each written as <fake_token_around_image><row_i_col_j><image>..., then the whole image as
<fake_token_around_image><global-img><image>...<fake_token_around_image>. The chat template writes IDEFICS2's turns
after an opening token (the tokenizer's BOS text, <|begin_of_text|> or <|im_start|>): the `idefics3-chat` prompt is
the turns, and the model puts the checkpoint's own opening in front of it, encoded as `apply_chat_template` does.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from evals.errors import ConfigError
from evals.models.base import ModelInfo
from evals.models.families import checkpoint_config
from evals.models.idefics2 import Idefics2Model, image_token_count
from evals.models.options import ModelOptions
from evals.models.scoring_common import SCORE_TOKEN_BUDGET
from evals.records import Prompt
from evals.registry import PROMPT_FORMATS

CHAT_FORMAT = "idefics3-chat"
# Besides <image> and <fake_token_around_image> (scoring_common.BANNED_TOKENS): never a generated answer's text.
IMAGE_TAGS = ("<global-img>",) + tuple(f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7))
SMOLVLM_NEEDS = ("torchvision", "num2words")  # SmolVLM2's processor: a video processor and frame timestamps


class Idefics3Model(Idefics2Model):
    """Batched generation and candidate scoring for Idefics3 and SmolVLM base and instruct checkpoints."""

    FAMILY, WHAT, FORMATS = "idefics3", "Idefics3/SmolVLM", ("idefics3", CHAT_FORMAT)

    def __init__(self, model, processor, info: ModelInfo, device: str, options: ModelOptions,
                 score_token_budget: int = SCORE_TOKEN_BUDGET) -> None:
        super().__init__(model, processor, info, device, options, score_token_budget)
        vocab = self.tokenizer.get_vocab()
        self.bad_words_ids += [[vocab[tag]] for tag in IMAGE_TAGS if tag in vocab]
        self.image_costs: dict[tuple[bool, int], int] = {}  # image_tokens() per (splitting, longest edge)
        self.opening = chat_opening(processor) if info.prompt_format == CHAT_FORMAT else ""
        bos = self.tokenizer.bos_token
        # As apply_chat_template(tokenize=True): no second BOS where the template's text already starts with it.
        self.add_special_tokens = not (bos and self.opening.startswith(bos))

    @classmethod
    def transformers_classes(cls, checkpoint: str | Path, options: ModelOptions) -> tuple:
        """Idefics3's classes, or SmolVLM2's for a `smolvlm` config (whose processor needs torchvision and num2words:
        one line naming them when they are missing)."""
        config, where = checkpoint_config(str(checkpoint), options)
        if config["model_type"] != "smolvlm":
            from transformers import Idefics3ForConditionalGeneration, Idefics3Processor

            return Idefics3Processor, Idefics3ForConditionalGeneration
        missing = [name for name in SMOLVLM_NEEDS if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(f"SmolVLM2 checkpoint '{checkpoint}' ({where}: model_type smolvlm): its processor needs "
                              f"{' and '.join(missing)}; install them (pip install {' '.join(missing)}) to run it")
        from transformers import SmolVLMForConditionalGeneration, SmolVLMProcessor

        return SmolVLMProcessor, SmolVLMForConditionalGeneration

    @staticmethod
    def configure_images(processor, options: ModelOptions) -> ModelOptions:
        """Apply `do_image_splitting` / `longest_edge` (the side an image is resized to before it is cut into crops of
        the vision tower's size); the options with the values in effect, so a result records what ran."""
        images = processor.image_processor
        if options.do_image_splitting is not None:
            images.do_image_splitting = options.do_image_splitting
        if options.longest_edge is not None:
            images.size = {"longest_edge": options.longest_edge}
        return replace(options, do_image_splitting=bool(images.do_image_splitting), longest_edge=int(images.size["longest_edge"]))

    def prompt_texts(self, prompts: Sequence[Prompt]) -> list[str]:
        return [self.opening + prompt.text for prompt in prompts]

    def text_encoder(self):
        """The tokenizer: Idefics3's processor refuses an <image> without its image, and the text after one (a single
        special token, as the expanded image's last token is) is cut by the tokenizer the processor itself calls."""
        return self.tokenizer

    def image_tokens(self) -> int:
        """Tokens one image costs in a prompt with the current options, at most: a square image, resized to
        `longest_edge` and (with splitting) cut into the most crops any image of that side gets, plus the whole
        image; without splitting, the whole image alone. Measured once per setting (a 1456-pixel image for 8B)."""
        images = self.processor.image_processor
        setting = (bool(images.do_image_splitting), int(images.size["longest_edge"]))
        if setting not in self.image_costs:
            self.image_costs[setting] = image_token_count(self.processor, setting[1])
        return self.image_costs[setting]

    def prompt_lengths(self, prompts: Sequence[Prompt]) -> list[int]:
        """Tokens each prompt takes at most, for the context budget, without its pixels: its text as encoded (the chat
        opening included), each image marker counted as `image_tokens()` (an image's crops depend on its size, which
        the processor cannot know from the marker: the count is a square image's, the most)."""
        if not prompts:
            return []
        ids = self.tokenizer(self.prompt_texts(prompts), add_special_tokens=self.add_special_tokens)["input_ids"]
        per_image = self.image_tokens()
        return [len(row) + len(prompt.images) * (per_image - 1) for row, prompt in zip(ids, prompts)]


def chat_opening(processor) -> str:
    """What the checkpoint's chat template writes before its first turn (its BOS text), read from the template."""
    label = PROMPT_FORMATS.get(CHAT_FORMAT).template("vqa").user_label
    if not getattr(processor, "chat_template", None):
        return ""
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "x"}]}])
    return text[: text.index(label)] if label in text else ""
