"""Per-run cache of IDEFICS image features, so each image goes through the vision tower once.

With 16-32 shots most images in a few-shot prompt are support images that earlier prompts showed
already; IDEFICS accepts their features in place of pixel values, so the vision tower (ViT-H/14 in
IDEFICS-9B, ~630M parameters over 257 tokens an image) runs once per image and run, not once per prompt.
What is kept is what `generate` takes on the installed transformers (evals/models/compat.py): the perceiver's
output (<= 5.23) or the vision tower's (>= 5.24, where generate runs the perceiver itself).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from evals.errors import ConfigError

# IDEFICS-9B in bfloat16: 257 vision tokens x 1280 is 0.66 MB an image (64 perceiver latents: 0.16 MB), so 1 GiB
# holds ~1,600 images, more than the support images a 32-shot sweep of one task touches at a time.
DEFAULT_CACHE_MB = 1024
ENABLE_ENV = "EVALS_FEATURE_CACHE"  # "0", "off", "false" or "no" turns the cache off
SIZE_ENV = "EVALS_FEATURE_CACHE_MB"


@dataclass(frozen=True)
class CacheStats:
    """What the cache did so far: images served from it, images encoded, entries dropped to stay in bounds."""

    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int


class FeatureCache:
    """Least-recently-used map from an image key to its feature tensor, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ConfigError(f"feature cache size must be a positive number of bytes, not {max_bytes}")
        self.max_bytes = max_bytes
        self.entries: OrderedDict[Hashable, object] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = self.evictions = 0

    def get(self, key: Hashable):
        """The cached tensor (now most recently used), or None; counts a hit or a miss."""
        value = self.entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self.entries.move_to_end(key)
        return value

    def put(self, key: Hashable, value) -> None:
        """Keep `value`, dropping the least recently used entries beyond `max_bytes` (a lone oversized one stays out)."""
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return
        if key in self.entries:
            self.bytes -= self.size_of(self.entries.pop(key))
        self.entries[key] = value
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, dropped = self.entries.popitem(last=False)
            self.bytes -= self.size_of(dropped)
            self.evictions += 1

    @staticmethod
    def size_of(value) -> int:
        return value.numel() * value.element_size()

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self.evictions, len(self.entries), self.bytes)


def cache_from_settings(enabled: bool | None, max_bytes: int | None) -> FeatureCache | None:
    """A cache unless turned off; None arguments fall back to EVALS_FEATURE_CACHE / EVALS_FEATURE_CACHE_MB (default on, 1 GiB)."""
    if enabled is None:
        enabled = os.environ.get(ENABLE_ENV, "1").strip().lower() not in ("0", "off", "false", "no")
    if not enabled:
        return None
    if max_bytes is None:
        raw = os.environ.get(SIZE_ENV, str(DEFAULT_CACHE_MB))
        try:
            max_bytes = int(float(raw) * 2**20)
        except ValueError:
            raise ConfigError(f"{SIZE_ENV}={raw!r}: expected a size in megabytes") from None
    return FeatureCache(max_bytes)
