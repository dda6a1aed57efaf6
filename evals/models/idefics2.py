"""IDEFICS2 (Laurençon et al. 2024, arXiv 2405.02246) through transformers' Idefics2ForConditionalGeneration.

Images go in at their native resolution and aspect ratio (longest edge bounded, optionally also split into four
crops); the processor writes each image as <fake_token_around_image><image>...<fake_token_around_image>. Prompts
arrive rendered in the `idefics2` (base) or `idefics2-chat` (instruct, chatty) format; the chat format's turns are
the processor's chat template (prompts/templates/formats.toml), so the text is handed to the processor as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from evals.images import load_image
from evals.models import compat
from evals.models import scoring_common as scoring
from evals.models.base import ModelInfo
from evals.models.bigmodel import inputs_device
from evals.models.idefics import check_prompt_lengths, checkpoint_revision, load_pretrained, stop_token_ids
from evals.models.options import ModelOptions, check_family_options
from evals.models.scoring_common import SCORE_TOKEN_BUDGET, ProcessorModel, Row, check_request, reduce, right_padded
from evals.records import IMAGE_MARKER, GenerationParams, Prompt

FAMILY_OPTIONS = frozenset({"do_image_splitting", "longest_edge"})


class ProcessorText:
    """The processor's text path as a tokenizer (`encode`): <image> expanded to the image's tokens, so a candidate's
    ids are the ones it gets in context (`continuation_ids`)."""

    def __init__(self, processor) -> None:
        self.processor = processor

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.processor(text=[text], add_special_tokens=add_special_tokens)["input_ids"][0]


def configure_images(processor, options: ModelOptions) -> ModelOptions:
    """Apply `do_image_splitting` / `longest_edge` to the image processor; the options with the values in effect, so a
    result records what ran even when the checkpoint's defaults were kept."""
    images = processor.image_processor
    if options.do_image_splitting is not None:
        images.do_image_splitting = options.do_image_splitting
    if options.longest_edge is not None:
        images.size = {"shortest_edge": min(images.size["shortest_edge"], options.longest_edge),
                       "longest_edge": options.longest_edge}
    return replace(options, do_image_splitting=bool(images.do_image_splitting), longest_edge=int(images.size["longest_edge"]))


def image_token_count(processor, side: int) -> int:
    """Tokens the processor writes for one square `side` x `side` image: measured, not recomputed, so it is exact
    for whatever markup (crop tags, a global-image tag) the processor puts around the image's tokens."""
    from PIL import Image

    image = Image.new("RGB", (side, side), (127, 127, 127))
    return len(processor(text=[IMAGE_MARKER], images=[[image]], add_special_tokens=False)["input_ids"][0])


def stop_arguments(tokenizer, stop_sequences: Sequence[str]) -> dict:
    """`generate` arguments that end an answer at every stop string: single-token stops as end-of-sequence ids, the
    others (a Mistral tokenizer may spell "\n" with two tokens) as `stop_strings`, matched on the decoded text."""
    arguments: dict = {"eos_token_id": stop_token_ids(tokenizer, stop_sequences)}
    longer = [stop for stop in stop_sequences if len(tokenizer.encode(stop, add_special_tokens=False)) != 1]
    if longer:
        arguments.update(compat.stop_strings_kwargs(tokenizer, longer))
    return arguments


class Idefics2Model(ProcessorModel):
    """Batched generation and candidate scoring for IDEFICS2 base, instruct and chatty checkpoints."""

    def __init__(self, model, processor, info: ModelInfo, device: str, options: ModelOptions,
                 score_token_budget: int = SCORE_TOKEN_BUDGET) -> None:
        super().__init__(model, processor, info, device, score_token_budget)
        self.options = options

    # What a subclass for a sibling architecture (Idefics3) changes: its family, names and transformers classes.
    FAMILY, WHAT, FORMATS = "idefics2", "IDEFICS2", ("idefics2", "idefics2-chat")
    add_special_tokens = True  # the tokenizer's own BOS (IDEFICS2's chat template writes none)

    @classmethod
    def transformers_classes(cls, checkpoint: str | Path, options: ModelOptions) -> tuple:
        """The processor and model classes that load this family's checkpoints."""
        from transformers import Idefics2ForConditionalGeneration, Idefics2Processor

        return Idefics2Processor, Idefics2ForConditionalGeneration

    @staticmethod
    def configure_images(processor, options: ModelOptions) -> ModelOptions:
        return configure_images(processor, options)

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "cpu", name: str | None = None,
             options: ModelOptions | None = None) -> Idefics2Model:
        """Load processor and weights; `name` is how results refer to it (default: the checkpoint). A name or folder
        with "base" in it gets the plain interleaved format, any other the chat format (instruct, chatty)."""
        options = options or ModelOptions()
        check_family_options(options, cls.FAMILY, FAMILY_OPTIONS)
        processor_class, model_class = cls.transformers_classes(checkpoint, options)
        processor, model = load_pretrained(processor_class, model_class, checkpoint, device, options, cls.WHAT)
        options = cls.configure_images(processor, options)
        name = name or str(checkpoint)
        base, chat = cls.FORMATS
        prompt_format = base if "base" in Path(name).name.lower() else chat
        info = ModelInfo(name, cls.FAMILY, checkpoint_revision(str(checkpoint), model), options.dtype, prompt_format)
        return cls(model, processor, info, inputs_device(model, device, options), options)

    def prompt_texts(self, prompts: Sequence[Prompt]) -> list[str]:
        """The text the processor gets for each prompt (a subclass may open it with its chat template's first words)."""
        return [prompt.text for prompt in prompts]

    def text_encoder(self):
        """What cuts a prompt's tail and candidate into ids (`encode`): the processor's text path."""
        return ProcessorText(self.processor)

    def image_tokens(self) -> int:
        """Tokens one image costs in a prompt with the current options (context budgets): the image's tokens and the
        markup around them, 5 times over with image splitting (four crops and the whole image)."""
        return image_token_count(self.processor, self.processor.image_processor.size["longest_edge"])

    def encode(self, prompts: Sequence[Prompt], extra_tokens: Sequence[int], extra_what: str):
        """Processor inputs for a batch (left-padded); nothing truncated: too long a prompt is a DataError."""
        images = [[load_image(ref) for ref in prompt.images] for prompt in prompts]
        inputs = self.processor(text=self.prompt_texts(prompts), images=images if any(images) else None, padding=True,
                                add_special_tokens=self.add_special_tokens, return_tensors="pt")
        limit = getattr(self.model.config.text_config, "max_position_embeddings", None)
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        check_prompt_lengths(prompts, lengths, extra_tokens, extra_what, limit, self.info.id)
        return inputs.to(self.device)

    def generate(self, prompts: Sequence[Prompt], params: GenerationParams) -> list[str]:
        import torch

        inputs = self.encode(prompts, [params.max_new_tokens] * len(prompts), "new tokens to generate")
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, do_sample=False, num_beams=params.num_beams, max_new_tokens=params.max_new_tokens,
                length_penalty=params.length_penalty, bad_words_ids=self.bad_words_ids or None,
                pad_token_id=self.tokenizer.pad_token_id, **stop_arguments(self.tokenizer, params.stop_sequences),
            )
        return self.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def candidate_ids(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        """Each candidate's ids as the processor gives them after the prompt's text from its last image on (the
        image's tokens are fixed, so what precedes it cannot change how the candidate is cut)."""
        tails = [prompt.text[prompt.text.rfind(IMAGE_MARKER):] if prompt.images else prompt.text for prompt in prompts]
        return scoring.candidate_ids(self.text_encoder(), tails, candidates)

    def score(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]], reduction: str = "sum") -> list[list[float]]:
        """Log-likelihood of each candidate's tokens after its prompt, summed or averaged (`reduction`).

        The prompts run once, left-padded together with their images; each prompt's key/value cache and last logits
        (which score every candidate's first token) are then shared by its candidates, whose later tokens run with no
        pixel values (the images are in the cache) in batched forwards within `score_token_budget`.
        """
        import torch

        check_request(prompts, candidates, reduction)
        if not prompts:
            return []
        ids = self.candidate_ids(prompts, candidates)
        inputs = self.encode(prompts, [max((len(c) for c in options), default=0) for options in ids], "candidate tokens")
        # Explicit positions: with left padding the decoder would otherwise count a row's pads as positions.
        positions = (inputs["attention_mask"].cumsum(dim=1) - 1).clamp(min=0)
        with torch.inference_mode():
            prefix = self.model(**inputs, position_ids=positions, use_cache=True, **compat.last_logits_kwargs(self.model))
            return scoring.prefix_scores(ids, prefix.logits[:, -1], inputs["input_ids"].shape[1], self.score_token_budget,
                                         partial(self.chunk_log_probs, inputs["attention_mask"], compat.output_cache(prefix)),
                                         reduction)

    def chunk_log_probs(self, prompt_mask, past, rows: Sequence[Row]):
        """One batched forward over rows' tokens but the last, attending to their prompts' cache rows."""
        import torch

        batch = scoring.candidate_batch(rows, self.tokenizer.pad_token_id, self.device)
        start = prompt_mask.sum(dim=1)[batch.index].unsqueeze(1)  # each row's first position after its prompt
        return scoring.target_log_prob_sums(self.model(
            input_ids=batch.feed,
            attention_mask=torch.cat([prompt_mask[batch.index], batch.mask], dim=1),
            position_ids=start + torch.arange(batch.width, device=self.device),
            use_cache=True,
            **compat.cache_kwargs(self.model, compat.cache_rows(past, batch.index, self.model.config)),
        ).logits, batch)

    def score_naive(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]], reduction: str = "sum") -> list[list[float]]:
        """The reference for `score`: each prompt's candidates run as rows (prompt + candidate) of batched full forwards,
        images encoded again for every chunk, no cache reuse."""
        check_request(prompts, candidates, reduction)
        ids = self.candidate_ids(prompts, candidates)
        scores = []
        for prompt, options in zip(prompts, ids):
            sums = self.prompt_log_probs(prompt, options)
            scores.append([reduce(total, len(c), reduction) for total, c in zip(sums, options)])
        return scores

    def prompt_log_probs(self, prompt: Prompt, ids: Sequence[list[int]]) -> list[float]:
        """Summed log-probabilities of each candidate's ids after one prompt, in chunks within the token budget."""
        import torch

        if not ids:
            return []
        inputs = self.encode([prompt], [max(len(c) for c in ids)], "candidate tokens")
        length = inputs["input_ids"].shape[1]
        per_chunk = max(1, self.score_token_budget // (length + max(len(c) for c in ids)))
        sums: list[float] = []
        for start in range(0, len(ids), per_chunk):
            chunk = ids[start:start + per_chunk]
            width = max(len(c) for c in chunk)
            rows = len(chunk)
            feed = torch.cat([inputs["input_ids"].expand(rows, -1),
                              right_padded(chunk, width, self.tokenizer.pad_token_id).to(self.device)], dim=1)
            mask = torch.cat([inputs["attention_mask"].expand(rows, -1),
                              right_padded([[1] * len(c) for c in chunk], width, 0).to(self.device)], dim=1)
            images = self.row_images(inputs, rows, width)
            with torch.inference_mode():
                logits = self.model(input_ids=feed, attention_mask=mask, **images).logits[:, length - 1:-1].float()
            picked = torch.log_softmax(logits, dim=-1).gather(2, feed[:, length:].unsqueeze(2)).squeeze(2)
            sums += (picked * mask[:, length:]).sum(dim=1).tolist()
        return sums

    def row_images(self, inputs, rows: int, width: int) -> dict:
        """The prompt's image inputs for `rows` copies of it, each followed by `width` candidate tokens."""
        return {k: inputs[k].repeat(rows, *[1] * (inputs[k].dim() - 1)) for k in ("pixel_values", "pixel_attention_mask")
                if k in inputs}
