"""Cell records read back from disk as typed rows: what the leaderboard, the plots and the regression gate consume."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.errors import DataError, UnknownNameError
from results.schema import (
    METRIC_RANGES, READABLE_VERSIONS, SCHEMA_VERSION, SCORES_BY_HEADLINE, compared_protocol, protocol_field_types,
)
from tasks.base import read_json, require

MIN_SCHEMA_VERSION = READABLE_VERSIONS[0]  # 2: the first version whose protocol says how ranked tasks and metric variants were scored
MODEL_IDENTITY = frozenset({"model", "model_family", "model_revision", "dtype"})
# Files beside the cell records that are not cell records (per-sample lines, resume journals, half-written files).
NOT_RECORDS = (".samples.", "journal", ".tmp")


@dataclass(frozen=True)
class CellRecord:
    """One cell's result as read from its JSON record; `protocol` is kept whole (a newer writer may add fields)."""

    path: Path
    task: str
    shots: int
    selection: str
    seed: int
    scores: Mapping[str, float]
    protocol: Mapping[str, Any]
    intervals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # metric -> bootstrap interval; {} before v6

    @property
    def samples_path(self) -> Path:
        """The per-sample lines written beside the record (results.store.samples_path)."""
        return self.path.with_name(self.path.name.removesuffix(".json") + ".samples.jsonl")

    @property
    def model(self) -> str:
        return str(self.protocol["model"])

    @property
    def prompt_format(self) -> str:
        return str(self.protocol.get("prompt_format", ""))

    @property
    def key(self) -> tuple[str, str, int, str, int]:
        """What identifies a cell across runs: (model, task, shots, selection, seed)."""
        return (self.model, self.task, self.shots, self.selection, self.seed)

    @property
    def label(self) -> str:
        return f"{self.model} {self.task} {self.shots}-shot {self.selection} seed {self.seed}"

    def comparable(self) -> dict[str, Any]:
        """The protocol fields that decide the numbers (not versions, not seed, not where the weights came from), nested
        ones as `a.b` keys; fields an older schema version lacks count at their defaults (a v3 record's model_args: {})."""
        return flatten(compared_protocol(self.protocol))


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys, so a difference names the exact field (`generation.num_beams`)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def find_record_files(paths: Sequence[Path]) -> list[Path]:
    """Record files named directly, and every `*.json` below the named folders that is not a samples or journal file."""
    found: dict[Path, Path] = {}  # by resolved path: a file named twice (a folder and a file in it) is read once
    for path in paths:
        if path.is_dir():
            files = [p for p in json_files(path) if p.is_file() and not any(m in p.name for m in NOT_RECORDS)]
        elif path.is_file():
            files = [path]
        else:
            raise DataError(f"{path}: no such file or folder")
        for file in files:
            found.setdefault(file.resolve(), file)
    return list(found.values())


def json_files(folder: Path) -> list[Path]:
    """Every `*.json` below `folder`, sorted, without entering symlinked folders: a link back up the tree (a loop)
    would otherwise be walked forever, and a link elsewhere would read records the user did not name."""
    found = []
    for root, _, names in os.walk(folder, followlinks=False):
        found += [Path(root, name) for name in names if name.endswith(".json")]
    return sorted(found)


def read_records(paths: Sequence[Path]) -> list[CellRecord]:
    """Every cell record under `paths`; a folder's other JSON files (no `protocol` and `scores`) are passed over."""
    records = []
    for file in find_record_files(paths):
        data = read_json(file)
        named = file in paths
        if not named and not (isinstance(data, Mapping) and "protocol" in data and "scores" in data):
            continue
        records.append(parse_record(data, file))
    if not records:
        raise DataError(f"no cell records found in {', '.join(map(str, paths))}")
    return records


def parse_record(data: Any, path: Path) -> CellRecord:
    """A record checked against the schema: every field the readers use present and of its type, each score a finite
    number in its metric's range and (for a registered task) a metric the task has; a DataError names file and field."""
    check_version(require(data, "schema_version", path, "the cell record"), path)
    protocol = require(data, "protocol", path, "the cell record")
    require(protocol, "model", path, "protocol")
    check_protocol_types(protocol, path)
    task = typed(data, "task", str, path)
    shots, seed = typed(data, "shots", int, path), typed(data, "seed", int, path)
    for name, value in (("shots", shots), ("seed", seed)):
        if value < 0:
            raise DataError(f"{path}: field '{name}' must be >= 0, got {value}")
    scores = checked_scores(data, task, path)
    return CellRecord(
        path=path, task=task, shots=shots, selection=typed(data, "selection", str, path),
        seed=seed, scores=scores, protocol=protocol, intervals=checked_intervals(data, scores, path),
    )


def check_version(version: Any, path: Path) -> None:
    """Older readable versions are read with defaults; a newer one may mean fields this reader would misread."""
    if not isinstance(version, int) or isinstance(version, bool):
        raise DataError(f"{path}: field 'schema_version' must be int, got {show(version)}")
    if version < MIN_SCHEMA_VERSION:
        raise DataError(f"{path}: schema_version {version} is older than {MIN_SCHEMA_VERSION}; run the cell again")
    if version > SCHEMA_VERSION:
        raise DataError(f"{path}: schema_version {version} is newer than this evals reads "
                        f"({MIN_SCHEMA_VERSION}-{SCHEMA_VERSION}); upgrade evals")


def check_protocol_types(protocol: Mapping[str, Any], path: Path) -> None:
    """Each Protocol field the record has is of the schema's type (fields an older version lacks may be absent; a
    newer writer's extra fields are kept unchecked)."""
    for name, kind in protocol_field_types().items():
        if name in protocol and not is_a(protocol[name], kind):
            raise DataError(f"{path}: field 'protocol.{name}' must be {JSON_TYPES[kind]}, got {show(protocol[name])}")
    devices = protocol.get("placement", {}).get("devices", [])
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        raise DataError(f"{path}: field 'protocol.placement.devices' must be a list of device names, got {show(devices)}")


JSON_TYPES = {str: "a string", int: "an integer", dict: "an object"}


def is_a(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


def checked_scores(data: Mapping[str, Any], task: str, path: Path) -> dict[str, float]:
    """The scores as floats; a score that is not a finite number, is outside its metric's range, or (registered
    task) names a metric the task does not have, is refused."""
    scores = require(data, "scores", path, "the cell record")
    if not isinstance(scores, Mapping) or not all(is_a(v, (int, float)) for v in scores.values()):
        raise DataError(f"{path}: field 'scores' must map metric names to numbers")
    known = registered_scores(task)
    for name, value in scores.items():
        if not math.isfinite(value):
            raise DataError(f"{path}: field 'scores.{name}' is {value}, not a finite number")
        if known is not None and name not in known:
            raise DataError(f"{path}: field 'scores.{name}': task '{task}' has no metric '{name}' "
                            f"(its metrics: {', '.join(known)})")
        low, high = METRIC_RANGES.get(name, (-math.inf, math.inf))
        if not low - RANGE_SLACK <= value <= high + RANGE_SLACK:
            raise DataError(f"{path}: field 'scores.{name}' is {value:g}, outside {name}'s range {show_range(low, high)}")
    return {name: float(value) for name, value in scores.items()}


def checked_intervals(data: Mapping[str, Any], scores: Mapping[str, float], path: Path) -> dict[str, dict[str, Any]]:
    """Each score's interval (absent in records older than v6: {}): of a score the record has, with finite numbers
    `low <= estimate <= high`; anything else is refused with one line naming the field."""
    intervals = data.get("intervals", {}) if isinstance(data, Mapping) else {}
    if not isinstance(intervals, Mapping):
        raise DataError(f"{path}: field 'intervals' must map metric names to intervals, got {show(intervals)}")
    for name, interval in intervals.items():
        where = f"{path}: field 'intervals.{name}"
        if name not in scores:
            raise DataError(f"{where}': the record has no score '{name}'")
        if not isinstance(interval, Mapping):
            raise DataError(f"{where}' must be an object, got {show(interval)}")
        for key in ("estimate", "low", "high"):
            value = interval.get(key)
            if not is_a(value, (int, float)) or not math.isfinite(value):
                raise DataError(f"{where}.{key}' must be a finite number, got {show(value)}")
        if not interval["low"] - RANGE_SLACK <= interval["estimate"] <= interval["high"] + RANGE_SLACK:
            raise DataError(f"{where}': low {interval['low']:g}, estimate {interval['estimate']:g}, high {interval['high']:g} "
                            "are not in order (low <= estimate <= high)")
    return {name: dict(interval) for name, interval in intervals.items()}


RANGE_SLACK = 1e-6  # floating-point noise at a bound (a mean of 100s) is not an out-of-range score


def show_range(low: float, high: float) -> str:
    return f"[{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"


def registered_scores(task: str) -> tuple[str, ...] | None:
    """The score names a registered task writes; None for a task not registered here (a plugin's) or of a family
    whose names are not listed, so its records are not refused for their metric names."""
    from evals.registry import TASKS

    try:
        headline = TASKS.get(task).headline
    except UnknownNameError:
        return None
    return SCORES_BY_HEADLINE.get(headline)


def typed(data: Mapping[str, Any], key: str, kind: type, path: Path) -> Any:
    value = require(data, key, path, "the cell record")
    if not is_a(value, kind):
        raise DataError(f"{path}: field '{key}' must be {kind.__name__}, got {show(value)}")
    return value


def index_unique(records: Iterable[CellRecord], key: Callable[[CellRecord], Hashable]) -> dict[Hashable, CellRecord]:
    """Records by `key`; the same cell twice is an error naming both files (a mean over it would count it twice)."""
    index: dict[Hashable, CellRecord] = {}
    for record in records:
        seen = index.setdefault(key(record), record)
        if seen is not record:
            raise DataError(f"the cell {record.label} appears twice: {seen.path} and {record.path}")
    return index


def differing_fields(a: Mapping[str, Any], b: Mapping[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """Flattened protocol fields whose values differ (a field only one side has differs too); `ignore` names
    fields (`generation.stop_sequences`) or whole objects (`selection_details`)."""
    skip = set(ignore)
    return sorted(k for k in a.keys() | b.keys()
                  if k not in skip and k.split(".", 1)[0] not in skip and a.get(k, ABSENT) != b.get(k, ABSENT))


def describe_differences(fields: Sequence[str], a: CellRecord, b: CellRecord) -> str:
    """`field (a.json: x; b.json: y)` for each field, so the user sees what to change or allow."""
    left, right = a.comparable(), b.comparable()
    return "; ".join(f"{k} ({a.path}: {show(left.get(k, ABSENT))}, {b.path}: {show(right.get(k, ABSENT))})" for k in fields)


class _Absent:
    def __repr__(self) -> str:
        return "absent"


ABSENT: Any = _Absent()


def show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
