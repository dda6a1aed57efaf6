"""RICES selection speed: faiss top-k vs full torch similarity + argsort (OpenFlamingo's way).

5,000 queries against a 100,000 x 768 support set (the sizes of a large RICES run), k = 32.
Both paths run in this process on the same vectors; prints JSON with the times, the ratio and
whether the retrieved ids agree.

    python benchmarks/rices_selection.py [--queries 5000] [--support 100000] [--dim 768] [--k 32]
"""

from __future__ import annotations

import argparse
import json
import time

import faiss
import numpy as np
import torch


def normalized(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def torch_argsort_topk(queries: np.ndarray, support: np.ndarray, k: int, batch: int) -> np.ndarray:
    """The reference path: per query batch, the full similarity row, then a full argsort."""
    support_t = torch.from_numpy(support)
    out = []
    for start in range(0, len(queries), batch):
        similarity = torch.from_numpy(queries[start : start + batch]) @ support_t.T
        out.append(similarity.argsort(dim=-1, descending=True)[:, :k].numpy())
    return np.concatenate(out)


def faiss_topk(queries: np.ndarray, support: np.ndarray, k: int) -> np.ndarray:
    index = faiss.IndexFlatIP(support.shape[1])
    index.add(support)
    return index.search(queries, k)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--support", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch", type=int, default=500, help="query batch for the torch path (bounds memory)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    support, queries = normalized(rng, args.support, args.dim), normalized(rng, args.queries, args.dim)

    start = time.perf_counter()
    reference = torch_argsort_topk(queries, support, args.k, args.batch)
    torch_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fast = faiss_topk(queries, support, args.k)
    faiss_seconds = time.perf_counter() - start

    same_sets = float(np.mean([set(a) == set(b) for a, b in zip(reference, fast)]))
    same_order = float(np.mean((reference == fast).all(axis=1)))
    print(json.dumps({
        "benchmark": "rices_selection", "queries": args.queries, "support": args.support, "dim": args.dim, "k": args.k,
        "torch_threads": torch.get_num_threads(), "faiss_threads": faiss.omp_get_max_threads(),
        "torch_argsort_seconds": round(torch_seconds, 3), "faiss_seconds": round(faiss_seconds, 3),
        "speedup": round(torch_seconds / faiss_seconds, 2),
        "same_ids_fraction": same_sets, "same_order_fraction": same_order,
    }, indent=1))


if __name__ == "__main__":
    main()
