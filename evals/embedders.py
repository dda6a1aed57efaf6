"""Image embedders for RICES (Yang et al. 2021): batched, no gradients, L2-normalised rows.

`clip` (transformers CLIP, hub id or local folder; OpenFlamingo used ViT-L/14, m4 ViT-B/32), the
evaluated model's own vision tower, and `offline`, a weight-free pixel embedding for the demo suite.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from evals.errors import ConfigError, EvalsError
from evals.images import load_image
from evals.models.compat import clip_image_features
from evals.records import ImageRef
from evals.registry import EMBEDDERS

if TYPE_CHECKING:  # numpy is imported where it is used: `evals score` and `evals --help` load this module, never use it
    import numpy as np

DEFAULT_CLIP = "openai/clip-vit-large-patch14"
OnBatch = Callable[[int], None]


class Embedder(Protocol):
    name: str
    fingerprint: str  # changes whenever the vectors could change (weights, preprocessing)

    def embed(self, images: Sequence[ImageRef], on_batch: OnBatch | None = None) -> np.ndarray: ...


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    import numpy as np

    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def embed_in_batches(images: Sequence[ImageRef], batch_size: int, encode, on_batch: OnBatch | None) -> np.ndarray:
    import numpy as np

    rows = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        rows.append(encode([load_image(ref) for ref in batch]))
        if on_batch:
            on_batch(len(batch))
    return l2_normalize(np.concatenate(rows)) if rows else np.zeros((0, 0), np.float32)


class PixelEmbedder:
    """A centred 8x8 RGB thumbnail: needs no weights, so RICES runs offline on the demo suite.
    Images that look alike (same colours in the same places) get similar vectors."""

    name = "offline"
    fingerprint = "offline-pixels-8x8-v1"

    def embed(self, images: Sequence[ImageRef], on_batch: OnBatch | None = None) -> np.ndarray:
        import numpy as np

        def encode(batch):
            return np.stack([np.asarray(im.resize((8, 8)), np.float32).ravel() / 255.0 - 0.5 for im in batch])

        return embed_in_batches(images, 64, encode, on_batch)


def weights_digest(folder: Path) -> str:
    """A short hash of a local checkpoint's weight files: its revision when it has no hub commit."""
    digest = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    for path in files:
        digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()[:16] if files else "unknown"


class ClipEmbedder:
    """CLIP image features (`get_image_features`: projected, then L2-normalised) via transformers."""

    def __init__(self, checkpoint: str, device: str = "cpu", batch_size: int = 32) -> None:
        import transformers
        from transformers import AutoImageProcessor, CLIPModel

        transformers.utils.logging.disable_progress_bar()
        try:
            self.processor = AutoImageProcessor.from_pretrained(checkpoint)
            self.model = CLIPModel.from_pretrained(checkpoint).to(device).eval()
        except (OSError, ValueError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
            raise EvalsError(f"cannot load CLIP checkpoint '{checkpoint}': {reason}") from None
        self.name, self.device, self.batch_size = checkpoint, device, batch_size
        revision = getattr(self.model.config, "_commit_hash", None)
        local = Path(checkpoint)
        self.fingerprint = f"clip:{checkpoint}@{revision or weights_digest(local)}"

    def embed(self, images: Sequence[ImageRef], on_batch: OnBatch | None = None) -> np.ndarray:
        import torch

        def encode(batch):
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                features = clip_image_features(self.model, pixels)
            return features.float().cpu().numpy()

        return embed_in_batches(images, self.batch_size, encode, on_batch)


class VisionTowerEmbedder:
    """The evaluated model's own vision encoder (pooled output), for RICES without a second model."""

    def __init__(self, model) -> None:
        if not hasattr(model, "embed_images"):
            raise ConfigError(f"model '{model.info.id}' has no vision tower to embed with; use --embedder offline or clip")
        self.model = model
        self.name = f"vision-tower:{model.info.id}"
        self.fingerprint = f"vision-tower:{model.info.id}@{model.info.revision}:{model.info.dtype}"

    def embed(self, images: Sequence[ImageRef], on_batch: OnBatch | None = None) -> np.ndarray:
        return embed_in_batches(images, 32, self.model.embed_images, on_batch)


EMBEDDERS.add("offline", lambda model, device: PixelEmbedder())
EMBEDDERS.add("clip", lambda model, device: ClipEmbedder(DEFAULT_CLIP, device))
EMBEDDERS.add("clip-vit-b32", lambda model, device: ClipEmbedder("openai/clip-vit-base-patch32", device))
EMBEDDERS.add("vision-tower", lambda model, device: VisionTowerEmbedder(model))


def resolve_embedder(spec: str, model=None, device: str = "cpu") -> Embedder:
    """A registered embedder name, else a CLIP checkpoint folder or hub id; otherwise did-you-mean."""
    if spec in EMBEDDERS:
        return EMBEDDERS.get(spec)(model, device)
    if Path(spec).is_dir() or "/" in spec:
        return ClipEmbedder(spec, device)
    return EMBEDDERS.get(spec)
