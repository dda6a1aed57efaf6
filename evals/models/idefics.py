"""IDEFICS (Laurençon et al. 2023, arXiv 2306.16527) through transformers' IdeficsForVisionText2Text.

Loads any IDEFICS checkpoint by hub id or local folder, including the tiny one bundled with this
package, through the same `from_pretrained` path. torch and transformers are imported here only,
so commands that need no model stay fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evals.errors import ConfigError, EvalsError
from evals.images import load_image
from evals.models.base import ModelInfo
from evals.records import GenerationParams, Prompt, TextSegment

BANNED_TOKENS = ("<image>", "<fake_token_around_image>")
DTYPES = ("float32", "bfloat16", "float16")


def checkpoint_revision(checkpoint: str, model) -> str:
    """The hub commit when the checkpoint came from the hub, else a hash of the local weights."""
    from evals.embedders import weights_digest

    return getattr(model.config, "_commit_hash", None) or weights_digest(Path(checkpoint))


class IdeficsModel:
    """Batched generation and candidate scoring for IDEFICS base and instruct checkpoints."""

    def __init__(self, model, processor, info: ModelInfo, device: str) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"  # generation continues from the right edge of every row
        self.info = info
        self.device = device
        vocab = self.tokenizer.get_vocab()
        self.bad_words_ids = [[vocab[t]] for t in BANNED_TOKENS if t in vocab]

    @classmethod
    def load(
        cls, checkpoint: str | Path, device: str = "cpu", dtype: str = "float32", revision: str | None = None,
        name: str | None = None,
    ) -> IdeficsModel:
        """Load processor and weights; `name` is how results refer to it (default: the checkpoint)."""
        import torch
        import transformers
        from transformers import IdeficsForVisionText2Text, IdeficsProcessor

        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype '{dtype}' (choose from {', '.join(DTYPES)})")
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        try:
            processor = IdeficsProcessor.from_pretrained(str(checkpoint), revision=revision)
            model = IdeficsForVisionText2Text.from_pretrained(
                str(checkpoint), revision=revision, dtype=getattr(torch, dtype)
            )
        except (OSError, ValueError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
            raise EvalsError(f"cannot load IDEFICS checkpoint '{checkpoint}': {reason}") from None
        model = model.to(device).eval()
        name = name or str(checkpoint)
        prompt_format = "idefics-instruct" if "instruct" in name.lower() else "idefics"
        info = ModelInfo(name, "idefics", checkpoint_revision(str(checkpoint), model), dtype, prompt_format)
        return cls(model, processor, info, device)

    def encode(self, prompts: Sequence[Prompt]):
        """Processor inputs for a batch: text as given (no automatic end-of-utterance), images decoded once."""
        items = [
            [s.text if isinstance(s, TextSegment) else load_image(s.image) for s in prompt.segments]
            for prompt in prompts
        ]
        inputs = self.processor(text=items, add_end_of_utterance_token=False, return_tensors="pt")
        return inputs.to(self.device)

    def embed_images(self, images):
        """Pooled vision-tower features of decoded images (the vision-tower RICES embedder)."""
        import torch

        pixels = self.processor.image_processor(images, return_tensors="pt")
        pixels = getattr(pixels, "pixel_values", pixels).to(self.device, self.model.dtype)
        with torch.inference_mode():
            pooled = self.model.model.vision_model(pixels).pooler_output
        return pooled.float().cpu().numpy()

    def stop_token_ids(self, stop_sequences: Sequence[str]) -> list[int]:
        """End-of-sequence plus every format stop string that is a single token (others are cut later)."""
        ids = [self.tokenizer.eos_token_id]
        for stop in stop_sequences:
            encoded = self.tokenizer.encode(stop, add_special_tokens=False)
            if len(encoded) == 1 and encoded[0] not in ids:
                ids.append(encoded[0])
        return ids

    def generate(self, prompts: Sequence[Prompt], params: GenerationParams) -> list[str]:
        import torch

        inputs = self.encode(prompts)
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

    def score(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        """Summed log-likelihood of each candidate's tokens after its prompt.

        Candidate tokens are appended to the prompt's token ids (not re-tokenised with it), so the
        prompt is exactly the one `generate` would see; they attend to the prompt's last image.
        """
        import torch

        scores = []
        for prompt, options in zip(prompts, candidates):
            base = self.encode([prompt])
            row = []
            for option in options:
                ids = self.tokenizer.encode(option, add_special_tokens=False)
                if not ids:
                    raise ConfigError(f"candidate {option!r} encodes to no tokens")
                extra = torch.tensor([ids], device=self.device)
                input_ids = torch.cat([base["input_ids"], extra], dim=1)
                last_mask = base["image_attention_mask"][:, -1:, :].expand(-1, len(ids), -1)
                with torch.inference_mode():
                    logits = self.model(
                        input_ids=input_ids,
                        attention_mask=torch.cat([base["attention_mask"], torch.ones_like(extra)], dim=1),
                        pixel_values=base["pixel_values"],
                        image_attention_mask=torch.cat([base["image_attention_mask"], last_mask], dim=1),
                    ).logits
                log_probs = torch.log_softmax(logits[0, -len(ids) - 1 : -1].float(), dim=-1)
                row.append(float(log_probs.gather(1, extra[0].unsqueeze(1)).sum()))
            scores.append(row)
        return scores
