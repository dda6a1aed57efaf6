"""What a task is: a small declaration (data loader, splits, template, decoding, postprocess, metric)."""

from __future__ import annotations

import contextlib
import gc
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from evals.errors import ConfigError, DataError
from evals.records import Example, GenerationParams
from tasks.hf import HFSpec, is_saved_dataset, read_hf_split


@dataclass(frozen=True)
class Resampling:
    """How one corpus score is recomputed on a bootstrap resample (evals.intervals), declared by the metric.

    Either `values` (one per id: the score is their mean, so a resample's score is the mean of the redrawn
    values) or `statistic(positions)` (the score recomputed on the ids at `positions`, with repeats: ROC AUC).
    `ids` are the resampled units: query ids, or another unit a metric averages over (MMBench's questions);
    `groups` (one per id) redraws ids that share a group together, None: the runner's grouping by image where
    `ids` are query ids. `method` is written into the record, so a reader knows what the interval conditions on.
    """

    ids: tuple[str, ...]
    method: str
    values: tuple[float, ...] | None = None
    statistic: Callable[[Any], float] | None = None
    groups: tuple[str, ...] | None = None


def per_query_mean(values: Mapping[str, float], method: str = "mean of per-query scores",
                   groups: Mapping[str, str] | None = None) -> Resampling:
    """A mean-decomposable score: `values` maps each unit id to its score (the corpus score is their mean)."""
    ids = tuple(values)
    return Resampling(ids, method, values=tuple(values[i] for i in ids),
                      groups=None if groups is None else tuple(groups[i] for i in ids))


@dataclass(frozen=True)
class MetricResult:
    """Corpus scores (0-100), each sample's score, and named breakdowns (e.g. per answer type).

    `resampling` says, for a score whose bootstrap is not the mean of `per_sample`, how to resample it (a score
    absent from it and not the task's headline gets no interval: evals.intervals).
    """

    scores: Mapping[str, float]
    per_sample: Mapping[str, float]
    breakdowns: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    resampling: Mapping[str, Resampling] = field(default_factory=dict)


class FileReader(Protocol):
    """One release's official files: `layout` for `evals tasks` and errors, `load(root, split)` for the Examples."""

    @property
    def layout(self) -> str: ...

    def load(self, root: Path, split: str) -> list[Example]: ...


MetricFn = Callable[[Mapping[str, Any], Sequence[Example]], MetricResult]


@dataclass(frozen=True)
class RankQuery:
    """One prompt of a ranked task: the example as the prompt shows it, and the answers to score after it.

    Most tasks give one per example; Winoground gives one per image (each scoring both captions). `gold` names the
    candidates that are right for this prompt where that is not the example's references (Winoground: caption i for
    image i, though both captions are references); the viewer marks them.
    """

    example: Example
    candidates: tuple[str, ...]
    gold: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DataSource:
    """Where a task's split files come from: a folder of official files, or a Hugging Face dataset."""

    location: str
    kind: Literal["files", "hf"]


@dataclass(frozen=True)
class Task:
    """A benchmark, declared. The runner drives it; a task never calls a model.

    `load(root, split)` reads the benchmark's own files under `root` (`hf` reads a Hugging Face
    copy); `shot_answer` is the text a demonstration shows as its answer.
    Generative tasks (`kind="generate"`): `postprocess` turns the model's text into the prediction.
    Ranked tasks (`kind="rank"`): `rank_queries` gives the prompts and candidate answers, the model
    scores each candidate by log-likelihood (`loglik`: "sum" or "mean" over its tokens) and
    `decide` turns the scores into the prediction. `metric` scores predictions against the examples'
    references; `metric_variants` are the peers' variants, chosen by name and recorded.
    """

    name: str
    paper: str
    kind: Literal["generate", "rank"]
    load: Callable[[Path, str], list[Example]]
    support_split: str
    query_split: str
    template: str
    shot_answer: Callable[[Example], str]
    metric: MetricFn
    headline: str  # the metric key a leaderboard shows for this task
    layout: str  # the expected files under the task's folder, as `evals tasks` shows them
    postprocess: Callable[[str, Sequence[str]], str] | None = None
    rank_queries: Callable[[Example], Sequence[RankQuery]] | None = None
    decide: Callable[[Example, Sequence[Sequence[float]]], Any] | None = None
    loglik: str = "sum"
    metric_variants: Mapping[str, MetricFn] = field(default_factory=dict)
    generation: GenerationParams = GenerationParams()
    data_folder: str = ""
    default_root: Path | None = None
    zero_shot_text_shots: int = 2  # Flamingo: 2 text-only shots for open-ended tasks; ranked tasks use 0
    max_shots: int | None = None  # None: any; 0 for zero-shot-only benchmarks (Winoground)
    suites: tuple[str, ...] = ()
    submission_format: str = ""  # which `evals score` reader this task's submission files use
    hf: HFSpec | None = None

    def __post_init__(self) -> None:
        if self.kind == "generate" and self.postprocess is None:
            raise ValueError(f"task '{self.name}': a generative task needs postprocess")
        if self.kind == "rank" and (self.rank_queries is None or self.decide is None):
            raise ValueError(f"task '{self.name}': a ranked task needs rank_queries and decide")

    def source(self, data_dir: Path | None, override: str | None = None) -> DataSource:
        """Where to read from: `override` (a folder or hub id), the bundled copy, or DATA_DIR/<data_folder>.

        A folder written by `save_to_disk` is read as a Hugging Face dataset, any other folder as
        the benchmark's official files.
        """
        if override:
            folder = Path(override)
            if folder.is_dir():
                return DataSource(str(folder), "hf" if is_saved_dataset(folder) else "files")
            if "/" in override and not override.startswith((".", "/")):
                return DataSource(override, "hf")
            raise DataError(f"task '{self.name}': data source '{override}' is neither a folder nor a hub id")
        if self.default_root is not None:
            return DataSource(str(self.default_root), "files")
        if data_dir is None:
            raise DataError(
                f"task '{self.name}' needs its data: pass --data-dir DIR with the files under DIR/{self.data_folder}/"
                f" (expected: {self.layout})"
            )
        folder = Path(data_dir) / self.data_folder
        return DataSource(str(folder), "hf" if is_saved_dataset(folder) else "files")

    def read(self, source: DataSource, split: str) -> list[Example]:
        """One split's examples from the official files or the Hugging Face copy."""
        if source.kind == "files":
            if not Path(source.location).is_dir():
                raise DataError(f"task '{self.name}': data folder {source.location} not found (expected: {self.layout})")
            with collection_paused():
                examples = self.load(Path(source.location), split)
        elif self.hf is None:
            raise DataError(f"task '{self.name}' has no Hugging Face reader; give its official files (expected: {self.layout})")
        else:
            examples = read_hf_split(self.hf, source.location, split)
        return unique_ids(examples, f"{source.location} [{split}]")

    def metric_named(self, variant: str | None) -> MetricFn:
        """The default metric, or the peers' variant of that name."""
        if variant is None:
            return self.metric
        if variant not in self.metric_variants:
            known = ", ".join(sorted(self.metric_variants)) or "none"
            raise ConfigError(f"task '{self.name}' has no metric variant '{variant}' (variants: {known})")
        return self.metric_variants[variant]


def gold_answer(example: Example) -> str:
    """The example's reference answer, for tasks with exactly one (a class, a dialog round's answer)."""
    return example.references[0]


def unique_ids(examples: list[Example], where: str) -> list[Example]:
    """`examples`, or a DataError when an id repeats: predictions, shots and records are keyed by id."""
    seen: set[str] = set()
    for example in examples:
        if example.id in seen:
            raise DataError(f"{where}: example id {example.id} appears twice (ids must be unique)")
        seen.add(example.id)
    return examples


def read_text(path: Path) -> str:
    """A user's text file, a leading byte-order mark dropped (spreadsheet programs and Windows editors write one)."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read ({error})") from None


def parse_json(text: str, path: Path, line: int | None = None) -> Any:
    """One JSON value: a whole file's, or line `line` of a JSON Lines file. Nesting deep enough to exhaust Python's
    recursion limit is malformed input, not a crash."""
    where = f"line {line} is malformed JSON" if line is not None else "malformed JSON"
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        at = f"column {error.colno}" if line is not None else f"line {error.lineno} column {error.colno}"
        raise DataError(f"{path}: {where} at {at}: {error.msg}") from None
    except RecursionError:
        raise DataError(f"{path}: {where}: nested too deeply to read") from None


def read_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into one line that names the file."""
    return parse_json(read_text(path), path)


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """(line number, JSON value) for each non-blank line: the number counts blank lines too, so an error about a
    record names the line an editor shows, wherever blank lines fall; a malformed line is named by its number."""
    return [(number, parse_json(line, path, number)) for number, line in enumerate(read_text(path).splitlines(), start=1)
            if line.strip()]


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while a reader builds a split: an official file's millions of new objects (VQAv2
    val: 214k questions, 2.1M answers) would trigger full collections over them again and again (VQAv2 val's
    examples in 4.3 s instead of 9.8 s here); they hold no cycles, and collection resumes after."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def require(record: Mapping[str, Any], key: str, path: Path, where: str) -> Any:
    """`record[key]`, or a DataError naming the file, the record and the missing field."""
    if type(record) is not dict and not isinstance(record, Mapping):  # the dict test first: an ABC check is slow
        raise DataError(f"{path}: {where} is not a JSON object")
    if key not in record:
        raise DataError(f"{path}: {where} has no field '{key}'")
    return record[key]


def require_list(record: Mapping[str, Any], key: str, path: Path, where: str) -> list:
    """`record[key]` when it is a list, else a DataError naming the file, the record and the field."""
    value = require(record, key, path, where)
    if not isinstance(value, list):
        raise DataError(f"{path}: {where}: field '{key}' is {type_name(value)}, not a list")
    return value


def require_text(record: Mapping[str, Any], key: str, path: Path, where: str) -> str:
    """`record[key]` when it is a string, else a DataError naming the file, the record and the field."""
    value = require(record, key, path, where)
    if not isinstance(value, str):
        raise DataError(f"{path}: {where}: field '{key}' is {type_name(value)}, not a string")
    return value


def require_id(record: Mapping[str, Any], key: str, path: Path, where: str) -> str:
    """`record[key]` as text when it is an integer or a string (an id), else a DataError naming the field."""
    value = require(record, key, path, where)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"{path}: {where}: field '{key}' is {type_name(value)}, not an integer or a string")
    return str(value)


def require_texts(record: Mapping[str, Any], key: str, path: Path, where: str) -> list[str]:
    """`record[key]` when it is a list of strings (OCR tokens, captions), else a DataError naming the field."""
    values = require_list(record, key, path, where)
    if not all(isinstance(value, str) for value in values):
        raise DataError(f"{path}: {where}: field '{key}' holds a value that is not a string")
    return values


def optional_text(record: Mapping[str, Any], key: str, path: Path, where: str) -> str:
    """`record[key]` when it is a string, "" when the record has no such field: an optional field (a question type,
    a tag) may be left out, but one of another type is refused rather than turned into text."""
    if isinstance(record, Mapping) and key not in record:
        return ""
    return require_text(record, key, path, where)


def some_records(records: list, path: Path, what: str) -> list:
    """`records`, or a DataError naming the file when there are none: an empty split leaves nothing to show or score,
    and the runner would meet it far from the file that caused it."""
    if not records:
        raise DataError(f"{path}: no {what} (the list is empty)")
    return records


def type_name(value: Any) -> str:
    """How an error names a value of the wrong type: short, whatever its size."""
    return "null" if value is None else f"a{'n' if type(value).__name__[0] in 'aeiou' else ''} {type(value).__name__}"


def ascii_integer(text: str) -> int | None:
    """The integer an id written in ASCII digits stands for, else None: str.isdigit() is also true of "²" and other
    Unicode digits, which int() refuses or reads as another number."""
    return int(text) if re.fullmatch(r"[0-9]+", text) else None


def finite_numbers(values: Any) -> bool:
    """Whether every value is a finite int or float (JSON's Infinity and NaN parse as floats; a bool is no number)."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


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


# Checks for readers that name a record by one `where` string (file and record, or dataset, split and row): the
# readers shared by official files and Hugging Face rows.

def checked_text(value: Any, key: str, where: str, optional: bool = False) -> str:
    """`value` when it is a string ("" for null where the field is `optional`), else a DataError naming the field."""
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{key}' is {type_name(value)}, not a string")
    return value


def checked_texts(value: Any, key: str, where: str) -> list[str]:
    """`value` when it is a list of strings (choices, options), else a DataError naming the field."""
    if not isinstance(value, list):
        raise DataError(f"{where}: field '{key}' is {type_name(value)}, not a list")
    if not all(isinstance(item, str) for item in value):
        raise DataError(f"{where}: field '{key}' holds a value that is not a string")
    return value


def checked_id(value: Any, key: str, where: str) -> str:
    """`value` as text when it is an integer or a string (an id; a bool, float, list or null is not), else a DataError."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"{where}: field '{key}' is {type_name(value)}, not an integer or a string")
    return str(value)


def existing_image(path: Path, where: str) -> Path:
    """`path` when the file is there, checked while reading so that a missing image is named before any model runs."""
    if not path.is_file():
        raise DataError(f"{where}: image file {path} not found")
    return path


def not_empty(examples: list[Example], where: str) -> list[Example]:
    """`examples`, or a DataError: an empty split has nothing to evaluate or to draw shots from."""
    if not examples:
        raise DataError(f"{where}: no examples in this split")
    return examples
