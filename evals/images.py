"""Image loading: each image decoded once per run (from a file or a Hugging Face dataset row), and a
missing or corrupt image named in one clear line."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from evals.errors import DataError
from evals.records import ImageRef, StoredImage


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


@lru_cache(maxsize=512)
def _decode_stored(stored: StoredImage):
    from PIL import Image

    from tasks.hf import open_split

    try:
        value = open_split(stored.location, stored.split)[stored.row][stored.column]
    except (IndexError, KeyError) as error:
        raise DataError(f"{stored.location} [{stored.split}] row {stored.row}: no image column '{stored.column}' ({error})") from None
    if not isinstance(value, Image.Image):
        raise DataError(f"{stored.location} [{stored.split}] row {stored.row}: column '{stored.column}' is not an image")
    return value.convert("RGB")


def load_image(ref: ImageRef):
    """The decoded RGB image for `ref` (a PIL image shared by every prompt that shows it)."""
    if ref.stored is not None:
        return _decode_stored(ref.stored)
    if ref.path is None:
        raise DataError(f"image {ref.id}: neither a file nor a dataset row to read it from")
    return _decode(Path(ref.path))
