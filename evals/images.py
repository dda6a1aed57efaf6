"""Image loading: each image file decoded once per run, and a corrupt file named in one clear line."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from evals.errors import DataError
from evals.records import ImageRef


@lru_cache(maxsize=512)  # shared support images stay decoded; ~0.5 GB at COCO sizes
def _decode(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"{path}: cannot decode image ({error.__class__.__name__}: {error})") from None


def load_image(ref: ImageRef):
    """The decoded RGB image for `ref` (a PIL image shared by every prompt that shows it)."""
    return _decode(Path(ref.path))
