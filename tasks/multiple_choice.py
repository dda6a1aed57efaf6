"""Parts shared by the generative multiple-choice tasks (MMMU, MMBench, MathVista): lettered options, the
accuracy result with a breakdown, image bytes held inside a data file written once to a cache folder, and the
answer-line postprocess they share with DocVQA. Registers no task."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from evals.errors import DataError
from evals.records import Example
from metrics.choice import LETTERS
from tasks.base import MetricResult

# Images embedded in a data file (MMBench's base64 column) are written here once, keyed by the file's content.
IMAGE_CACHE = Path(os.environ.get("EVALS_CACHE_DIR", Path.home() / ".cache" / "evals")) / "embedded-images"


# A leading label the model may repeat ("Answer: A"), and a line opening a new turn: a turn label with its colon
# ("Question: ...", "User: ..."), as the formats write them, so answers such as "Questionnaire", "Short term
# loans" or "Image quality" stay.
ANSWER_LABEL = re.compile(r"^(?:short\s+)?answer\s*:\s*", re.IGNORECASE)
NEW_TURN = re.compile(r"^(?:Question|Short answer|Answer|Caption|Output|User|Assistant|Image)\s*:")


def answer_line(output: str, extra_stops: Sequence[str] = ()) -> str:
    """The answer in a generation: its first line (cut at a newline or a format stop string such as
    <end_of_utterance>), without a leading "Answer:" label; empty when that line opens a new turn. Unlike
    tasks.base.cut_at_stop_words, a stop word inside the answer ("Answer: A", "Questionnaire") cuts nothing."""
    ends = [at for at in (output.find(stop) for stop in ("\n", *extra_stops) if stop) if at != -1]
    line = output[: min(ends, default=len(output))].strip()
    line = ANSWER_LABEL.sub("", line, count=1)
    return "" if NEW_TURN.match(line) else line.strip()


def lettered_options(options: Sequence[str]) -> str:
    """The options as the prompts show them: "\n(A) first\n(B) second"."""
    return "".join(f"\n({letter}) {option}" for letter, option in zip(LETTERS, options))


def options_of(example: Example) -> dict[str, str]:
    """{letter: option text} of an example whose meta holds its options, one per line."""
    options = example.meta.get("options", "")
    return dict(zip(LETTERS, options.split("\n"))) if options else {}


def accuracy_result(correct: Mapping[str, bool], examples: Sequence[Example], group_by: str) -> MetricResult:
    """Accuracy (0-100) over the examples, with a breakdown by the meta field `group_by`."""
    per_sample = {e.id: 100.0 if correct[e.id] else 0.0 for e in examples}
    groups: dict[str, list[float]] = {}
    for e in examples:
        groups.setdefault(e.meta.get(group_by) or "unknown", []).append(per_sample[e.id])
    breakdown = {name: sum(scores) / len(scores) for name, scores in sorted(groups.items())}
    return MetricResult({"accuracy": sum(per_sample.values()) / len(examples)}, per_sample, {f"by_{group_by}": breakdown})


def cache_folder(source: Path) -> Path:
    """Where `source`'s embedded images go: named by a hash of its bytes, so an edited file gets fresh images."""
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return IMAGE_CACHE / f"{source.stem}-{digest.hexdigest()[:16]}"


def write_base64_image(folder: Path, name: str, encoded: str, where: str) -> Path:
    """The embedded image as a file (decoded from base64 on first use); `where` names the file and record."""
    path = folder / f"{name}.img"
    if path.is_file():
        return path
    try:
        data = base64.b64decode(encoded, validate=True)
        decodable_image(data)
    except (binascii.Error, ValueError):
        raise DataError(f"{where}: field 'image' is not base64-encoded image data") from None
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")  # renamed into place: a killed run leaves no half image
    partial.write_bytes(data)
    partial.replace(path)
    return path


def decodable_image(data: bytes) -> None:
    """Raise ValueError unless `data` opens as an image (its header read, not the pixels): bytes that decode from
    base64 but hold no image are refused with the record named, not when a prompt first shows them."""
    from PIL import Image, UnidentifiedImageError

    try:
        Image.open(io.BytesIO(data)).close()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(str(error)) from None
