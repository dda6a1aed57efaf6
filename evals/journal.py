"""The per-cell journal that lets a killed run resume: finished samples' raw model outputs, appended and synced.

One JSON line per finished unit of model work (a query's prompt; ranked tasks with several prompts per
query give one unit per prompt), written batch by batch with one `write` and an `fsync`, so a `kill -9`
loses at most the batch in flight and a power loss at most a torn last line, which reading ignores.
The first line holds the key of the cell's protocol (`journal_key`): a journal written under another
protocol is never read as this one. Each entry carries a checksum of its content and of that key: an entry that does
not verify (altered, copied from another cell's journal, or written by version 1, which had no checksums) is dropped
from the file with a warning, counted in the cell's record, and its sample recomputed; never scored. The runner deletes the journal once the cell's record is written.
A data-parallel run keeps one journal per rank (CELL.journal.rankR.jsonl): each rank resumes its own shard.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self

from evals.errors import ConfigError, DataError, IntegrityWarning
from results.schema import Protocol
from results.store import sync_folder

JOURNAL_VERSION = 2
UNVERIFIABLE_VERSIONS = (1,)  # journals whose entries carry no checksum: read, but every entry is recomputed


class JournalWarning(IntegrityWarning):
    """Journal entries that did not verify were dropped; their samples are recomputed."""


@dataclass(frozen=True)
class Entry:
    """One finished unit: the query, which of its prompts, the shots it was asked with, and the model's raw
    output (text, or candidate log-likelihoods), or why it failed (a sample skipped with --skip-bad-samples)."""

    id: str
    view: int
    shot_ids: tuple[str, ...]
    output: Any = None
    failed: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.id, self.view)

    def to_json(self, key: str) -> str:
        """One journal line, with the checksum of its content under the protocol `key`."""
        row = {"id": self.id, "view": self.view, "shot_ids": list(self.shot_ids)}
        row.update({"failed": self.failed} if self.failed is not None else {"output": self.output})
        return json.dumps({**row, "sum": entry_sum(key, row)}, ensure_ascii=False)


def entry_sum(key: str, row: dict[str, Any]) -> str:
    """The checksum an entry line carries: its fields (but the checksum) and the protocol key of its journal, so an
    edited entry, or one moved from another protocol's journal, does not verify."""
    text = key + "\n" + json.dumps(row, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def journal_key(protocol: Protocol) -> str:
    """What a journal must have been written under to be reused: the comparable protocol and the seed."""
    text = json.dumps({**protocol.comparable(), "seed": protocol.seed}, sort_keys=True, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:24]


def journal_path(stem: Path, rank: int | None = None) -> Path:
    """The cell's journal; under data parallelism each rank journals its own shard (`rank`) to its own file."""
    return stem.with_name(stem.name + (".journal.jsonl" if rank is None else f".journal.rank{rank}.jsonl"))


def journal_files(stem: Path) -> list[Path]:
    """Every journal of the cell that exists: one process's, and each rank's of a data-parallel run."""
    ranked = sorted(stem.parent.glob(glob.escape(stem.name) + ".journal.rank*.jsonl"))
    return [path for path in (journal_path(stem), *ranked) if path.exists()]


def complete_lines(path: Path) -> list[str]:
    """The file's complete lines: a last line without its newline was torn by a kill and is dropped."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise DataError(f"{path}: cannot read the journal ({error})") from None
    lines = text.split("\n")
    return lines[:-1]  # the piece after the last newline is empty, or torn


def stored_key(path: Path) -> str | None:
    """The protocol key a journal was written under; None when there is no journal (or only a torn header)."""
    header = stored_header(path)
    return header["key"] if header is not None else None


def stored_header(path: Path) -> dict[str, Any] | None:
    """The journal's header line ({"journal": version, "key": protocol key}); None when there is none yet."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DataError(f"{path}: cannot read the journal ({error})") from None
    if not first.endswith(b"\n"):
        return None
    header = parse_line(path, 1, first.decode("utf-8", errors="replace"))
    known = (JOURNAL_VERSION, *UNVERIFIABLE_VERSIONS)
    if not isinstance(header, dict) or header.get("journal") not in known or not isinstance(header.get("key"), str):
        raise DataError(f"{path}: line 1 is not a version-{JOURNAL_VERSION} journal header (delete the file or pass --overwrite)")
    return header


def parse_line(path: Path, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: line {number} is malformed JSON ({error.msg}); delete the file or pass --overwrite") from None


def check_key(path: Path, key: str) -> bool:
    """Whether a journal written under `key` exists; a journal of another protocol is refused, never reused."""
    found = stored_key(path)
    if found is not None and found != key:
        raise ConfigError(f"{path}: journal of a run with another protocol; pass --overwrite to start the cell afresh, "
                          "or choose another output folder")
    return found is not None


def read_entries(path: Path, key: str) -> dict[tuple[str, int], Entry]:
    """The finished units a journal holds that verify, by (query id, prompt index); {} when there is none yet."""
    return read_journal(path, key)[0]


def read_journal(path: Path, key: str) -> tuple[dict[tuple[str, int], Entry], list[str]]:
    """The entries that verify, and why each other entry line does not (a line that is not JSON is an error)."""
    if not check_key(path, key):
        return {}, []
    verifiable = stored_header(path)["journal"] not in UNVERIFIABLE_VERSIONS
    entries, rejected = {}, []
    for number, line in enumerate(complete_lines(path)[1:], start=2):
        row = parse_line(path, number, line)
        problem = entry_problem(row, key) if verifiable else "written without a checksum (journal version 1)"
        if problem:
            rejected.append(f"line {number}: {problem}")
            continue
        entry = Entry(row["id"], row["view"], tuple(row["shot_ids"]), row.get("output"), row.get("failed"))
        entries[entry.key] = entry
    return entries, rejected


def entry_problem(row: Any, key: str) -> str | None:
    """Why a parsed line is not a verified entry of the journal written under `key`; None when it is one."""
    if not isinstance(row, dict) or not isinstance(row.get("id"), str) or type(row.get("view")) is not int \
            or not isinstance(row.get("shot_ids"), list) or not all(isinstance(s, str) for s in row["shot_ids"]) \
            or ("output" in row) == ("failed" in row):
        return "not a journal entry (id, view, shot_ids, output or failed)"
    if "failed" in row and not isinstance(row["failed"], str):
        return "field 'failed' is not text"
    content = {k: v for k, v in row.items() if k != "sum"}
    if row.get("sum") != entry_sum(key, content):
        return "checksum does not match its content and the cell's protocol"
    return None


class Journal:
    """An open journal of one cell: `entries` are the units finished before (a resumed run skips them);
    `append` adds a batch of finished units durably before the runner goes on."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = path, key
        self.rejected = 0  # entries dropped because they did not verify (the cell's record counts them)
        fresh = not check_key(path, key)
        self.entries, rejected = ({}, []) if fresh else read_journal(path, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:  # no journal, or only a torn header: start the file over
            path.unlink(missing_ok=True)
        else:
            drop_torn_tail(path)  # appending after a torn line would glue it to the next entry
        self.handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if fresh:
            self.write(header_line(key))
            sync_folder(path.parent)
        self.reject(rejected)

    def reject(self, reasons: Sequence[str], keys: Iterable[tuple[str, int]] = ()) -> None:
        """Drop entries that did not verify (`keys`: those read as entries; `reasons`: one per entry, each naming it):
        count them, warn once, and rewrite the file without them so a later resume does not meet them again."""
        if not reasons:
            return
        for unit in keys:
            self.entries.pop(unit, None)
        self.rejected += len(reasons)
        more = f" and {len(reasons) - 1} more" if len(reasons) > 1 else ""
        warnings.warn(f"{self.path}: {len(reasons)} journal entries rejected ({reasons[0]}{more}); "
                      "their samples are recomputed", JournalWarning, stacklevel=2)
        self.rewrite()

    def rewrite(self) -> None:
        """Replace the file (atomically) with the header and the verified entries, then append to the new file."""
        os.close(self.handle)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(header_line(self.key) + "".join(e.to_json(self.key) + "\n" for e in self.entries.values()))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        sync_folder(self.path.parent)
        self.handle = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o644)

    def append(self, entries: Sequence[Entry]) -> list[Entry]:
        """Write the entries durably; returns them as they will read back (outputs through JSON), so a
        resumed run and an uninterrupted one score exactly the same values."""
        self.write("".join(e.to_json(self.key) + "\n" for e in entries))
        return [replace(e, output=json.loads(json.dumps(e.output))) for e in entries]

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        while data:  # one write for a whole batch; loop only if the kernel took part of it
            data = data[os.write(self.handle, data):]
        os.fsync(self.handle)

    def close(self) -> None:
        os.close(self.handle)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def header_line(key: str) -> str:
    return json.dumps({"journal": JOURNAL_VERSION, "key": key}) + "\n"


def drop_torn_tail(path: Path) -> None:
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1
    if complete < len(data):
        os.truncate(path, complete)
