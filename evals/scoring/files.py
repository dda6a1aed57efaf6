"""Reading submission and reference files: records named by file and line, ids checked both ways."""

from __future__ import annotations

import gc
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from evals.errors import DataError
from tasks.base import ascii_integer, finite_numbers, parse_json, read_json, read_text, require


@dataclass(frozen=True)
class Submission:
    """The files of one `evals score` call, and the options some formats take."""

    predictions: Path
    annotations: Path
    questions: Path | None = None  # VQA: the official questions file, checked against the annotations
    variant: str | None = None  # a peers' metric variant, where the format has one
    partial: bool = False  # --partial: score the reference ids the file predicts, not fail on the others


@dataclass(frozen=True)
class Coverage:
    """The reference ids a submission predicts, in reference order (all of them unless --partial), of how many."""

    ids: list
    annotated: int
    partial: bool

    def report(self) -> dict[str, Any]:
        """{"coverage": {covered, annotated, fraction}} for a --partial result; nothing for the others, whose output
        stays as it was."""
        if not self.partial:
            return {}
        return {"coverage": {"covered": len(self.ids), "annotated": self.annotated, "fraction": len(self.ids) / self.annotated}}


@dataclass(frozen=True)
class SubmissionFormat:
    """How one format is scored: `score(submission) -> {"scores": {...}, ...breakdowns}`."""

    score: Callable[[Submission], dict[str, Any]]
    takes_questions: bool = False
    variants: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry:
    """One record of a file and where it stands there ("line 3", "entry #2"), for one-line errors."""

    path: Path
    where: str
    record: Any

    def fail(self, problem: str) -> NoReturn:
        raise DataError(f"{self.path}: {self.where} {problem}")

    def known_as(self, name: str) -> Entry:
        """The same entry, its errors also naming it by `name` (e.g. its id)."""
        return replace(self, where=f"{self.where} ({name})")

    def get(self, key: str) -> Any:
        return require(self.record, key, self.path, self.where)

    def items(self, key: str) -> list:
        value = self.get(key)
        if not isinstance(value, list):
            self.fail(f"has a '{key}' that is not a list")
        return value

    def number(self, key: str) -> float:
        value = self.get(key)
        if not is_number(value):
            self.fail(f"has '{key}' = {value!r}, not a {'finite ' if isinstance(value, float) else ''}number")
        return float(value)

    def label(self, key: str) -> str:
        value = self.get(key)
        if not is_label(value):
            self.fail(f"has '{key}' = {value!r}, not a label (a string or an integer)")
        return str(value)

    def binary(self, key: str) -> int:
        value = self.get(key)
        if value not in (0, 1, "0", "1") or isinstance(value, (bool, float)):
            self.fail(f"has '{key}' = {value!r}, expected 0 or 1")
        return int(value)

    def text(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            self.fail(f"has a non-string '{key}'")
        return value

    def id(self, key: str = "id") -> str:
        """The record's id as text, so that the JSON 8291, the string "8291" and a CSV's "08291" are one id."""
        value = self.get(key)
        if not is_label(value):
            self.fail(f"has {key} {value!r}, neither a number nor a string")
        text = str(value).strip()
        number = ascii_integer(text)
        return text if number is None else str(number)


# ---------------------------------------------------------------- reading and checking files

def is_number(value: Any) -> bool:
    """A finite int or float: a score or relevance of Infinity or NaN has no place in a ranking or a sum."""
    return finite_numbers((value,))


def is_label(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def id_preview(ids: Collection) -> str:
    shown = sorted(ids, key=str)[:5]
    return ", ".join(str(i) for i in shown) + (" ..." if len(ids) > 5 else "")


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: a VQAv2 annotations file parses into millions of small dicts, none
    in a cycle, and the collector would scan them again and again as they are built (half the load time).
    Wrap a call whose big objects are gone when it returns, so that nothing is left to scan afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Retained:
    """Parsed files kept alive until the process ends, once `keep_until_exit()` is called: a process that ends by
    os._exit (evals.process.exit_without_teardown) would otherwise free a VQAv2 annotations file's millions of objects
    one by one when the scorer is done with them, for nothing (a quarter of a second)."""

    keep: ClassVar[bool] = False
    kept: ClassVar[list[Any]] = []

    @classmethod
    def keep_until_exit(cls) -> None:
        """Also no cyclic garbage collection from now on: it would scan the kept objects again and again, and the
        process frees nothing before it ends."""
        cls.keep = True
        gc.disable()

    @classmethod
    def hold(cls, value: Any) -> Any:
        if cls.keep:
            cls.kept.append(value)
        return value


def read_jsonl(path: Path) -> list[Entry]:
    """A JSON Lines file, one entry per non-blank line, failing on the first malformed line."""
    entries = [Entry(path, f"line {number}", parse_json(line, path, number))
               for number, line in enumerate(read_text(path).splitlines(), start=1) if line.strip()]
    if not entries:
        raise DataError(f"{path}: no records")
    return entries


def read_json_list(path: Path, fields: tuple[str, ...], what: str = "entry") -> list[Entry]:
    """A JSON file holding a list of objects (results files, VisDial annotations), as entries "entry #i"."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON list of {{{', '.join(fields)}}} objects")
    return [Entry(path, f"{what} #{i}", row) for i, row in enumerate(rows)]


def top_level_list(path: Path, key: str, what: str) -> list[Entry]:
    """The list `key` of a JSON file's top-level object (COCO `images`, VQA `annotations`), as entries "what #i"."""
    return [Entry(path, f"{what} #{i}", row) for i, row in enumerate(Entry(path, "the top level", read_json(path)).items(key))]


def index_by_id(entries: Iterable[Entry], key: str = "id") -> dict[str, Entry]:
    """{id: entry}, failing on an entry without the id field or an id seen twice."""
    indexed: dict[str, Entry] = {}
    for entry in entries:
        rid = entry.id(key)
        if rid in indexed:
            entry.fail(f"repeats {key} {rid} of {indexed[rid].where}")
        indexed[rid] = entry
    return indexed


def covered_ids(predicted: Collection, expected: Iterable, submission: Submission, what: str,
                describe: Callable[[list], str] = id_preview) -> Coverage:
    """The reference ids that are predicted: every one of them, or with --partial any that are, never none; a
    predicted id the reference file lacks is an error either way. Missing ids come first in the errors, as a
    file that misses some and adds others most likely predicts another split."""
    expected, given = list(expected), set(predicted)
    covered = [rid for rid in expected if rid in given]
    name = submission.annotations.name
    if covered and len(covered) < len(expected) and not submission.partial:
        missing = [rid for rid in expected if rid not in given]
        raise DataError(f"{submission.predictions}: no prediction for {len(missing)} {what}s of {name}: {describe(missing)} "
                        f"(--partial scores the {len(covered)} predicted ones)")
    reject_unknown(given, expected, submission, what)
    if not covered:
        raise DataError(f"{submission.predictions}: predicts none of the {len(expected)} {what}s of {name}: nothing to score")
    return Coverage(covered, len(expected), submission.partial)


def reject_unknown(predicted: Collection, expected: Collection, submission: Submission, what: str) -> None:
    """A predicted id the reference file lacks is an error, --partial or not: the file is for another set."""
    unknown = set(predicted) - set(expected)
    if unknown:
        name = submission.annotations.name
        raise DataError(f"{submission.predictions}: {len(unknown)} {what}s not in {name}: {id_preview(unknown)}")


def matched(submission: Submission, predicted: Iterable[Entry],
            gold: Iterable[Entry]) -> tuple[dict[str, tuple[Entry, Entry]], Coverage]:
    """{id: (reference entry, prediction entry)} in reference order for the covered ids, and the coverage."""
    predicted_by_id, gold_by_id = index_by_id(predicted), index_by_id(gold)
    coverage = covered_ids(predicted_by_id, gold_by_id, submission, "id")
    return {rid: (gold_by_id[rid], predicted_by_id[rid]) for rid in coverage.ids}, coverage


def read_answer_list(path: Path, id_key: str, text_key: str) -> dict[str, str]:
    """A JSON list of {id_key, text_key} objects with string texts, one per id (EvalAI and COCO results files)."""
    entries = index_by_id(read_json_list(path, (id_key, text_key)), id_key)
    return {rid: entry.known_as(f"{id_key} {rid}").text(text_key) for rid, entry in entries.items()}


# ---------------------------------------------------------------- VQA: VQAv2 / OK-VQA, TextVQA, VizWiz
