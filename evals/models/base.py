"""The model protocol: batch-level, narrow (generate, score); models never see tasks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from evals.records import GenerationParams, Prompt

# How a candidate's token log-probabilities become its score: m4 (IDEFICS) sums them, OpenFlamingo
# averages them (length-normalised). PROTOCOL.md offers both by name; results record which one ran.
LOGLIK_REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True)
class ModelInfo:
    """What a result must say about the model that produced it."""

    id: str
    family: str
    revision: str
    dtype: str
    prompt_format: str


class Model(Protocol):
    info: ModelInfo

    def generate(self, prompts: Sequence[Prompt], params: GenerationParams) -> list[str]:
        """One continuation per prompt (raw text, special tokens removed)."""
        ...

    def score(
        self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]], reduction: str = "sum"
    ) -> list[list[float]]:
        """Log-likelihood of each candidate continuation given its prompt, summed or averaged
        (`reduction`, one of LOGLIK_REDUCTIONS) over the candidate's tokens."""
        ...
