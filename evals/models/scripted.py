"""A model with fixed answers: runs the whole pipeline in tests without weights, and records what it saw."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from evals.models.base import ModelInfo
from evals.records import GenerationParams, Prompt


class ScriptedModel:
    """Answers from `answers` (a function of the prompt, or a map from the prompt's last text
    segment to an answer), else `default`; scores candidates by `candidate_scores(prompt, candidate)`,
    else by minus their length in characters (`mean`: minus 1 per character, so all tie)."""

    def __init__(
        self,
        answers: Callable[[Prompt], str] | Mapping[str, str] | None = None,
        default: str = "yes",
        prompt_format: str = "idefics",
        candidate_scores: Callable[[Prompt, str], float] | None = None,
    ) -> None:
        self.answers = answers or {}
        self.candidate_scores = candidate_scores
        self.default = default
        self.info = ModelInfo("scripted", "scripted", "fixed", "none", prompt_format)
        self.seen: list[Prompt] = []
        self.batch_sizes: list[int] = []

    def answer(self, prompt: Prompt) -> str:
        if callable(self.answers):
            return self.answers(prompt)
        last_text = prompt.text.rsplit("<image>", 1)[-1]
        return self.answers.get(last_text, self.default)

    def generate(self, prompts: Sequence[Prompt], params: GenerationParams) -> list[str]:
        self.seen.extend(prompts)
        self.batch_sizes.append(len(prompts))
        return [self.answer(p) for p in prompts]

    def score(
        self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]], reduction: str = "sum"
    ) -> list[list[float]]:
        self.seen.extend(prompts)
        self.batch_sizes.append(len(prompts))
        if self.candidate_scores is not None:
            return [[self.candidate_scores(p, c) for c in options] for p, options in zip(prompts, candidates)]
        return [[-1.0 if reduction == "mean" else -float(len(c)) for c in options] for options in candidates]
