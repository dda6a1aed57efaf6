"""What a task is: a small declaration (data loader, splits, template, decoding, postprocess, metric)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evals.errors import DataError
from evals.records import Example, GenerationParams


@dataclass(frozen=True)
class MetricResult:
    """Corpus scores (0-100), each sample's score, and named breakdowns (e.g. per answer type)."""

    scores: Mapping[str, float]
    per_sample: Mapping[str, float]
    breakdowns: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """A benchmark, declared. The runner drives it; a task never calls a model.

    `load(root, split)` reads the benchmark's own files under `root`; `shot_answer` is the text a
    demonstration shows as its answer; `postprocess` turns raw model output into the prediction
    that `metric` scores against the examples' references.
    """

    name: str
    paper: str
    kind: Literal["generate", "rank"]
    load: Callable[[Path, str], list[Example]]
    support_split: str
    query_split: str
    template: str
    shot_answer: Callable[[Example], str]
    postprocess: Callable[[str, Sequence[str]], str]
    metric: Callable[[Mapping[str, str], Sequence[Example]], MetricResult]
    generation: GenerationParams = GenerationParams()
    data_folder: str = ""
    default_root: Path | None = None
    zero_shot_text_shots: int = 2
    suites: tuple[str, ...] = ()
    submission_format: str = ""  # which `evals score` reader this task's submission files use

    def root(self, data_dir: Path | None) -> Path:
        """Where this task's files are: the bundled copy for demo tasks, else `DATA_DIR/<data_folder>`."""
        if self.default_root is not None:
            return self.default_root
        if data_dir is None:
            raise DataError(
                f"task '{self.name}' needs its data: pass --data-dir DIR with the files under DIR/{self.data_folder}/"
            )
        return Path(data_dir) / self.data_folder


def read_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into one line that names the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read ({error})") from None


def require(record: Mapping[str, Any], key: str, path: Path, where: str) -> Any:
    """`record[key]`, or a DataError naming the file, the record and the missing field."""
    if not isinstance(record, Mapping):
        raise DataError(f"{path}: {where} is not a JSON object")
    if key not in record:
        raise DataError(f"{path}: {where} has no field '{key}'")
    return record[key]


# Words that open a new turn in the formats we render: generation past them is the model starting
# the next demonstration, not part of its answer (PROTOCOL.md, "Decoding and postprocessing").
STOP_WORDS = ("Question", "Answer", "Short", "Caption", "Output", "User", "Image", "\n")


def cut_at_stop_words(output: str, extra_stops: Sequence[str] = ()) -> str:
    """The output up to the first stop word or format stop string, stripped."""
    end = len(output)
    for stop in (*STOP_WORDS, *extra_stops):
        at = output.find(stop)
        if at != -1:
            end = min(end, at)
    return output[:end].strip()
