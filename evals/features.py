"""On-disk cache of image features for RICES, keyed by (embedder, dataset, split, data fingerprint).

Stored as safetensors (reading one executes nothing, unlike pickle), with the key, the example ids and a
checksum of the vectors (with the key and ids) in its metadata. A file whose key, ids, shape or checksum disagree
with what is asked for, or that cannot be read, is rebuilt with a warning and counted in the cells' records, never
used. A cache path that cannot be a file (a folder there, or a file where a folder is due) is the user's
--cache-dir to fix: one line naming the path, exit 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import warnings
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evals.embedders import Embedder, OnBatch
from evals.errors import ConfigError, IntegrityWarning
from evals.records import Example
from results.store import file_safe

if TYPE_CHECKING:  # numpy is imported where it is used: `evals score` and `evals --help` load this module, never use it
    import numpy as np

FORMAT_VERSION = "1"
DEFAULT_CACHE_DIR = Path(os.environ.get("EVALS_CACHE_DIR", Path.home() / ".cache" / "evals" / "features"))


class FeatureCacheWarning(IntegrityWarning):
    """A cached feature file was stale or unreadable and is being rebuilt."""


class StaleCache(Exception):
    """A cache file that does not match what it should hold (raised and handled inside this module)."""


@dataclass(frozen=True)
class FeatureTable:
    """One L2-normalised row per example, in the given example order."""

    ids: tuple[str, ...]
    matrix: np.ndarray
    fingerprint: str
    path: Path
    rejected: bool = False  # a cache file was there but did not verify, so these features were recomputed


def cache_key(embedder: Embedder, dataset: str, split: str, data_fingerprint: str, n: int) -> dict[str, str]:
    return {"format": FORMAT_VERSION, "embedder": embedder.fingerprint, "dataset": dataset, "split": split,
            "data_fingerprint": data_fingerprint, "n": str(n)}


def cache_path(cache_dir: Path, key: dict[str, str]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    embedder = file_safe(key["embedder"])[:80]
    return Path(cache_dir) / embedder / f"{key['dataset']}-{key['split']}-{digest}.safetensors"


def read_cached(path: Path, key: dict[str, str], ids: Sequence[str]) -> np.ndarray:
    import numpy as np
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
            matrix = handle.get_tensor("features")
    except Exception as error:  # a truncated or foreign file fails in many ways; all mean "rebuild"
        raise StaleCache(f"unreadable ({error.__class__.__name__})") from None
    for field, value in key.items():
        if metadata.get(field) != value:
            raise StaleCache(f"{field} is {metadata.get(field)!r}, expected {value!r}")
    if json.loads(metadata.get("ids", "[]")) != list(ids):
        raise StaleCache("example ids differ")
    if matrix.ndim != 2 or matrix.shape[0] != len(ids) or not np.isfinite(matrix).all():
        raise StaleCache(f"features have shape {matrix.shape} or non-finite values")
    if "checksum" not in metadata:
        raise StaleCache("no checksum (written by an older evals)")
    if metadata["checksum"] != checksum(key, ids, matrix):
        raise StaleCache("checksum does not match its features")
    return matrix


def checksum(key: dict[str, str], ids: Sequence[str], matrix: np.ndarray) -> str:
    """What the file's vectors must hash to, with the protocol they were computed under (embedder, data fingerprint)
    and the ids of their rows: altered vectors under intact metadata do not verify."""
    import numpy as np

    digest = hashlib.sha256(json.dumps([key, list(ids)], sort_keys=True).encode())
    digest.update(np.ascontiguousarray(matrix, dtype=np.float32).tobytes())
    return "sha256:" + digest.hexdigest()


def compute(embedder: Embedder, examples: Sequence[Example], on_batch: OnBatch | None) -> np.ndarray:
    """Embed each distinct image once; an example's row is its first image's vector."""
    images = {}
    for example in examples:
        images.setdefault(example.images[0].id, example.images[0])
    vectors = embedder.embed(list(images.values()), on_batch)
    row_of = {image_id: n for n, image_id in enumerate(images)}
    return vectors[[row_of[e.images[0].id] for e in examples]]


def write_cached(path: Path, key: dict[str, str], ids: Sequence[str], matrix: np.ndarray) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    # Its own temporary name: the processes of a node whose --cache-dir rank 0 does not fill (another node's folder)
    # all miss and write at once; one shared name would let them truncate each other's file, or replace it away.
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(6)}.tmp")
    metadata = {**key, "ids": json.dumps(list(ids)), "checksum": checksum(key, ids, matrix)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"features": np.ascontiguousarray(matrix, dtype=np.float32)}, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    except OSError as error:
        with suppress(OSError):  # a partial file of ours is not left behind (where there is a folder to hold one)
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write the RICES feature cache ({error.strerror or error}); "
                          "fix the path or pass another --cache-dir") from None


def load_or_build(
    embedder: Embedder, dataset: str, split: str, examples: Sequence[Example], data_fingerprint: str,
    cache_dir: Path = DEFAULT_CACHE_DIR, on_batch: OnBatch | None = None,
) -> FeatureTable:
    """The examples' features from the cache, computing and storing them on a miss or a stale file."""
    key = cache_key(embedder, dataset, split, data_fingerprint, len(examples))
    path = cache_path(cache_dir, key)
    ids = [e.id for e in examples]
    fingerprint = "sha256:" + path.stem.rsplit("-", 1)[-1]
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder where the RICES feature cache file goes; remove it or pass another --cache-dir")
    found = path.exists()
    if found:
        try:
            return FeatureTable(tuple(ids), read_cached(path, key, ids), fingerprint, path)
        except StaleCache as reason:
            warnings.warn(f"feature cache {path}: {reason}; rebuilding", FeatureCacheWarning, stacklevel=2)
    matrix = compute(embedder, examples, on_batch)
    write_cached(path, key, ids, matrix)
    return FeatureTable(tuple(ids), matrix, fingerprint, path, rejected=found)
