"""RICES shot selection (Yang et al. 2021; Flamingo, OpenFlamingo, IDEFICS): the support examples whose
images are most similar to the query's, by cosine similarity of cached image embeddings.

faiss finds candidates (exact inner product by default, IVF for very large support sets); the
candidates are then re-scored in float64 and ordered by (similarity, id). When the weakest candidate
ties the k-th shot, the search widens until no unseen example can tie: so the chosen shots depend
neither on how queries were batched for the search nor on the order of the support file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evals.embedders import resolve_embedder
from evals.errors import ConfigError
from evals.features import DEFAULT_CACHE_DIR, load_or_build
from evals.records import Example
from evals.registry import SELECTORS
from evals.selection import RicesOptions, SelectionContext, ShotChoice

if TYPE_CHECKING:  # numpy is imported where it is used: `evals score` and `evals --help` load this module, never use it
    import numpy as np

TIE_MARGIN = 8  # extra candidates, so near-ties at the k-th place are decided by the exact re-score
TIE_TOLERANCE = 1e-5  # float32 search error bound for unit vectors: closer than this counts as a tie


def build_index(matrix: np.ndarray, kind: str):
    import faiss
    import numpy as np

    dim = matrix.shape[1]
    if kind == "exact":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        lists = max(1, min(int(4 * np.sqrt(len(matrix))), len(matrix) // 39 or 1))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(matrix)
        index.nprobe = min(lists, 16)
    else:
        raise ConfigError(f"unknown RICES index '{kind}' (choose exact or ivf)")
    index.add(matrix)
    return index


class RicesSelector:
    name = "rices"
    cache_rejections = 0  # feature cache files that did not verify and were recomputed (the cells' records count them)

    def __init__(
        self, support_ids: Sequence[str], support: np.ndarray, query_vectors: dict[str, np.ndarray],
        options: RicesOptions = RicesOptions(), support_images: Sequence[str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        import numpy as np

        order = sorted(range(len(support_ids)), key=lambda i: support_ids[i])  # canonical: file order never matters
        self.support_ids = [support_ids[i] for i in order]
        self.support = np.ascontiguousarray(np.asarray(support, dtype=np.float32)[order])
        self.query_vectors = query_vectors
        self.options = options
        images = list(support_images) if support_images is not None else list(support_ids)
        self.support_images = [images[i] for i in order]
        self.details = details or {}
        self.members = set(self.support_ids)
        self.index = build_index(self.support, options.index)

    def select_many(self, queries: Sequence[Example], k: int, seed: int) -> list[ShotChoice]:
        """Top-k per query; `seed` is unused (RICES is deterministic), accepted for a uniform protocol."""
        import numpy as np

        if k == 0 or not queries:
            return [ShotChoice(()) for _ in queries]
        if k > len(self.support_ids) - any(q.source_id in self.members for q in queries):
            raise ConfigError(f"{k} RICES shots requested but the support set has {len(self.support_ids)} examples")
        vectors = np.stack([self.query_vectors[q.id] for q in queries]).astype(np.float32)
        wanted = min(len(self.support_ids), k + 1 + TIE_MARGIN + (k if self.options.dedup_images else 0))
        similarities, candidates = self.index.search(vectors, wanted)
        return [self.choose(q, vectors[n], similarities[n], candidates[n], k) for n, q in enumerate(queries)]

    def choose(self, query: Example, vector: np.ndarray, found: np.ndarray, candidates: np.ndarray, k: int) -> ShotChoice:
        import numpy as np

        while True:
            ranked = self.rank(query, vector, candidates)
            exhausted = len(candidates) >= len(self.support_ids)
            weakest = float(found[candidates >= 0].min()) if (candidates >= 0).any() else -np.inf
            if exhausted or (len(ranked) >= k and weakest < ranked[k - 1][0] - TIE_TOLERANCE):
                break
            # Too few after filtering, or an unseen example could tie the k-th shot: widen the search.
            found, candidates = (a[0] for a in self.index.search(vector[None], min(2 * len(candidates), len(self.support_ids))))
        if len(ranked) < k:
            raise ConfigError(f"query {query.id}: only {len(ranked)} RICES shots with distinct images, {k} requested")
        top = ranked[:k]
        if self.options.order == "ascending":
            top.reverse()  # most similar last, right before the query
        return ShotChoice(tuple(self.support_ids[i] for _, i in top), tuple(round(s, 6) for s, _ in top))

    def rank(self, query: Example, vector: np.ndarray, candidates: np.ndarray) -> list[tuple[float, int]]:
        """Candidates by exact similarity (float64), ties by support id; without the query and,
        optionally, without a second shot showing an image already chosen."""
        import numpy as np

        rows = [int(i) for i in candidates if i >= 0 and self.support_ids[i] != query.source_id]
        scores = self.support[rows].astype(np.float64) @ vector.astype(np.float64)
        ranked = sorted(zip(scores.tolist(), rows), key=lambda pair: (-pair[0], self.support_ids[pair[1]]))
        if not self.options.dedup_images:
            return ranked
        seen, unique = set(), []
        for score, row in ranked:
            if self.support_images[row] not in seen:
                seen.add(self.support_images[row])
                unique.append((score, row))
        return unique

    def describe(self) -> dict[str, Any]:
        return {**self.details, "order": self.options.order, "index": self.options.index,
                "dedup_images": self.options.dedup_images}


def rices_from_context(context: SelectionContext) -> RicesSelector:
    """Embed (or load from the cache) support and query images, then index the support set."""
    options = context.rices
    spec = options.embedder
    if spec == "auto":
        spec = "offline" if context.bundled_data else "clip"
    embedder = resolve_embedder(spec, context.model, options.device)
    cache_dir = options.cache_dir or DEFAULT_CACHE_DIR
    support = load_or_build(embedder, context.task, context.support_split, context.support,
                            context.support_fingerprint, cache_dir, context.on_batch)
    queries = load_or_build(embedder, context.task, context.query_split, context.queries,
                            context.query_fingerprint, cache_dir, context.on_batch)
    details = {"embedder": embedder.fingerprint, "support_cache": support.fingerprint, "query_cache": queries.fingerprint}
    selector = RicesSelector(
        support.ids, support.matrix, dict(zip(queries.ids, queries.matrix)), options,
        support_images=[e.images[0].id for e in context.support], details=details,
    )
    selector.cache_rejections = support.rejected + queries.rejected
    return selector


SELECTORS.add("rices", rices_from_context)
