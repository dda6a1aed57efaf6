"""Any transformers `AutoModelForImageTextToText` checkpoint whose processor takes several images per prompt, few-shot
with the demonstrations' images, through the checkpoint's own chat template.

Prompts arrive in the `chat` format (prompts/templates/formats.toml): neutral turns <|user|>...<|assistant|>...<|end|>.
They become chat messages, images as content items in prompt order, and the processor's chat template writes them:
demonstrations as earlier user/assistant turns (`demonstrations=turns`), or all in one user turn, each shot's answer on
the line after its question (`one_turn`, for templates or models that take one user message). The checkpoint's own
end-of-turn text (found by rendering a probe exchange) stands in for <|end|>: the stop string of generation and the
closing of a ranked candidate. Candidate scoring reuses each prompt's key/value cache where the architecture's cache
and positions allow it (`scoring=prefix`), else runs prompt and candidate whole (`naive`); both are recorded.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from evals.errors import ConfigError
from evals.images import load_image
from evals.models import scoring_common as scoring
from evals.models.base import ModelInfo
from evals.models.bigmodel import inputs_device
from evals.models.families import checkpoint_config
from evals.models.idefics import check_prompt_lengths, checkpoint_revision, load_pretrained
from evals.models.idefics2 import Idefics2Model
from evals.models.options import ModelOptions, check_family_options
from evals.records import GenerationParams, ImageSegment, Prompt, Segment, TextSegment

USER, ASSISTANT, END = "<|user|>", "<|assistant|>", "<|end|>"
FAMILY_OPTIONS = frozenset({"demonstrations", "scoring"})
PROBE_QUESTION, PROBE_ANSWER = "Question?", "Probe answer."
TOKEN_ALIGNED = frozenset({"token_type_ids", "mm_token_type_ids"})  # processor outputs with one value per token


@dataclass(frozen=True)
class Architecture:
    """What the family knows of one model_type: its name in messages, the demonstration layout it gets by default,
    whether the prefix-reuse path is exact for it (tested equal to the naive path), whether a left-padded prompt's
    cache serves candidates exactly (not so with Gemma 3's sliding-window layers: those prompts' prefixes run one by
    one), whether its processor needs torchvision."""

    name: str
    demonstrations: str = "turns"
    prefix_reuse: bool = True
    padded_cache: bool = True
    needs_torchvision: bool = False


# Tested with tiny checkpoints (scripts/make_tiny_generic.py): gemma3, llava_next. Qwen2-VL's multimodal rotary
# positions are computed from the whole sequence, so its candidates run the naive path; the torchvision ones are
# listed for users who have torchvision and are untested here.
ARCHITECTURES = {
    "gemma3": Architecture("Gemma 3", padded_cache=False),
    "llava_next": Architecture("LLaVA-NeXT"),
    "qwen2_vl": Architecture("Qwen2-VL", prefix_reuse=False, needs_torchvision=True),
    "qwen2_5_vl": Architecture("Qwen2.5-VL", prefix_reuse=False, needs_torchvision=True),
    "llava_onevision": Architecture("LLaVA-OneVision", prefix_reuse=False, needs_torchvision=True),
}


@dataclass(frozen=True)
class Turn:
    """One user turn's segments and the assistant's answer to it (None: the query, which the model answers)."""

    user: tuple[Segment, ...]
    answer: str | None


def split_turns(prompt: Prompt) -> list[Turn]:
    """The `chat` format's neutral turns of a prompt; text before the first <|user|> (a template's prefix) opens it."""
    pieces: list[Segment | str] = []  # segments, and the markers as bare strings
    for segment in prompt.segments:
        if isinstance(segment, ImageSegment):
            pieces.append(segment)
            continue
        for part in split_keep(segment.text, (USER, ASSISTANT, END)):
            pieces.append(part if part in (USER, ASSISTANT, END) else TextSegment(part))
    if USER not in pieces:
        raise ConfigError(f"the generic family renders the 'chat' prompt format; this prompt has no {USER} turn: "
                          f"{prompt.text[:60]!r} (use --prompt-format chat)")
    return turns_of(pieces)


def split_keep(text: str, markers: Sequence[str]) -> list[str]:
    """`text` cut before and after every marker, markers kept, empty parts dropped."""
    parts, at = [], 0
    while at < len(text):
        found = [(text.find(m, at), m) for m in markers if text.find(m, at) != -1]
        if not found:
            parts.append(text[at:])
            break
        start, marker = min(found)
        parts += [text[at:start], marker]
        at = start + len(marker)
    return [part for part in parts if part]


def turns_of(pieces: Sequence[Segment | str]) -> list[Turn]:
    turns: list[Turn] = []
    user: list[Segment] = []
    answer: list[str] | None = None
    for piece in pieces:
        if piece == ASSISTANT:
            answer = []
        elif piece == END:
            turns.append(Turn(tuple(user), "".join(answer or [])))
            user, answer = [], None
        elif piece != USER and answer is not None:
            if isinstance(piece, ImageSegment):
                raise ConfigError("an image in an assistant answer: the chat format has none")
            answer.append(piece.text)
        elif piece != USER:
            user.append(piece)
    return turns + [Turn(tuple(user), None)]


def content(segments: Sequence[Segment]) -> list[dict]:
    """Chat content items in prompt order: each image, each text (adjacent texts joined)."""
    items: list[dict] = []
    for segment in segments:
        if isinstance(segment, ImageSegment):
            items.append({"type": "image"})
        elif items and items[-1]["type"] == "text":
            items[-1]["text"] += segment.text
        else:
            items.append({"type": "text", "text": segment.text})
    return items


def messages(turns: Sequence[Turn], demonstrations: str) -> list[dict]:
    """Chat messages: shots as user/assistant exchanges (`turns`), or every shot and the query in one user message,
    each shot's answer on the line after it and a blank line between shots (`one_turn`)."""
    if demonstrations == "one_turn":
        segments: list[Segment] = []
        for turn in turns:
            segments += [*turn.user, *([] if turn.answer is None else [TextSegment(f"\n{turn.answer}\n\n")])]
        return [{"role": "user", "content": content(segments)}]
    out = []
    for turn in turns:
        out.append({"role": "user", "content": content(turn.user)})
        if turn.answer is not None:
            out.append({"role": "assistant", "content": [{"type": "text", "text": turn.answer}]})
    return out


class GenericModel(Idefics2Model):
    """Batched generation and candidate scoring through a checkpoint's processor and chat template (the batching,
    cache sharing and naive reference are IDEFICS2's, over this model's inputs)."""

    def __init__(self, model, processor, info: ModelInfo, device: str, options: ModelOptions,
                 architecture: Architecture | None = None, **kwargs) -> None:
        super().__init__(model, processor, info, device, options, **kwargs)
        self.image_marker = getattr(processor, "image_token", None) or "<image>"
        vocab = self.tokenizer.get_vocab()
        self.bad_words_ids += [[vocab[t]] for t in {self.image_marker, getattr(processor, "boi_token", "")} if t in vocab]
        self.reply_lead, self.closing = reply_frame(processor)
        self.architecture = architecture or Architecture(type(model).__name__)

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "cpu", name: str | None = None,
             options: ModelOptions | None = None) -> GenericModel:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        options = options or ModelOptions()
        check_family_options(options, "generic", FAMILY_OPTIONS)
        model_type = checkpoint_config(str(checkpoint), options)[0]["model_type"]
        arch = architecture(model_type)
        processor, model = load_pretrained(AutoProcessor, AutoModelForImageTextToText, checkpoint, device, options, arch.name)
        options = replace(options, demonstrations=options.demonstrations or arch.demonstrations,
                          scoring=options.scoring or ("prefix" if arch.prefix_reuse else "naive"))
        name = name or str(checkpoint)
        info = ModelInfo(name, "generic", checkpoint_revision(str(checkpoint), model), options.dtype, "chat")
        return cls(model, processor, info, inputs_device(model, device, options), options, architecture=arch)

    def chat_text(self, prompt: Prompt) -> str:
        """The prompt as the checkpoint's chat template writes it, ending with the assistant's opening."""
        chat = messages(split_turns(prompt), self.options.demonstrations)
        return self.processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)

    def encode(self, prompts: Sequence[Prompt], extra_tokens: Sequence[int], extra_what: str):
        """Processor inputs for a batch (left-padded). A template that writes BOS itself is not given a second one
        (as the processor's own apply_chat_template does); too long a prompt is a DataError."""
        texts = [self.chat_text(p) for p in prompts]
        images = [[load_image(ref) for ref in prompt.images] for prompt in prompts]
        bos = self.tokenizer.bos_token
        inputs = self.processor(text=texts, images=images if any(images) else None, padding=True, return_tensors="pt",
                                add_special_tokens=not (bos and texts[0].startswith(bos)))
        limit = getattr(self.model.config.get_text_config(), "max_position_embeddings", None)
        check_prompt_lengths(prompts, inputs["attention_mask"].sum(dim=1).tolist(), extra_tokens, extra_what, limit, self.info.id)
        return inputs.to(self.device)

    def generate(self, prompts: Sequence[Prompt], params: GenerationParams) -> list[str]:
        """Generation stops at the checkpoint's end of turn where the format says <|end|>."""
        stops = tuple(self.closing.strip() or self.tokenizer.eos_token if s == END else s for s in params.stop_sequences)
        return super().generate(prompts, replace(params, stop_sequences=stops))

    def candidate_ids(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        """Each candidate as the assistant's reply (its lead-in, the answer, the end of turn where it ends in <|end|>),
        tokenised after the chat text from its last image on."""
        tails = []
        for prompt in prompts:
            text = self.chat_text(prompt)
            at = text.rfind(self.image_marker)
            tails.append(text if at == -1 else text[at + len(self.image_marker):])
        replies = [[self.reply(c) for c in options] for options in candidates]
        return scoring.candidate_ids(self.tokenizer, tails, replies)

    def reply(self, candidate: str) -> str:
        answer = candidate.removesuffix(END)
        return self.reply_lead + answer + (self.closing if candidate.endswith(END) else "")

    def score(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]], reduction: str = "sum") -> list[list[float]]:
        """Prefix reuse where the architecture allows it (`scoring=prefix`), the naive path otherwise."""
        if self.options.scoring == "naive":
            return self.score_naive(prompts, candidates, reduction)
        if not self.architecture.padded_cache:
            return [super(GenericModel, self).score([p], [c], reduction)[0] for p, c in zip(prompts, candidates)]
        return super().score(prompts, candidates, reduction)

    def row_images(self, inputs, rows: int, width: int) -> dict:
        """Every processor output but the text's, for `rows` copies of the prompt: per-token ones (Gemma 3's token
        types) extended by `width` text tokens, per-image ones (pixels, sizes) repeated."""
        import torch

        out = {}
        for key, value in inputs.items():
            if key in ("input_ids", "attention_mask"):
                continue
            if key in TOKEN_ALIGNED:
                out[key] = torch.cat([value.expand(rows, -1), value.new_zeros(rows, width)], dim=1)
            else:
                out[key] = value.repeat(rows, *[1] * (value.dim() - 1))
        return out

    def prompt_lengths(self, prompts: Sequence[Prompt]) -> list[int]:
        """Tokens each prompt takes in the chat template's text, each image at `image_tokens()`: exact where an image
        costs a fixed number (Gemma 3), at most what it can cost where that depends on its size (LLaVA-NeXT's tiles),
        so a prompt counted as fitting does fit."""
        bos, lengths = self.tokenizer.bos_token, []
        for prompt in prompts:
            text = self.chat_text(prompt)
            words = self.tokenizer(text.replace(self.image_marker, ""), add_special_tokens=not (bos and text.startswith(bos)))
            lengths.append(len(words["input_ids"]) + len(prompt.images) * self.image_tokens())
        return lengths

    @cached_property
    def image_tokens_count(self) -> int:
        return measure_image_tokens(self.processor, self.image_marker)

    def image_tokens(self) -> int:
        """Tokens one image costs in a prompt with the current options; for a processor whose count depends on the
        image's size (LLaVA-NeXT tiles), the largest it can be (an image at its largest tiling grid)."""
        return self.image_tokens_count


def architecture(model_type: str) -> Architecture:
    """The architecture of a model_type the family claims; one line when its processor needs torchvision."""
    arch = ARCHITECTURES[model_type]
    if arch.needs_torchvision and importlib.util.find_spec("torchvision") is None:
        raise ConfigError(f"{arch.name} checkpoints (model_type '{model_type}') need torchvision for their processor: "
                          "pip install torchvision (a build matching your torch)")
    return arch


def reply_frame(processor) -> tuple[str, str]:
    """What the chat template writes between the generation prompt and an answer (e.g. " " for LLaVA-NeXT's
    "[/INST] answer") and after it (the end of turn: "<end_of_turn>\\n", "</s>"), from a rendered probe exchange."""
    user = {"role": "user", "content": [{"type": "text", "text": PROBE_QUESTION}]}
    opened = processor.apply_chat_template([user], add_generation_prompt=True, tokenize=False)
    full = processor.apply_chat_template(
        [user, {"role": "assistant", "content": [{"type": "text", "text": PROBE_ANSWER}]}], tokenize=False)
    reply = full[len(opened):] if full.startswith(opened) else ""
    if PROBE_ANSWER not in reply:
        raise ConfigError("the checkpoint's chat template does not write an answer right after its generation prompt; "
                          "the generic family cannot score candidates or stop at its end of turn")
    lead, closing = reply.split(PROBE_ANSWER, 1)
    return lead, closing


def measure_image_tokens(processor, marker: str) -> int:
    """Input ids one image adds to a prompt: the processor run on one image marker with a blank image at the largest
    size its processor distinguishes, less the same text without the image."""
    from PIL import Image

    images = processor.image_processor
    pinpoints = getattr(images, "image_grid_pinpoints", None)
    if pinpoints:
        height, width = max(pinpoints, key=lambda hw: hw[0] * hw[1])
    else:
        size = getattr(images, "size", None) or {}
        height = size.get("height") or size.get("shortest_edge") or size.get("longest_edge") or 224
        width = size.get("width") or height
    with_image = processor(text=[marker], images=[[Image.new("RGB", (width, height))]], return_tensors="pt")
    without = processor(text=[""], return_tensors="pt")
    return int(with_image["input_ids"].shape[1] - without["input_ids"].shape[1])
