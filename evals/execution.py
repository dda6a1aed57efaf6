"""A cell's model work, journaled: each query's prompts as units, sent in batches whose boundaries do not
depend on what a resumed run already has, each batch journaled before the next (resume, --skip-bad-samples).

Batches are cut from the units ordered by prompt length (longest first), so a batch pads little, and the
longest batch runs first: an automatic batch size meets its out-of-memory errors at once, not mid-cell.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

from evals.errors import ConfigError, DataError
from evals.images import load_image
from evals.journal import Entry, Journal
from evals.models.base import Model
from evals.records import Example, GenerationParams, Prompt
from evals.selection import ShotChoice
from tasks.base import Task


@dataclass(frozen=True)
class ModelCall:
    """How a cell calls the model: generate with `params`, or score candidates reduced by `loglik`."""

    kind: str
    params: GenerationParams
    loglik: str


@dataclass(frozen=True)
class Request:
    """One query's model input: a prompt to continue, or (ranked tasks) prompts with candidates to score."""

    query: Example
    shots: ShotChoice
    prompts: tuple[Prompt, ...]
    candidates: tuple[tuple[str, ...], ...] = ()  # ranked tasks: continuations scored after each prompt


@dataclass(frozen=True)
class Unit:
    """One prompt of one query: the piece of model work the runner batches and the journal records."""

    query_id: str
    view: int  # which of the query's prompts (ranked tasks may have several; Winoground: one per image)
    shot_ids: tuple[str, ...]
    prompt: Prompt
    candidates: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, int]:
        return (self.query_id, self.view)


def work_units(requests: Sequence[Request]) -> list[Unit]:
    """Each prompt of each request, in request order: the runner batches these and journals each one."""
    return [
        Unit(r.query.id, view, r.shots.ids, prompt, r.candidates[view] if r.candidates else ())
        for r in requests for view, prompt in enumerate(r.prompts)
    ]


def verify_journal(journal: Journal, units: Sequence[Unit], query_ids: Collection[str], kind: str) -> None:
    """Reject (count, warn, recompute) entries that verify as lines but not as this cell's work: a query the cell does
    not have, a prompt its query does not have, or an output of the wrong shape. Entries of queries in another
    rank's shard (a journal of another world size) are left as they are."""
    by_key = {unit.key: unit for unit in units}
    mine = {unit.query_id for unit in units}
    problems = {key: unit_problem(entry, by_key.get(key), query_ids, mine, kind) for key, entry in journal.entries.items()}
    bad = {key: f"sample '{key[0]}' view {key[1]}: {why}" for key, why in problems.items() if why}
    journal.reject(list(bad.values()), bad)


def unit_problem(entry: Entry, unit: Unit | None, query_ids: Collection[str], mine: Collection[str], kind: str) -> str | None:
    if entry.id not in query_ids:
        return "not a query of this cell"
    if unit is None:
        return "no such prompt of this query" if entry.id in mine else None
    if entry.failed is not None:
        return None
    if kind == "generate":
        return None if isinstance(entry.output, str) else "output is not text"
    scores = entry.output
    if not isinstance(scores, list) or len(scores) != len(unit.candidates) \
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in scores):
        return f"output is not {len(unit.candidates)} candidate scores"
    return None


def check_journal(journal: Journal, units: Sequence[Unit]) -> None:
    """A journal under this protocol whose shots differ from this run's choice is stale: refuse it."""
    for unit in units:
        entry = journal.entries.get(unit.key)
        if entry is not None and entry.shot_ids != unit.shot_ids:
            raise DataError(f"{journal.path}: sample '{unit.query_id}' was journaled with other shots; "
                            "pass --overwrite to start the cell afresh")


AUTO_BATCH_START = 64  # --batch-size auto: the first try; halved on each out-of-memory error
IMAGE_LENGTH = 64  # an image weighs in a prompt's length like this many characters (its slot in the padded image axis)


class BatchSize:
    """Prompts per model call: fixed, or automatic: it starts at AUTO_BATCH_START, halves on an out-of-memory
    error (the failed call is retried smaller) and keeps the size that worked for the cell's later batches.
    Mutable on purpose: it is the state the auto mode learns."""

    def __init__(self, size: int | str) -> None:
        self.auto = size == "auto"
        if not self.auto and (not isinstance(size, int) or size < 1):
            raise ConfigError(f"batch size must be an integer >= 1 or 'auto', got {size!r}")
        self.size = AUTO_BATCH_START if self.auto else int(size)
        self.limit = self.size  # batch boundaries: fixed by the start size, never by what was learned or resumed

    def send(self, call: Callable[[Sequence[Unit]], list], units: Sequence[Unit]) -> list:
        """`call` over the units in pieces of the current size, backing off on out-of-memory in auto mode."""
        outputs: list = []
        while len(outputs) < len(units):
            piece = units[len(outputs) : len(outputs) + self.size]
            try:
                outputs += call(piece)
            except Exception as error:  # noqa: BLE001 - re-raised unless it is an out-of-memory error we can back off from
                if not (self.auto and self.size > 1 and out_of_memory(error)):
                    raise
                self.size //= 2
                free_accelerator_memory()
        return outputs


def out_of_memory(error: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError (a RuntimeError), or a RuntimeError saying so (other backends, older torch)."""
    return isinstance(error, RuntimeError) and (type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower())


def free_accelerator_memory() -> None:
    torch = sys.modules.get("torch")  # only a model that imported torch can have run out of its memory
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def prompt_length(unit: Unit) -> int:
    """What a unit adds to its batch's padded width: prompt text, images, and the longest candidate."""
    longest_candidate = max((len(c) for c in unit.candidates), default=0)
    return len(unit.prompt.text) + IMAGE_LENGTH * len(unit.prompt.images) + longest_candidate


def by_length(units: Sequence[Unit]) -> list[Unit]:
    """Longest first, ties by key: the same order whatever order the units came in, and whatever is resumed."""
    return sorted(units, key=lambda u: (-prompt_length(u), u.key))


def run_units(
    model: Model, call: ModelCall, units: Sequence[Unit], journal: Journal, batch: BatchSize, skip_bad_samples: bool,
    advance: Callable[[int], None], bucket: bool = False,
) -> tuple[dict[tuple[str, int], Entry], float]:
    """Send the units the journal lacks, batch by batch, journaling each batch before the next; returns every
    unit's entry and the seconds spent inside the model. Batches keep the boundaries of an uninterrupted run
    (journaled units drop out of their batch), so a resumed run sends the model what it would have sent.
    `bucket`: batches are cut from the units ordered by length (entries are keyed, so callers see no order)."""
    done = dict(journal.entries)
    seconds = 0.0
    for batch_units in batched(by_length(units) if bucket else units, batch.limit):
        pending = [u for u in batch_units if u.key not in done]
        bad = unreadable_units(pending) if skip_bad_samples else []
        skipped = {e.key for e in bad}
        pending = [u for u in pending if u.key not in skipped]
        entries = list(bad)
        if pending:
            tick = time.perf_counter()
            outputs = batch.send(lambda piece: call_model(model, call, piece), pending)
            seconds += time.perf_counter() - tick
            entries += [Entry(u.query_id, u.view, u.shot_ids, output) for u, output in zip(pending, outputs)]
        done.update((e.key, e) for e in journal.append(entries))
        advance(len(entries))
    return done, seconds


def fully_journaled(units: Sequence[Unit], entries: Mapping[tuple[str, int], Entry]) -> int:
    """How many queries the journal holds every prompt of (the resumed samples)."""
    missing = {u.query_id for u in units if u.key not in entries}
    return len({u.query_id for u in units} - missing)


def call_model(model: Model, call: ModelCall, units: Sequence[Unit]) -> list:
    if call.kind == "generate":
        return model.generate([u.prompt for u in units], call.params)
    return model.score([u.prompt for u in units], [u.candidates for u in units], reduction=call.loglik)


def unreadable_units(units: Sequence[Unit]) -> list[Entry]:
    """--skip-bad-samples: units showing an image that cannot be read, as failed entries (decoded images are
    cached, so the model reads them without decoding again)."""
    failed = []
    for unit in units:
        try:
            for image in unit.prompt.images:
                load_image(image)
        except DataError as error:
            failed.append(Entry(unit.query_id, unit.view, unit.shot_ids, failed=str(error)))
    return failed


def collect_outputs(task: Task, requests: Sequence[Request], done: Mapping[tuple[str, int], Entry]):
    """Each request's raw output (generated text, or one list of candidate scores per prompt) by query id,
    and the queries that failed with why."""
    outputs, failed = {}, {}
    for r in requests:
        entries = [done[(r.query.id, view)] for view in range(len(r.prompts))]
        reasons = [e.failed for e in entries if e.failed is not None]
        if reasons:
            failed[r.query.id] = reasons[0]
        else:
            outputs[r.query.id] = entries[0].output if task.kind == "generate" else [e.output for e in entries]
    return outputs, failed


def batched(items: Sequence, size: int) -> Iterator[Sequence]:
    if size < 1:
        raise ConfigError(f"batch size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]
