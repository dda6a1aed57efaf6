"""What the IDEFICS and IDEFICS2 wrappers share: their common state, in-context candidate ids, and candidate scoring
that runs each prompt once and reuses its key/value cache for batched candidate forwards under a token budget.

torch and transformers are imported inside functions only, so commands that need no model stay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from evals.errors import ConfigError
from evals.models.base import LOGLIK_REDUCTIONS, ModelInfo
from evals.models.bigmodel import placement_record

BANNED_TOKENS = ("<image>", "<fake_token_around_image>")
# Tokens (rows x (prompt + candidate)) per candidate forward in `score`: each row holds its own copy of
# its prompt's key/value cache, about 0.5 MB a token for IDEFICS-9B in bfloat16, so 16,384 is ~8 GB.
SCORE_TOKEN_BUDGET = 16_384

Row = tuple[int, list[int]]  # (prompt index in the batch, candidate token ids)


class ProcessorModel:
    """A transformers vision-language model with its processor: the state generation and scoring both need."""

    def __init__(self, model, processor, info: ModelInfo, device: str, score_token_budget: int = SCORE_TOKEN_BUDGET) -> None:
        if score_token_budget < 1:
            raise ConfigError(f"score_token_budget must be a positive number of tokens, not {score_token_budget}")
        self.model = model
        self.score_token_budget = score_token_budget
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"  # generation continues from the right edge of every row
        self.info = info
        self.device = device
        self.placement = placement_record(model, device)  # provenance for the record
        vocab = self.tokenizer.get_vocab()
        self.bad_words_ids = [[vocab[t]] for t in BANNED_TOKENS if t in vocab]

    # The model's context, as the runner checks a cell's prompts against it before any model call (evals.context).

    def context_limit(self) -> int | None:
        """Positions the language model was trained for (a composite config keeps them in its text_config)."""
        config = self.model.config
        text = getattr(config, "text_config", None)
        return getattr(text if text is not None else config, "max_position_embeddings", None)

    def prompt_lengths(self, prompts: Sequence) -> list[int]:
        """Tokens each prompt takes as the processor writes it, each image marker expanded to the image's tokens
        (which the processor knows from its settings, without the pixels), special tokens included."""
        texts = [p.text for p in prompts]
        return [len(ids) for ids in self.processor(text=texts, add_special_tokens=True)["input_ids"]] if texts else []

    def text_tokens(self, text: str) -> int:
        """Tokens a continuation (a candidate) takes after a prompt."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))


def check_request(prompts: Sequence, candidates: Sequence[Sequence[str]], reduction: str) -> None:
    if len(prompts) != len(candidates):
        raise ConfigError(f"score got {len(prompts)} prompts but {len(candidates)} candidate lists (one list per prompt)")
    if reduction not in LOGLIK_REDUCTIONS:
        raise ConfigError(f"unknown log-likelihood reduction '{reduction}' (choose from {', '.join(LOGLIK_REDUCTIONS)})")


def continuation_ids(tokenizer, tail: str, continuation: str) -> list[int]:
    """The ids `continuation` gets when it follows `tail` in one text: encode(tail + continuation) less encode(tail).

    Encoding a candidate alone differs from its in-context ids for SentencePiece tokenizers (LLaMA, so
    IDEFICS-9B/80B), which mark a text's start: " yes" alone is ['▁▁', 'yes'], after "Answer:" it is ['▁yes'].
    """
    before = tokenizer.encode(tail, add_special_tokens=False)
    joined = tokenizer.encode(tail + continuation, add_special_tokens=False)
    if joined[: len(before)] != before:
        raise ConfigError(
            f"candidate {continuation!r} after prompt ending {tail[-30:]!r}: prompt and candidate tokens merge at the "
            "boundary (the template should end the query on a token boundary)"
        )
    if len(joined) == len(before):
        raise ConfigError(f"candidate {continuation!r} encodes to no tokens")
    return joined[len(before) :]


def candidate_ids(tokenizer, tails: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[list[list[int]]]:
    """`continuation_ids` of every prompt's candidates after its tail, each (tail, candidate) pair encoded once."""
    known: dict[tuple[str, str], list[int]] = {}  # ImageNet: the same 1,000 names after every prompt
    ids = []
    for tail, options in zip(tails, candidates):
        for option in options:
            if (tail, option) not in known:
                known[tail, option] = continuation_ids(tokenizer, tail, option)
        ids.append([known[tail, o] for o in options])
    return ids


def reduce(total: float, tokens: int, reduction: str) -> float:
    """m4 sums a candidate's token log-probabilities; OpenFlamingo divides by the candidate's token count."""
    return total / tokens if reduction == "mean" else total


def prefix_scores(
    ids: Sequence[Sequence[list[int]]], last_logits, prompt_length: int, budget: int,
    chunk_log_probs: Callable[[Sequence[Row]], object], reduction: str,
) -> list[list[float]]:
    """Every candidate's reduced log-likelihood from its prompt's last logits (`last_logits[p]`, which score each
    candidate's first token) and `chunk_log_probs`, a batched forward over rows' later tokens after the cached prompts."""
    import torch

    rows = [(p, c) for p, options in enumerate(ids) for c in options]
    first = torch.log_softmax(last_logits.float(), dim=-1)
    totals = first[[p for p, _ in rows], [c[0] for _, c in rows]].cpu()
    totals += rest_log_probs(rows, prompt_length, budget, chunk_log_probs)
    return regroup([reduce(float(t), len(c), reduction) for t, (_, c) in zip(totals, rows)], ids)


def rest_log_probs(rows: Sequence[Row], prompt_length: int, budget: int, chunk_log_probs: Callable[[Sequence[Row]], object]):
    """Summed log-probabilities of every row's tokens after its first (zero for one-token rows).

    Rows are sorted by length so that a chunk pads little; a chunk holds as many rows as keep
    rows x (prompt + candidate) tokens within `budget`, since each row carries a copy of its
    prompt's cache (1,000 ImageNet names must fit in memory).
    """
    import torch

    sums = torch.zeros(len(rows))
    longer = sorted((n for n, (_, c) in enumerate(rows) if len(c) > 1), key=lambda n: len(rows[n][1]))
    for chunk in budget_chunks(longer, [len(c) for _, c in rows], prompt_length, budget):
        sums[chunk] = chunk_log_probs([rows[n] for n in chunk]).cpu()
    return sums


def budget_chunks(order: Sequence[int], lengths: Sequence[int], prompt_length: int, budget: int) -> Iterator[list[int]]:
    """Consecutive runs of `order` (ascending lengths) whose rows x (prompt + longest row) stay within `budget`."""
    chunk: list[int] = []
    for n in order:
        if chunk and (len(chunk) + 1) * (prompt_length + lengths[n]) > budget:
            yield chunk
            chunk = []
        chunk.append(n)
    if chunk:
        yield chunk


@dataclass(frozen=True)
class CandidateBatch:
    """Rows' tokens but the last (`feed`), the tokens each position predicts (`targets`), which are real (`mask`), and
    each row's prompt (`index`): right-padded, so pads come after every real token and none attends to them."""

    feed: object
    targets: object
    mask: object
    index: object

    @property
    def width(self) -> int:
        return self.feed.shape[1]


def candidate_batch(rows: Sequence[Row], pad_token_id: int, device: str) -> CandidateBatch:
    import torch

    width = max(len(c) for _, c in rows) - 1
    return CandidateBatch(
        feed=right_padded([c[:-1] for _, c in rows], width, pad_token_id).to(device),
        targets=right_padded([c[1:] for _, c in rows], width, 0).to(device),
        mask=right_padded([[1] * (len(c) - 1) for _, c in rows], width, 0).to(device),
        index=torch.tensor([p for p, _ in rows], device=device),
    )


def target_log_prob_sums(logits, batch: CandidateBatch):
    """Each row's summed log-probability of its targets, pads excluded."""
    import torch

    logits = logits.float()
    picked = logits.gather(2, batch.targets.unsqueeze(2)).squeeze(2) - torch.logsumexp(logits, dim=-1)
    return (picked * batch.mask).sum(dim=1)


def right_padded(lists: Sequence[Sequence[int]], width: int, fill: int):
    import torch

    return torch.tensor([list(values) + [fill] * (width - len(values)) for values in lists], dtype=torch.long)


def regroup(flat: Sequence[float], shape: Sequence[Sequence]) -> list[list[float]]:
    """Cut `flat` into lists as long as the lists of `shape`."""
    out, start = [], 0
    for options in shape:
        out.append(list(flat[start : start + len(options)]))
        start += len(options)
    return out
