"""Shot selectors: which support examples become the demonstrations for a query.

Selection depends only on (seed, task, query id, support set), never on query order, batch size or
process count: each query draws from its own RNG (PROTOCOL.md, "Shot selection").
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from evals.errors import ConfigError
from evals.records import Example
from evals.registry import SELECTORS


def query_rng(seed: int, task: str, query_id: str) -> random.Random:
    """An RNG private to one query: a stable hash, unlike Python's salted `hash()`."""
    digest = hashlib.sha256(f"{seed}\x1f{task}\x1f{query_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@SELECTORS.register("random")
class RandomSelector:
    """An independent uniform draw of k support examples per query (Flamingo's random shots)."""

    name = "random"

    def __init__(self, task: str, support: Sequence[Example]) -> None:
        self.task = task
        # Sorted so that the file order of the support set cannot change which ids are drawn.
        self.support_ids = sorted(example.id for example in support)
        self._members = set(self.support_ids)

    def select(self, query: Example, k: int, seed: int) -> list[str]:
        own = query.id in self._members  # support and queries from one split: never a query's own shot
        available = len(self.support_ids) - own
        if k > available:
            raise ConfigError(f"{k} shots requested for task '{self.task}' but its support set has {available}")
        # Draw k+1 indices (O(k), no copy of a large pool) and drop the query, or else the last draw:
        # either way the k kept are a uniform sample of the support set without the query.
        rng = query_rng(seed, self.task, query.id)
        drawn = rng.sample(range(len(self.support_ids)), min(k + 1, len(self.support_ids)))
        return [self.support_ids[i] for i in drawn if self.support_ids[i] != query.id][:k]
