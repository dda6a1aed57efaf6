"""IDEFICS (Laurençon et al. 2023, arXiv 2306.16527) through transformers' IdeficsForVisionText2Text.

Loads any IDEFICS checkpoint by hub id or local folder, including the tiny one bundled with this
package, through the same `from_pretrained` path. torch and transformers are imported here only,
so commands that need no model stay fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evals.errors import ConfigError, DataError, EvalsError
from evals.images import load_image
from evals.models import compat
from evals.models import scoring_common as scoring
from evals.models.base import ModelInfo
from evals.models.bigmodel import inputs_device, placement_kwargs
from evals.models.families import checkpoint_config, first_lines
from evals.models.options import ModelOptions, check_family_options, from_pretrained_kwargs, processor_kwargs
from evals.models.scoring_common import (
    SCORE_TOKEN_BUDGET,
    ProcessorModel,
    Row,
    check_request,
    continuation_ids,  # noqa: F401  (re-exported: tests import it from here)
    reduce,
)
from evals.models.vision_cache import cache_from_settings
from evals.records import GenerationParams, ImageRef, ImageSegment, Prompt, TextSegment

DTYPES = ("float32", "bfloat16", "float16")
IMAGE_MARKER_TOKENS = 3  # <fake_token_around_image><image><fake_token_around_image>, as IdeficsProcessor writes an image


def checkpoint_revision(checkpoint: str, model) -> str:
    """The hub commit when the checkpoint came from the hub, else a hash of the local weights."""
    from evals.embedders import weights_digest

    return getattr(model.config, "_commit_hash", None) or weights_digest(Path(checkpoint))


def load_pretrained(processor_class, model_class, checkpoint: str | Path, device: str, options: ModelOptions, what: str):
    """Processor and eval-mode weights on `device` through `from_pretrained`; a checkpoint that cannot be read is one line."""
    import transformers
    from huggingface_hub.errors import StrictDataclassError
    from safetensors import SafetensorError

    transformers.utils.logging.disable_progress_bar()  # its messages: evals/runlog.py routes them to the run's log
    model_kwargs = from_pretrained_kwargs(options, device)  # before loading: a missing package fails fast
    _, config_file = checkpoint_config(str(checkpoint), options)  # readable, sane sizes, a hub id in the cache
    check_weight_files(Path(checkpoint))
    try:
        if options.device_map is not None:  # planned (and refused if impossible) before any weights load
            model_kwargs.update(placement_kwargs(model_class, checkpoint, device, options, what))
        processor = processor_class.from_pretrained(str(checkpoint), **processor_kwargs(options))
        model = model_class.from_pretrained(str(checkpoint), **model_kwargs)
    except StrictDataclassError as error:  # transformers' config classes check each field's type as they are built
        raise DataError(f"{config_file}: {first_lines(error)}") from None
    except SafetensorError as error:  # a hub checkpoint's weights (a local folder's were checked above)
        raise DataError(f"cannot load {what} checkpoint '{checkpoint}': a weights file (*.safetensors) is damaged "
                        f"({first_lines(error)})") from None
    except (OSError, ValueError) as error:
        raise EvalsError(f"cannot load {what} checkpoint '{checkpoint}': {first_lines(error, 1)}") from None
    if not options.load_in_4bit and options.device_map is None:  # those were placed at load and stay there
        model = model.to(device)
    return processor, model.eval()


def check_weight_files(folder: Path) -> None:
    """Each safetensors file of a local checkpoint folder opens (header and size agree): a truncated or damaged one
    is named here, before transformers reports it from the middle of loading without a file name."""
    if not folder.is_dir():
        return
    from safetensors import SafetensorError, safe_open

    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            raise DataError(f"{path}: not a readable safetensors file, truncated or damaged ({first_lines(error)})") from None


class IdeficsModel(ProcessorModel):
    """Batched generation and candidate scoring for IDEFICS base and instruct checkpoints."""

    def __init__(
        self, model, processor, info: ModelInfo, device: str, score_token_budget: int = SCORE_TOKEN_BUDGET,
        feature_cache: bool | None = None, feature_cache_bytes: int | None = None,
    ) -> None:
        """`feature_cache` / `feature_cache_bytes`: image features encoded once per image and kept (LRU) within
        the byte bound; None reads EVALS_FEATURE_CACHE / EVALS_FEATURE_CACHE_MB (default: on, 1 GiB)."""
        super().__init__(model, processor, info, device, score_token_budget)
        self.feature_cache = cache_from_settings(feature_cache, feature_cache_bytes)
        self.options = ModelOptions(dtype=info.dtype)  # how it was loaded; `load` sets the full options

    @classmethod
    def load(
        cls, checkpoint: str | Path, device: str = "cpu", dtype: str = "float32", revision: str | None = None,
        name: str | None = None, options: ModelOptions | None = None,
    ) -> IdeficsModel:
        """Load processor and weights; `name` is how results refer to it (default: the checkpoint).
        `options` (dtype, attention, 4-bit, revision, ...) replaces `dtype` and `revision` when given."""
        from transformers import IdeficsForVisionText2Text, IdeficsProcessor

        if options is None:
            if dtype not in DTYPES:
                raise ConfigError(f"unknown dtype '{dtype}' (choose from {', '.join(DTYPES)})")
            options = ModelOptions(dtype=dtype, revision=revision)
        check_family_options(options, "idefics", frozenset())
        processor, model = load_pretrained(IdeficsProcessor, IdeficsForVisionText2Text, checkpoint, device, options, "IDEFICS")
        name = name or str(checkpoint)
        prompt_format = "idefics-instruct" if "instruct" in name.lower() else "idefics"
        info = ModelInfo(name, "idefics", checkpoint_revision(str(checkpoint), model), options.dtype, prompt_format)
        loaded = cls(model, processor, info, inputs_device(model, device, options))
        loaded.options = options
        return loaded

    def encode(
        self, prompts: Sequence[Prompt], extra_tokens: Sequence[int] | None = None, extra_what: str = "", pixels: bool = True
    ):
        """Processor inputs for a batch: text as given (no automatic end-of-utterance), images decoded once.

        Nothing is truncated: a prompt that with `extra_tokens[i]` more tokens (the longest candidate,
        or the tokens to generate) would run past the model's positions is a DataError. `pixels=False`
        hands the processor a blank stand-in for every image (its tokens and masks do not depend on the
        pixels), for callers that replace pixel values with cached features.
        """
        inputs = self.processor_inputs(prompts, load_image if pixels else self.blank_image)
        self.check_length(prompts, inputs["attention_mask"].sum(dim=1).tolist(), extra_tokens or [0] * len(prompts), extra_what)
        return inputs.to(self.device)

    def processor_inputs(self, prompts: Sequence[Prompt], image):
        items = [[s.text if isinstance(s, TextSegment) else image(s.image) for s in prompt.segments] for prompt in prompts]
        return self.processor(text=items, add_end_of_utterance_token=False, return_tensors="pt")

    def prompt_lengths(self, prompts: Sequence[Prompt]) -> list[int]:
        """Tokens each prompt takes: the processor's text, tokenized without building the pixel arrays the processor
        would also make for every image (a 32-shot cell has 33 a query)."""
        texts = compat.idefics_prompt_texts(self.tokenizer, prompts)
        return [len(ids) for ids in self.tokenizer(texts)["input_ids"]] if texts else []

    def image_tokens(self) -> int:
        """Text tokens one image adds to a prompt: its markers (its pixels go in through cross-attention)."""
        return IMAGE_MARKER_TOKENS

    def blank_image(self, _ref: ImageRef):
        from PIL import Image

        return Image.new("RGB", (8, 8))  # 8x8: a 1x1 image would be read as channels-first

    def inputs_with_features(self, prompts: Sequence[Prompt], extra_tokens: Sequence[int], extra_what: str):
        """`encode`'s inputs without pixel values, and the prompts' cached image features (prompts, images, tokens,
        width): each image encoded once per run while the feature cache holds it, else once per call."""
        inputs = self.encode(prompts, extra_tokens, extra_what, pixels=False)
        del inputs["pixel_values"]
        return inputs, self.batch_features(prompts, inputs["image_attention_mask"].shape[2])

    def batch_features(self, prompts: Sequence[Prompt], slots: int):
        """(prompts, slots, tokens, width) features, prompt i's j-th image in slot j as the processor orders pixel values.

        Slots past a prompt's images are zeros: the image attention mask gives them no weight (and the
        gate zeroes tokens that see no image), so they stand in exactly for the zero pixels peers encode.
        """
        import torch

        rows = []
        blank = torch.zeros(self.feature_shape(), dtype=self.model.dtype, device=self.device)
        for prompt in prompts:
            images = [self.image_features(s.image) for s in prompt.segments if isinstance(s, ImageSegment)]
            rows.append(torch.stack(images + [blank] * (slots - len(images))))
        return torch.stack(rows)

    def feature_shape(self) -> tuple[int, int]:
        """(tokens, width) of one image's cached features."""
        return compat.idefics_cached_feature_shape(self.model.config)

    def image_features(self, ref: ImageRef):
        """One image's features from the cache, or encoded now (alone, so no batch can change them) and kept."""
        features = self.feature_cache.get(ref) if self.feature_cache is not None else None
        if features is None:
            features = self.encode_image(load_image(ref))
            if self.feature_cache is not None:
                self.feature_cache.put(ref, features)
        return features

    def encode_image(self, image):
        """One decoded image's features as `generate` takes them (compat.idefics_cached_features)."""
        import torch

        with torch.inference_mode():
            features = compat.idefics_cached_features(self.model, self.pixel_values([image]))[0]
        return features.to(self.device)  # a spread model's vision blocks may sit on another GPU than its inputs

    def pixel_values(self, images):
        pixels = self.processor.image_processor(images, return_tensors="pt")
        return getattr(pixels, "pixel_values", pixels).to(self.device, self.model.dtype)

    def check_length(self, prompts: Sequence[Prompt], lengths: Sequence[int], extra: Sequence[int], extra_what: str) -> None:
        limit = getattr(self.model.config, "max_position_embeddings", None)
        check_prompt_lengths(prompts, lengths, extra, extra_what, limit, self.info.id)

    def embed_images(self, images):
        """Pooled vision-tower features of decoded images (the vision-tower RICES embedder)."""
        import torch

        with torch.inference_mode():
            pooled = compat.idefics_pooled_features(self.model, self.pixel_values(images))
        return pooled.float().cpu().numpy()

    def stop_token_ids(self, stop_sequences: Sequence[str]) -> list[int]:
        return stop_token_ids(self.tokenizer, stop_sequences)

    def generate(self, prompts: Sequence[Prompt], params: GenerationParams) -> list[str]:
        import torch

        extra = [params.max_new_tokens] * len(prompts)
        if self.feature_cache is None:  # pixel values: transformers' own path, the reference for the cache
            inputs = self.encode(prompts, extra, "new tokens to generate")
        else:
            inputs, features = self.inputs_with_features(prompts, extra, "new tokens to generate")
            inputs.update(compat.idefics_generate_kwargs(features))
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                do_sample=False,
                num_beams=params.num_beams,
                max_new_tokens=params.max_new_tokens,
                length_penalty=params.length_penalty,
                bad_words_ids=self.bad_words_ids or None,
                eos_token_id=self.stop_token_ids(params.stop_sequences),
                pad_token_id=self.tokenizer.pad_token_id,
            )
        continuation = output[:, inputs["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(continuation, skip_special_tokens=True)

    def candidate_ids(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        """Each candidate's token ids as its prompt would hold them were it part of the prompt text (see
        `continuation_ids`), appended to the prompt's ids so the prompt is exactly the one `generate` sees."""
        return scoring.candidate_ids(self.tokenizer, [prompt_tail(p) for p in prompts], candidates)

    def score(
        self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]], reduction: str = "sum"
    ) -> list[list[float]]:
        """Log-likelihood of each candidate's tokens after its prompt, summed or averaged (`reduction`).

        Each prompt is run once, left-padded with the others; its key/value cache, image features and
        last logits (which score every candidate's first token) are then shared by all its candidates,
        whose remaining tokens run in batched forwards of rows from any prompt (see `scoring_common.rest_log_probs`).
        """
        import torch

        check_request(prompts, candidates, reduction)
        if not prompts:
            return []
        ids = self.candidate_ids(prompts, candidates)
        longest = [max((len(c) for c in options), default=0) for options in ids]
        inputs, features = self.inputs_with_features(prompts, longest, "candidate tokens")
        with torch.inference_mode():
            features = compat.idefics_forward_features(self.model, features)  # after the perceiver, once per call
            prefix = self.model(**inputs, **compat.idefics_forward_kwargs(self.model, features), use_cache=True,
                                **compat.last_logits_kwargs(self.model))
            past = compat.output_cache(prefix)
            return scoring.prefix_scores(ids, prefix.logits[:, -1], inputs["input_ids"].shape[1], self.score_token_budget,
                                         lambda rows: self.chunk_log_probs(inputs, features, past, rows), reduction)

    def chunk_log_probs(self, inputs, features, past, rows: Sequence[Row]):
        """One batched forward over rows' tokens but the last, attending to their prompts' cache rows."""
        import torch

        batch = scoring.candidate_batch(rows, self.tokenizer.pad_token_id, self.device)
        logits = self.model(
            input_ids=batch.feed,
            # the full mask gives each row its own positions after its prompt's left padding
            attention_mask=torch.cat([inputs["attention_mask"][batch.index], batch.mask], dim=1),
            # candidate tokens see the images the prompt's last token sees, as in generation
            image_attention_mask=inputs["image_attention_mask"][batch.index, -1:].expand(-1, batch.width, -1),
            use_cache=True,
            **compat.cache_kwargs(self.model, compat.cache_rows(past, batch.index, self.model.config)),
            **compat.idefics_forward_kwargs(self.model, features[batch.index]),
        ).logits
        return scoring.target_log_prob_sums(logits, batch)

    def score_naive(
        self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]], reduction: str = "sum"
    ) -> list[list[float]]:
        """The reference for `score`: one full forward (prompt, pixel values and candidate) per candidate, no feature cache."""
        import torch

        check_request(prompts, candidates, reduction)
        ids = self.candidate_ids(prompts, candidates)
        scores = []
        for prompt, options in zip(prompts, ids):
            base = self.encode([prompt], [max(len(c) for c in options)] if options else None, "candidate tokens")
            row = []
            for option in options:
                extra = torch.tensor([option], device=self.device)
                last_mask = base["image_attention_mask"][:, -1:, :].expand(-1, len(option), -1)
                with torch.inference_mode():
                    logits = self.model(
                        input_ids=torch.cat([base["input_ids"], extra], dim=1),
                        attention_mask=torch.cat([base["attention_mask"], torch.ones_like(extra)], dim=1),
                        pixel_values=base["pixel_values"],
                        image_attention_mask=torch.cat([base["image_attention_mask"], last_mask], dim=1),
                    ).logits
                log_probs = torch.log_softmax(logits[0, -len(option) - 1 : -1].float(), dim=-1)
                row.append(reduce(float(log_probs.gather(1, extra[0].unsqueeze(1)).sum()), len(option), reduction))
            scores.append(row)
        return scores


def check_prompt_lengths(
    prompts: Sequence[Prompt], lengths: Sequence[int], extra: Sequence[int], extra_what: str, limit: int | None, model_id: str
) -> None:
    """A prompt whose tokens plus `extra` (candidate or new tokens) pass the model's positions is a DataError."""
    # Rotary positions past the trained range raise nothing in transformers; the scores would be silently wrong.
    for prompt, length, more in zip(prompts, lengths, extra):
        if limit is not None and length + more > limit:
            tail = prompt.text[-40:]
            plus = f" plus {more} {extra_what}" if more else ""
            raise DataError(
                f"prompt ending {tail!r} has {length} tokens{plus} and model '{model_id}' accepts {limit} "
                "(max_position_embeddings): use fewer shots"
            )


def stop_token_ids(tokenizer, stop_sequences: Sequence[str]) -> list[int]:
    """End-of-sequence plus every format stop string that is a single token (others are cut later)."""
    ids = [tokenizer.eos_token_id]
    for stop in stop_sequences:
        encoded = tokenizer.encode(stop, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids


def prompt_tail(prompt: Prompt) -> str:
    """The prompt's text after its last image (all of it when it has none), as the processor passes it on: what a
    candidate continues. IdeficsProcessor strips spaces around every text segment; templates carry a query's
    trailing spaces into the continuation instead (prompts.formats.PromptTemplate.continuation)."""
    tail: list[str] = []
    for segment in prompt.segments:
        tail = [*tail, segment.text.strip(" ")] if isinstance(segment, TextSegment) else []
    return "".join(tail)
