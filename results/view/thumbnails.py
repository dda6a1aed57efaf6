"""Images as small embedded JPEG thumbnails: the report opens from disk with no network and stays a few MB."""

from __future__ import annotations

import base64
import io

from evals.errors import DataError
from evals.images import load_image
from evals.records import ImageRef

THUMBNAIL_SIDE = 160  # pixels on the longer side: enough to tell what a demonstration showed
JPEG_QUALITY = 70


def thumbnail_jpeg(ref: ImageRef, side: int = THUMBNAIL_SIDE) -> bytes | None:
    """The image as JPEG bytes, downscaled to `side`; None where it cannot be read (the page says so instead of
    failing the whole report over one missing file)."""
    try:
        image = load_image(ref).copy()
    except DataError:
        return None
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def thumbnail_uri(ref: ImageRef, side: int = THUMBNAIL_SIDE) -> str | None:
    """The thumbnail as a `data:image/jpeg` URI, for the page that embeds its images."""
    jpeg = thumbnail_jpeg(ref, side)
    return None if jpeg is None else "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def image_key(task: str, ref: ImageRef) -> str:
    """The image's key in the report (and its /thumb/ URL served): ids are unique within a task's data, not across
    tasks."""
    return f"{task}/{ref.id}"


class Thumbnails:
    """Each image encoded once per report, however many prompts show it (a support image recurs as a shot)."""

    def __init__(self, side: int = THUMBNAIL_SIDE) -> None:
        self.side = side
        self.uris: dict[str, str | None] = {}

    def key(self, task: str, ref: ImageRef) -> str:
        key = image_key(task, ref)
        if key not in self.uris:
            self.uris[key] = thumbnail_uri(ref, self.side)
        return key

    def table(self) -> dict[str, str]:
        return {key: uri for key, uri in self.uris.items() if uri is not None}
