"""Shot selectors: which support examples become the demonstrations for a query.

Selection depends only on (seed, task, query id, support set), never on query order, batch size or
process count: each random draw has its own RNG (PROTOCOL.md, "Shot selection"); RICES re-ranks its
candidates exactly (see evals/rices.py).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from evals.errors import ConfigError
from evals.records import Example
from evals.registry import SELECTORS


@dataclass(frozen=True)
class ShotChoice:
    """The shots for one query, in prompt order, with their similarity to it where the selector has one."""

    ids: tuple[str, ...]
    similarities: tuple[float, ...] = ()
    requested: int | None = None  # set when shots were dropped to fit the context (evals.context): how many were chosen


@dataclass(frozen=True)
class RicesOptions:
    embedder: str = "auto"  # auto: the offline embedder for bundled demo data, CLIP ViT-L/14 otherwise
    cache_dir: Path | None = None  # None: $EVALS_CACHE_DIR or ~/.cache/evals/features
    order: Literal["ascending", "descending"] = "ascending"  # ascending: most similar right before the query
    dedup_images: bool = False
    index: Literal["exact", "ivf"] = "exact"
    device: str = "cpu"


@dataclass(frozen=True)
class SelectionContext:
    """What a selector may build itself from: one task's data, the model, and the run's options."""

    task: str
    support_split: str
    query_split: str
    support: Sequence[Example]
    queries: Sequence[Example]
    support_fingerprint: str
    query_fingerprint: str
    bundled_data: bool = False
    model: Any = None
    rices: RicesOptions = field(default_factory=RicesOptions)
    on_batch: Callable[[int], None] | None = None  # progress while embedding images


class Selector(Protocol):
    name: str

    def select_many(self, queries: Sequence[Example], k: int, seed: int) -> list[ShotChoice]: ...

    def describe(self) -> dict[str, Any]:
        """What a result must record about this selection beyond its name."""
        ...


def query_rng(seed: int, task: str, query_id: str) -> random.Random:
    """An RNG private to one query: a stable hash, unlike Python's salted `hash()`."""
    digest = hashlib.sha256(f"{seed}\x1f{task}\x1f{query_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class RandomSelector:
    """An independent uniform draw of k support examples per query (Flamingo's random shots)."""

    name = "random"

    def __init__(self, task: str, support: Sequence[Example]) -> None:
        self.task = task
        # Sorted so that the file order of the support set cannot change which ids are drawn.
        self.support_ids = sorted(example.id for example in support)
        self._members = set(self.support_ids)

    def select(self, query: Example, k: int, seed: int) -> list[str]:
        own = query.source_id in self._members  # support and queries share examples: never a query's own shot
        available = len(self.support_ids) - own
        if k > available:
            raise ConfigError(f"{k} shots requested for task '{self.task}' but its support set has {available}")
        # Draw k+1 indices (O(k), no copy of a large pool) and drop the query, or else the last draw:
        # either way the k kept are a uniform sample of the support set without the query.
        rng = query_rng(seed, self.task, query.id)
        drawn = rng.sample(range(len(self.support_ids)), min(k + 1, len(self.support_ids)))
        return [self.support_ids[i] for i in drawn if self.support_ids[i] != query.source_id][:k]

    def select_many(self, queries: Sequence[Example], k: int, seed: int) -> list[ShotChoice]:
        return [ShotChoice(tuple(self.select(query, k, seed))) for query in queries]

    def describe(self) -> dict[str, Any]:
        return {}


SELECTORS.add("random", lambda context: RandomSelector(context.task, context.support))
