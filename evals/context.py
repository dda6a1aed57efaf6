"""Prompts that fit the model's context, checked for a whole cell before any model call.

A k-shot prompt costs its text tokens plus each image's tokens (an IDEFICS2 image is 64 tokens, 320 with image
splitting; an IDEFICS image only its markers, its pixels going in through cross-attention), plus what follows it:
the tokens to generate, or the longest candidate. A prompt past the model's positions would not fail in
transformers; rotary positions past the trained range give silently wrong numbers. So the cell is refused with the
arithmetic, or, with `--fit-context`, the demonstrations farthest from the query (the first in the prompt) are
dropped one at a time until it fits, and each sample records the shots requested and the shots delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from evals.errors import ConfigError
from evals.execution import Request
from evals.records import GenerationParams, Prompt
from evals.selection import ShotChoice

FIT_CONTEXT = ("refuse", "drop_farthest_shots")  # Protocol.context_fit


class Budget:
    """A model's context as the runner needs it: its limit and the tokens prompts (and what follows them) take."""

    def __init__(self, model, limit: int) -> None:
        self.model, self.limit = model, limit
        self.candidate_tokens: dict[str, int] = {}  # a classification task scores the same candidates for every query

    def tokens(self, candidate: str) -> int:
        if candidate not in self.candidate_tokens:
            self.candidate_tokens[candidate] = self.model.text_tokens(candidate)
        return self.candidate_tokens[candidate]

    def needs(self, requests: Sequence[Request], params: GenerationParams, generate: bool) -> list[int]:
        """Per request, the most tokens any of its prompts needs with the tokens that follow it."""
        prompts = [p for r in requests for p in r.prompts]
        lengths = iter(self.model.prompt_lengths(prompts))
        needs = []
        for request in requests:
            follow = [params.max_new_tokens] * len(request.prompts) if generate else \
                [max((self.tokens(c) for c in options), default=0) for options in request.candidates]
            needs.append(max(next(lengths) + more for more in follow))
        return needs


def model_budget(model) -> Budget | None:
    """The budget of a model that says its context (`context_limit`, `prompt_lengths`, `text_tokens`); None for
    one that does not (the scripted test model), whose prompts are then not checked here."""
    needed = ("context_limit", "prompt_lengths", "text_tokens")
    if not all(callable(getattr(model, name, None)) for name in needed):
        return None
    limit = model.context_limit()
    return Budget(model, limit) if limit is not None else None


def fit_requests(
    requests: Sequence[Request], budget: Budget | None, params: GenerationParams, generate: bool, drop: bool,
    rerender: Callable[[Request, int], Request], where: str,
) -> list[Request]:
    """`requests` unchanged where they fit; where not, refused with the arithmetic, or (`drop`) rebuilt by
    `rerender(request, n)` without its first n shots, the fewest that make it fit."""
    if budget is None:
        return list(requests)
    fitted = list(requests)
    for index, need in enumerate(budget.needs(requests, params, generate)):
        if need <= budget.limit:
            continue
        if not drop:
            raise ConfigError(too_long(requests[index], need, budget, where))
        fitted[index] = fewest_dropped(requests[index], budget, params, generate, rerender, where)
    return fitted


def fewest_dropped(request: Request, budget: Budget, params: GenerationParams, generate: bool,
                   rerender: Callable[[Request, int], Request], where: str) -> Request:
    for dropped in range(1, len(request.shots.ids) + 1):
        smaller = rerender(request, dropped)
        need = budget.needs([smaller], params, generate)[0]
        if need <= budget.limit:
            return smaller
    raise ConfigError(too_long(smaller, need, budget, where) + " (even with every shot dropped)")


def too_long(request: Request, need: int, budget: Budget, where: str) -> str:
    """The arithmetic of a prompt that does not fit, image tokens apart where the model says what an image costs."""
    prompt: Prompt = max(request.prompts, key=lambda p: len(p.images))
    images = len(prompt.images)
    per_image = getattr(budget.model, "image_tokens", None)
    cost = f", {images} images x {per_image()} tokens" if callable(per_image) and images else \
        f", {images} images" if images else ""
    model = getattr(getattr(budget.model, "info", None), "id", "the model")
    return (f"{where}, query {request.query.id}: {len(request.shots.ids)} shots{cost}: the prompt and what follows it "
            f"need {need} tokens, but {model} reads at most {budget.limit}: use fewer shots, or --fit-context to drop "
            f"the shots farthest from the query")


def fewer_shots(choice: ShotChoice, dropped: int) -> ShotChoice:
    """The choice without its first `dropped` shots (farthest from the query, which comes last), remembering how
    many were requested."""
    requested = choice.requested if choice.requested is not None else len(choice.ids)
    return replace(choice, ids=choice.ids[dropped:], similarities=choice.similarities[dropped:], requested=requested)
