"""Train the bundled tiny IDEFICS (evals/models/tiny_idefics) from scratch on the demo suite's train splits.

The model is transformers' IdeficsForVisionText2Text at toy width (CLIP-style vision tower, perceiver
resampler, gated cross-attention into a Llama-style decoder), with a byte-level BPE tokenizer trained on
the demo text. It learns from interleaved multi-example sequences rendered by the harness itself (the
bundled `idefics` templates, `prompts.formats.render`, the IDEFICS processor), so what it trains on is
exactly what `evals run` shows it: k demonstrations (k from SHOT_COUNTS, Flamingo's two text-only
demonstrations for zero-shot generation) then a query and its answer, with the language-model loss on
every example's answer tokens. Everything comes from the train splits, without any train example whose picture
an eval split shows (of any demo task: the synthetic scenes come from a small space, so a val picture can be a
train picture drawn again, often with the same question), so nothing `evals run` scores was trained on, not even
its picture.

demo_what asks "What is this?" and means the colour; nothing in the question says so. The model learns
"What is this?" from demo_classify's train images, answered with the colour in half of the episodes and
the shape in the other half (the same property for every example of an episode), so zero-shot it can only
guess which property is meant, and demonstrations tell it: few-shot gain by in-context learning. demo_what's
own train split is its support set at evaluation and is never trained on.

Plain PyTorch on CPU, seeded, one thread count recorded: run twice on one machine, it writes identical
files. It records what it did (settings, data fingerprints, losses, the weights' sha256) in
`training.json` beside the weights; tests/test_assets.py checks the shipped weights against it.

    python scripts/train_tiny_idefics.py [--out DIR] [--steps N] [--mix TASK=SHARE,...]   # ~12 minutes, one thread
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
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
sys.path.insert(0, str(ROOT))  # the checkout's packages, installed or not
sys.path.insert(0, str(ROOT / "scripts" / "demo"))  # the demo scenes' drawing helpers

import tasks  # noqa: F401  (registers the demo tasks)
from evals.images import load_image
from evals.records import Example, ImageRef, Segment, TextSegment
from evals.registry import PROMPT_FORMATS, TASKS, suite_tasks
from evals.runner import fingerprint
from prompts.formats import PromptTemplate, merge_text, render
from shapes import BACKGROUND, COLORS

OUT = ROOT / "evals" / "models" / "tiny_idefics"
SPECIAL = ["<unk>", "<s>", "</s>"]
IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>"]
IMAGE_TEXT = "<fake_token_around_image><image><fake_token_around_image>"  # an image between texts, as the processor writes it
FORMAT = "idefics"
# The words of the other formats, so that their prompts tokenise into words too.
FORMAT_WORDS = [
    "Question: Short answer: Answer: Caption: Output: User: Assistant: Image: Description of the image:",
    "Instruction: provide an answer to the question. Use the image to answer.",
    "<|endofchunk|> <end_of_utterance> a photo of a Sentiment: positive negative Is it hateful? yes no",
]
WHAT_IS_THIS = "What is this?"
# Task: share of the training episodes. demo_match (Winoground) has no train split: it is evaluated zero-shot only.
TASK_MIX = {"demo_vqa": 0.35, "demo_caption": 0.15, "demo_classify": 0.1, "demo_memes": 0.15, "demo_dialog": 0.05, "demo_what": 0.2}
CAPTION_TASKS = {"demo_caption"}  # the query's answer is any of its five references, not always the one shots show
SHOT_COUNTS = (0, 0, 1, 2, 4, 4, 6, 8)
# Train pictures that are an eval picture are left out (see shown_in): compared on the demo pictures' 48-pixel grid,
# up to a shift of three pixels, by the worst 3x3 window's mean difference.
COMPARE_SIZE = 48
MAX_SHIFT = 2  # with the tolerance, a shape moved by up to three pixels on a 48-pixel canvas is still the same picture
SAME_PICTURE_MAX_DIFFERENCE = 100
COLOUR_COUNT_TOLERANCE = 300  # pixels; a sound first cut on the demo sets: the pools are the same without it
THUMBNAIL_TOLERANCE = 160  # an 8x8 block shifted by 3 pixels changes at most 39 of its 64 pixels: 39/64 * 255 < 160


@dataclass(frozen=True)
class Settings:
    seed: int = 0
    steps: int = 2000
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    threads: int = 1  # one thread: the same float order on every machine, and no stalls when the cores are shared
    base_vocab: int = 1024
    image_size: int = 48
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    vision_width: int = 64
    vision_layers: int = 2
    latents: int = 8
    task_mix: dict[str, float] = field(default_factory=lambda: dict(TASK_MIX))
    shot_counts: tuple[int, ...] = SHOT_COUNTS


@dataclass(frozen=True)
class Episode:
    """One training sequence: a few-shot prompt as the harness renders it, the query's answer after it, and
    where every answer (each demonstration's and the query's) sits in its text form."""

    segments: tuple[Segment, ...]
    answer_spans: tuple[tuple[int, int], ...]

    @property
    def text(self) -> str:
        """The text the IDEFICS processor tokenises: each image as its three tokens."""
        return "".join(s.text if isinstance(s, TextSegment) else IMAGE_TEXT for s in self.segments)


def support_examples(name: str) -> list[Example]:
    task = TASKS.get(name)
    return task.read(task.source(None), task.support_split)


def what_is_this(classify: list[Example]) -> list[list[Example]]:
    """demo_classify's train images asked "What is this?": one pool answered with the colour, one with the shape."""
    def asked(example: Example, answer: str) -> Example:
        return Example(f"{example.id}?{answer}", example.images, {"question": WHAT_IS_THIS}, (answer,))

    names = [(e, e.references[0].split()) for e in classify]  # class names are "<colour> <shape>"
    return [[asked(e, color) for e, (color, _) in names], [asked(e, shape) for e, (_, shape) in names]]


def eval_examples(name: str) -> list[Example]:
    """The split `evals run` scores for a task (its query split)."""
    task = TASKS.get(name)
    return task.read(task.source(None), task.query_split)


def picture(ref: ImageRef) -> np.ndarray:
    """What a model sees of a picture: its pixels on one grid (not its id, file or format)."""
    return np.asarray(load_image(ref).convert("RGB").resize((COMPARE_SIZE, COMPARE_SIZE)), dtype=np.float32)


def eval_pictures() -> np.ndarray:
    """Every picture that any demo eval split scores, whichever task it belongs to (demo_match included)."""
    return np.stack([picture(ref) for name in suite_tasks("demo") for example in eval_examples(name) for ref in example.images])


def thumbnails(pictures: np.ndarray) -> np.ndarray:
    """8x8-pixel block means: a shift by three pixels or compression moves a block's mean by less than
    THUMBNAIL_TOLERANCE, so pictures whose thumbnails differ by more cannot be one picture."""
    n, size = len(pictures), COMPARE_SIZE // 8
    return pictures.reshape(n, size, 8, size, 8, 3).mean(axis=(2, 4))


def colour_counts(pictures: np.ndarray) -> np.ndarray:
    """How many pixels of each picture are nearest each demo colour (background first): a wrapping shift keeps
    them, compression moves only edge pixels, so pictures whose counts differ by more than COLOUR_COUNT_TOLERANCE
    cannot be one picture. A cheap first cut: the window comparison is the costly one."""
    palette = np.array([BACKGROUND, *COLORS.values()], dtype=np.float32)
    nearest = np.abs(pictures[..., None, :] - palette).sum(axis=-1).argmin(axis=-1).reshape(len(pictures), -1)
    return np.stack([(nearest == k).sum(axis=1) for k in range(len(palette))], axis=1)


def worst_window(difference: np.ndarray) -> np.ndarray:
    """The largest mean over 3x3 windows of a stack of difference maps (N, H, W): a thin line of changed pixels,
    as compression or a one-pixel shift leaves along edges, averages out; a changed shape does not."""
    h, w = difference.shape[1] - 2, difference.shape[2] - 2
    return (sum(difference[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9).max(axis=(1, 2))


def shown_in(candidates: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """Which candidate pictures are one of the `shown` pictures: the same scene up to compression (the demo sets
    save scenes as PNG or as JPEG at different qualities) and a shift of up to three pixels each way. Measured on
    the demo sets (worst window at the best shift): re-saved copies under 70, three-pixel shifts under 100, larger
    shifts from 107 up, and a changed shape, even a small triangle for a circle in a three-shape scene, 144 or more."""
    near = np.abs(thumbnails(candidates)[:, None] - thumbnails(shown)[None]).max(axis=(2, 3, 4)) <= THUMBNAIL_TOLERANCE
    near &= np.abs(colour_counts(candidates)[:, None] - colour_counts(shown)[None]).max(axis=2) <= COLOUR_COUNT_TOLERANCE
    return np.array([near[i].any() and is_one_of(candidates[i], shown[near[i]]) for i in range(len(candidates))], dtype=bool)


def is_one_of(candidate: np.ndarray, others: np.ndarray) -> bool:
    """Whether, moved by up to MAX_SHIFT pixels (wrapping round, as the demo sets shift), the candidate differs from
    one of `others` by less than SAME_PICTURE_MAX_DIFFERENCE in every 3x3 window (largest channel). What a
    one-pixel shift leaves is under that, hence three pixels in all."""
    shifts = range(-MAX_SHIFT, MAX_SHIFT + 1)
    return any((worst_window(np.abs(others - np.roll(candidate, (dy, dx), axis=(0, 1))).max(axis=-1))
                < SAME_PICTURE_MAX_DIFFERENCE).any() for dy in shifts for dx in shifts)


def unseen_in_eval(examples: list[Example], eval_set: np.ndarray) -> list[Example]:
    """The train examples whose pictures no eval split shows. The synthetic scenes come from a small space, so a
    val picture can be a train picture drawn again (often with the same question); training on it would reward
    recall, so no scored picture is ever trained on, as with real benchmarks' disjoint image sets."""
    refs = list({ref.path: ref for example in examples for ref in example.images}.values())  # VQA asks 3 per picture
    flagged = shown_in(np.stack([picture(ref) for ref in refs]), eval_set)
    seen = {ref.path for ref, shown in zip(refs, flagged) if shown}
    return [example for example in examples if not any(ref.path in seen for ref in example.images)]


def training_pools(names: list[str]) -> dict[str, list[list[Example]]]:
    """Each task's pools of train examples, without any whose picture an eval split shows; an episode draws all
    its examples from one pool."""
    eval_set = eval_pictures()
    sources = {name: "demo_classify" if name == "demo_what" else name for name in names}  # "What is this?" of classify
    kept = {source: unseen_in_eval(support_examples(source), eval_set) for source in set(sources.values())}
    return {name: what_is_this(kept[source]) if name == "demo_what" else [kept[source]] for name, source in sources.items()}


def corpus(pools: dict[str, list[list[Example]]]) -> list[str]:
    """Every train example filled into its idefics template, and the other formats' words."""
    lines = list(FORMAT_WORDS)
    for name, task_pools in pools.items():
        task = TASKS.get(name)
        template = PROMPT_FORMATS.get(FORMAT).template(task.template)
        for example in (e for pool in task_pools for e in pool):
            for answer in dict.fromkeys((task.shot_answer(example), *example.references)):
                lines.append(render(template, [(example, answer)], example).text)
    return lines


def build_tokenizer(lines: list[str], base_vocab: int) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=base_vocab, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    backend.train_from_iterator(lines, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<unk>",
        padding_side="left", model_max_length=2048,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": IMAGE_TOKENS})
    return tokenizer


def build_config(settings: Settings, base_vocab: int) -> IdeficsConfig:
    return IdeficsConfig(
        vocab_size=base_vocab, additional_vocab_size=len(IMAGE_TOKENS),
        hidden_size=settings.hidden_size, intermediate_size=2 * settings.hidden_size,
        num_hidden_layers=settings.layers, num_attention_heads=settings.heads, max_position_embeddings=2048,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, use_resampler=True,
        vision_config={
            "embed_dim": settings.vision_width, "image_size": settings.image_size, "patch_size": 8,
            "intermediate_size": 2 * settings.vision_width, "num_hidden_layers": settings.vision_layers, "num_attention_heads": 4,
        },
        perceiver_config={
            "use_resampler": True, "resampler_n_latents": settings.latents, "resampler_depth": 1,
            "resampler_n_heads": 4, "resampler_head_dim": 16,
        },
        alpha_type="vector",  # the "float" + "normal" init path of transformers fails on a scalar size
        alpha_initializer="normal", alphas_initializer_range=0.2,
    )


def episode(name: str, pools: list[list[Example]], rng: random.Random, k: int) -> Episode:
    """k random demonstrations and a query from one train pool; zero-shot as the harness renders it."""
    task = TASKS.get(name)
    template = PROMPT_FORMATS.get(FORMAT).template(task.template)
    text_only = k == 0
    if text_only:
        k = task.zero_shot_text_shots
    query, *shots = rng.sample(rng.choice(pools), k + 1)
    answer = rng.choice(query.references) if name in CAPTION_TASKS else task.shot_answer(query)
    examples = [(s, task.shot_answer(s), not text_only) for s in shots] + [(query, answer, True)]
    result = assemble(template, examples)
    expected = render(template, [(s, task.shot_answer(s)) for s in shots], query, text_only_shots=text_only).segments
    if result.segments != merge_text([*expected, TextSegment(template.continuation(answer))]):
        raise AssertionError(f"{name}: the training sequence is not the prompt `evals run` renders")
    return result


def assemble(template: PromptTemplate, examples: list[tuple[Example, str, bool]]) -> Episode:
    """The prompt built example by example (each one's query part, then its answer and the template's closing),
    so that the answers' places are known; `episode` checks the result against `render`."""
    pieces: list[tuple[Segment, bool]] = [(TextSegment(template.prefix), False)]
    for example, answer, with_image in examples:
        opening = render(replace(template, prefix=""), [], example).segments
        pieces += [(s, False) for s in opening if with_image or isinstance(s, TextSegment)]
        pieces.append((TextSegment(template.continuation(answer)), True))
    spans, at = [], 0
    for segment, is_answer in pieces:
        size = len(segment.text) if isinstance(segment, TextSegment) else len(IMAGE_TEXT)
        if is_answer:
            spans.append((at, at + size))
        at += size
    return Episode(merge_text([s for s, _ in pieces]), tuple(spans))


def encode(processor: IdeficsProcessor, episodes: list[Episode], images: dict[str, object]):
    """Processor inputs for a batch of episodes (as IdeficsModel.encode builds them) and their labels: the
    answer tokens of every example, so the loss teaches answering, not the questions' wording."""
    items = [[s.text if isinstance(s, TextSegment) else images[s.image.id] for s in ep.segments] for ep in episodes]
    inputs = processor(text=items, add_end_of_utterance_token=False, return_tensors="pt")
    labels = torch.full_like(inputs["input_ids"], -100)
    for row, ep in enumerate(episodes):
        tokens = processor.tokenizer(ep.text, return_offsets_mapping=True)
        width = len(tokens["input_ids"])
        if inputs["input_ids"][row, -width:].tolist() != tokens["input_ids"]:
            raise AssertionError("the tokenizer and the processor disagree on a training sequence")
        for position, (start, end) in enumerate(tokens["offset_mapping"]):
            if any(start < stop and end > begin for begin, stop in ep.answer_spans):
                labels[row, labels.shape[1] - width + position] = tokens["input_ids"][position]
    return inputs, labels


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every labelled token given the ones before it (over the whole vocabulary, image tokens
    included: transformers' own loss would cut the logits to the base vocabulary and fail)."""
    logits, labels = logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100)


def learning_rate(step: int, settings: Settings) -> float:
    if step < settings.warmup_steps:
        return settings.learning_rate * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return settings.learning_rate * 0.5 * (1 + math.cos(math.pi * progress))


def train(settings: Settings, out: Path) -> dict:
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    rng = random.Random(settings.seed)
    pools = training_pools(list(settings.task_mix))
    images = {ref.id: load_image(ref) for task_pools in pools.values() for pool in task_pools for e in pool for ref in e.images}
    tokenizer = build_tokenizer(corpus(pools), settings.base_vocab)
    model = IdeficsForVisionText2Text(build_config(settings, len(tokenizer) - len(IMAGE_TOKENS)))
    processor = IdeficsProcessor(IdeficsImageProcessorPil(image_size=settings.image_size), tokenizer)
    processor.tokenizer.padding_side = "left"
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                                  lr=settings.learning_rate, betas=(0.9, 0.98))
    names, weights = list(settings.task_mix), list(settings.task_mix.values())
    losses, started = [], time.perf_counter()
    model.train()
    for step in range(settings.steps):
        shots = rng.choice(settings.shot_counts)  # one count a batch: no row pads images it does not have
        batch = [episode(n, pools[n], rng, shots) for n in rng.choices(names, weights, k=settings.batch_size)]
        inputs, labels = encode(processor, batch, images)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings)
        loss = next_token_loss(model(**inputs).logits, labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == settings.steps - 1:
            recent = sum(losses[-50:]) / len(losses[-50:])
            print(f"step {step:5d}  loss {recent:.4f}  lr {learning_rate(step, settings):.2e}  {time.perf_counter() - started:.0f} s", flush=True)
    save(model.eval(), processor, out)
    return {
        "settings": asdict(settings),
        "data": {name: fingerprint(support_examples(name)) for name in sorted({*pools, "demo_classify"} - {"demo_what"})},
        # the pools leave out every train picture these splits show: a changed eval split needs a retrained model
        "eval_data": {name: fingerprint(eval_examples(name)) for name in sorted(suite_tasks("demo"))},
        "train_examples_used": {name: [len(pool) for pool in task_pools] for name, task_pools in pools.items()},
        "parameters": sum(p.numel() for p in model.parameters()),
        "loss_first_50": round(sum(losses[:50]) / len(losses[:50]), 4),
        "loss_last_50": round(sum(losses[-50:]) / len(losses[-50:]), 4),
        "train_seconds": round(time.perf_counter() - started, 1),
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }


def save(model, processor, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(tmp, out, copy_function=shutil.copyfile)
    out.chmod(0o755)  # tempfile makes a private folder; package data must be world-readable


def weights_sha256(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def parse_mix(text: str, parser: argparse.ArgumentParser) -> dict[str, float]:
    """`--mix demo_vqa=1,demo_what=2`: known trainable tasks with finite positive shares, or one usage error."""
    mix = {}
    for pair in text.split(","):
        name, _, share = pair.partition("=")
        try:
            mix[name] = float(share)
        except ValueError:
            parser.error(f"--mix: '{pair}' is not TASK=SHARE")
        if name not in TASK_MIX or not math.isfinite(mix[name]) or mix[name] <= 0:
            parser.error(f"--mix: '{pair}' needs one of {', '.join(TASK_MIX)} and a share above 0")
    return mix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="checkpoint folder (default: the bundled one)")
    parser.add_argument("--steps", type=int, default=Settings.steps)
    parser.add_argument("--mix", help="task shares, e.g. demo_vqa=1,demo_what=2 (default: TASK_MIX; the record names what ran)")
    args = parser.parse_args()
    mix = parse_mix(args.mix, parser) if args.mix else dict(TASK_MIX)
    record = train(Settings(steps=args.steps, task_mix=mix), args.out)
    record["model_safetensors_sha256"] = weights_sha256(args.out)
    (args.out / "training.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}: {record['parameters']:,} parameters, loss {record['loss_first_50']} -> {record['loss_last_50']}")


if __name__ == "__main__":
    main()
