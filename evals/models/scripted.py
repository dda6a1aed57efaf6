"""A model with fixed answers: runs the whole pipeline in tests without weights, and records what it saw."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from evals.models.base import ModelInfo
from evals.records import GenerationParams, Prompt


class ScriptedModel:
    """Answers from `answers` (a function of the prompt, or a map from the prompt's last text
    segment to an answer), else `default`; ranks candidates by `candidate_scores`, else by length."""

    def __init__(
        self,
        answers: Callable[[Prompt], str] | Mapping[str, str] | None = None,
        default: str = "yes",
        prompt_format: str = "idefics",
    ) -> None:
        self.answers = answers or {}
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

    def score(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        self.seen.extend(prompts)
        self.batch_sizes.append(len(prompts))
        return [[-float(len(c)) for c in options] for options in candidates]
