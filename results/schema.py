"""The versioned result schema: one record per cell that carries the whole protocol that produced it."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

SCHEMA_VERSION = 2  # 2: ranked tasks (kind, loglik), metric variants by name


def package_versions() -> dict[str, str]:
    """Versions that can change a number, read without importing the (heavy) packages."""
    versions = {"python": platform.python_version()}
    for name in ("evals", "torch", "transformers", "tokenizers", "pillow", "pycocoevalcap", "scikit-learn", "datasets"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass(frozen=True)
class Protocol:
    """Everything that decides a cell's numbers; two results are comparable when these agree."""

    model: str
    model_family: str
    model_revision: str
    dtype: str
    task: str
    support_split: str
    query_split: str
    support_fingerprint: str
    query_fingerprint: str
    n_queries: int
    shots: int
    selection: str
    selection_details: dict[str, Any]
    seed: int
    zero_shot: str
    prompt_format: str
    template: str
    template_hash: str
    kind: str  # generate | rank
    generation: dict[str, Any]  # decoding settings (generative tasks)
    loglik: str  # ranked tasks: how candidate token log-probabilities are reduced (sum | mean)
    candidate_text: str  # ranked tasks: what is scored after the query (the answer, and the template's closing?)
    metric: str  # the metric function, or the peers' variant chosen by name
    postprocess: str
    versions: dict[str, str] = field(default_factory=package_versions)

    def comparable(self) -> dict[str, Any]:
        """The fields that decide a cell's numbers: two results belong in one column when these agree
        (package versions are provenance, shown but not compared; the seed is what a sweep varies)."""
        return {k: v for k, v in asdict(self).items() if k not in NOT_COMPARED}


NOT_COMPARED = frozenset({"versions", "seed"})


@dataclass(frozen=True)
class CellResult:
    task: str
    shots: int
    selection: str
    seed: int
    scores: dict[str, float]
    breakdowns: dict[str, dict[str, float]]
    protocol: Protocol
    timing: dict[str, float]
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
