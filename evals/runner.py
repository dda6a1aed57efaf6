"""The evaluation pipeline: load, select shots, render, batch through the model, postprocess, score, write.

This is the only module that knows that order (DESIGN.md, "Data flow").
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol as TypingProtocol

from evals.distributed import World, current_world, first_differing, first_problem, from_main, gather, main_first, shard
from evals.errors import ConfigError, DataError, EvalsError
from evals.context import fewer_shots, fit_requests, model_budget
from evals.execution import (
    BatchSize,
    ModelCall,
    Request,
    check_journal,
    collect_outputs,
    fully_journaled,
    run_units,
    verify_journal,
    work_units,
)
from evals.intervals import cell_intervals
from evals.journal import Entry, Journal, check_key, journal_files, journal_key, journal_path
from evals.models.base import LOGLIK_REDUCTIONS, Model
from evals.models.options import model_args
from evals.records import Cell, Example, GenerationParams, SampleRecord
from evals.registry import PROMPT_FORMATS, SELECTORS, TASKS
from evals.selection import RicesOptions, SelectionContext, Selector, ShotChoice
from prompts.formats import PromptTemplate, render
from results.schema import CellResult, Protocol
from results.store import cell_path, read_cell, record_path, samples_path, write_cell
from tasks.base import Task


@dataclass(frozen=True)
class RunSettings:
    shots: tuple[int, ...] = (0, 4)
    seeds: tuple[int, ...] = (0,)
    selections: tuple[str, ...] = ("random",)
    limit: int | None = None
    batch_size: int | str = 8  # "auto": start at 64, halve on out-of-memory (evals.execution.BatchSize)
    data_dir: Path | None = None
    output_dir: Path = Path("eval-results")
    prompt_format: str | None = None  # None: the model's own format
    rices: RicesOptions = RicesOptions()
    sources: Mapping[str, str] = field(default_factory=dict)  # task -> folder or hub id, overriding data_dir
    loglik: str | None = None  # ranked tasks: "sum" or "mean" over candidate tokens; None: the task's own
    metric_variants: tuple[str, ...] = ()  # peers' metric variants by name, applied where a task has one
    score_closing: bool = True  # ranked tasks: score the template's text after the answer too (False: m4/OpenFlamingo)
    overwrite: bool = False  # delete the records and journals of the cells this run has, and run them afresh
    skip_bad_samples: bool = False  # a query whose image cannot be decoded is skipped and counted, not fatal
    length_buckets: bool = False  # cut batches from the prompts ordered by length (less padding; `evals run` does)
    fit_context: bool = False  # drop the shots farthest from the query where a prompt passes the model's context
    bootstrap_resamples: int = 1000  # each score's 95% interval (evals.intervals); 0: none. Changes no other number


@dataclass(frozen=True)
class TaskData:
    support: list[Example]
    queries: list[Example]
    by_id: dict[str, Example]
    support_fingerprint: str
    query_fingerprint: str


@dataclass(frozen=True)
class CellPlan:
    """One cell ready to run: what it needs, and its protocol, known before any model call."""

    task: Task
    data: TaskData
    template: PromptTemplate
    selector: Selector
    cell: Cell
    params: GenerationParams
    loglik: str
    variant: str | None
    protocol: Protocol
    stem: Path  # where its record, samples and journal go (results.store.cell_path)


@dataclass(frozen=True)
class Share:
    """One rank's finished model work on a cell (every unit of its shard), as it is sent to rank 0."""

    entries: dict[tuple[str, int], Entry]
    model_seconds: float
    computed: int  # queries sent to the model by this run (not resumed)
    resumed: int
    batch_size: int  # the prompts per call it ended with (auto: what worked)
    rejected: int = 0  # journal entries that did not verify and were recomputed


class Progress(TypingProtocol):
    def start(self, description: str, total: int) -> None: ...
    def advance(self, n: int) -> None: ...


class NoProgress:
    """Progress reporting for library use and tests: shows nothing."""

    def start(self, description: str, total: int) -> None:
        return None

    def advance(self, n: int) -> None:
        return None


def run(
    model: Model, task_names: Sequence[str], settings: RunSettings, progress: Progress | None = None,
    world: World | None = None,
) -> list[CellResult]:
    """Evaluate every cell (task x shots x selection x seed); each cell is written as it finishes.

    Resume: a cell whose record exists under this protocol is read back, not run; one recorded under
    another protocol is refused before any model call (`overwrite` deletes it and runs the cell afresh);
    samples in a cell's journal are not sent to the model again.

    Data parallel (`world`, by default what torchrun/accelerate set in the environment): every rank loads the
    same data and chooses the same shots, runs its strided share of each cell's queries, and rank 0 scores,
    writes and returns the results (every rank returns them).
    """
    progress = progress or NoProgress()
    world = world or current_world(settings.rices.device)
    tasks = [TASKS.get(name) for name in task_names]  # unknown names fail before any work
    prompt_format = PROMPT_FORMATS.get(settings.prompt_format or model.info.prompt_format)
    check_settings(tasks, settings)
    with main_first(world):  # rank 0 fills the RICES feature cache, then each node's first process; the rest read
        plans = [plan for task in tasks for plan in plan_cells(model, task, prompt_format, settings)]
    finished = from_main([finished_result(plan, settings.overwrite) for plan in plans] if world.main else None, world)
    settle_own_journals(plans, finished, settings.overwrite, world)
    return [done or run_cell(model, plan, settings, progress, world) for plan, done in zip(plans, finished)]


def settle_own_journals(plans: Sequence[CellPlan], finished: Sequence[CellResult | None], overwrite: bool, world: World) -> None:
    """Each rank but 0 does to its own journals what rank 0 did to the ones it sees: on nodes that do not share the
    output folder, rank 0 never sees them. A finished cell's journal (any, under --overwrite) is deleted; one of
    another protocol stops every rank with the same line."""
    problem = None
    if world.parallel and not world.main:
        for plan, done in zip(plans, finished):
            own = journal_path(plan.stem, world.rank)
            if done is not None or overwrite:
                own.unlink(missing_ok=True)
            elif problem is None:
                try:
                    check_key(own, journal_key(plan.protocol))
                except (ConfigError, DataError) as error:  # another protocol's, or not a journal: one line
                    problem = str(error)
    problem = first_problem(problem, world)
    if problem:
        raise ConfigError(problem)


def plan_cells(model: Model, task: Task, prompt_format, settings: RunSettings) -> list[CellPlan]:
    """Load the task's data, build its selectors (RICES embeds here, once) and each cell's protocol."""
    template = prompt_format.template(task.template)
    data = load_task_data(task, settings)
    check_shots(task, data, settings.shots)
    selectors = {name: build_selector(name, task, data, model, settings) for name in settings.selections}
    params = replace(task.generation, stop_sequences=template.stop)
    loglik = settings.loglik or task.loglik
    variant = chosen_variant(task, settings)
    plans = []
    for cell in task_cells(task, settings):
        selector = selectors[cell.selection]
        protocol = cell_protocol(model, task, data, template, cell, params, selector.describe(), variant, loglik,
                                 settings.score_closing,
                                 "drop_farthest_shots" if settings.fit_context else "refuse")
        stem = cell_path(settings.output_dir, model.info.id, task.name, cell.selection, cell.shots, cell.seed)
        plans.append(CellPlan(task, data, template, selector, cell, params, loglik, variant, protocol, stem))
    return plans


def finished_result(plan: CellPlan, overwrite: bool) -> CellResult | None:
    """The cell's stored result when it finished under this protocol; None when it is still to run."""
    record, journals = record_path(plan.stem), journal_files(plan.stem)
    if overwrite:
        for path in (record, samples_path(plan.stem), *journals):
            path.unlink(missing_ok=True)
        return None
    if record.exists():
        stored = read_cell(record)
        refuse_other_protocol(record, stored.protocol, plan.protocol)
        for journal in journals:
            journal.unlink(missing_ok=True)  # left when a run was killed between writing the record and this
        return stored
    for journal in journals:
        check_key(journal, journal_key(plan.protocol))  # a journal of another protocol stops the run here
    return None


def refuse_other_protocol(record: Path, stored: Protocol, wanted: Protocol) -> None:
    """Never mix: a record of another protocol under this cell's name stops the run before any model call."""
    old, new = {**stored.comparable(), "seed": stored.seed}, {**wanted.comparable(), "seed": wanted.seed}
    differing = [key for key in new if old.get(key) != new[key]]
    if differing:
        raise ConfigError(f"{record}: holds a result of another protocol (differs in {', '.join(differing)}); "
                          "pass --overwrite to replace it, or choose another output folder")


def run_cell(model: Model, plan: CellPlan, settings: RunSettings, progress: Progress, world: World = World()) -> CellResult:
    """Run the cell's model work (this rank's share of it), then, on rank 0, score and write it."""
    started = time.perf_counter()
    requests = build_requests(plan.task, plan.template, plan.selector, plan.data, plan.cell, settings.score_closing)
    requests = fit_to_context(model, plan, requests, settings)
    agree_on_requests(plan, requests, world)
    shares = gather(run_share(model, plan, shard(requests, world), settings, progress, world), world)
    auto_batch = settings.batch_size == "auto"
    result = score_on_main(plan, requests, shares, started, settings, auto_batch, world)
    if world.parallel:  # the record is written: this rank's journal (on its own node, perhaps) has served
        journal_path(plan.stem, world.rank).unlink(missing_ok=True)
    return result


def score_on_main(plan: CellPlan, requests: Sequence[Request], shares: Sequence[Share] | None, started: float,
                  settings: RunSettings, auto_batch: bool, world: World) -> CellResult:
    """Rank 0 scores and writes the cell; every rank gets its result, or the error that stopped it: the other ranks
    wait for rank 0 here, and would otherwise wait until the collective timed out."""
    outcome: CellResult | Exception | None = None
    if shares is not None:
        try:
            outcome = score_cell(plan, requests, shares, started, settings.output_dir, auto_batch,
                                 settings.bootstrap_resamples)
        except Exception as error:
            if not world.parallel:
                raise
            outcome = error
    outcome = from_main(outcome if world.main else None, world)
    if isinstance(outcome, Exception):
        if world.main:
            raise outcome
        raise outcome if isinstance(outcome, EvalsError) else EvalsError(f"rank 0 stopped: {type(outcome).__name__}: {outcome}")
    return outcome


def agree_on_requests(plan: CellPlan, requests: Sequence[Request], world: World) -> None:
    """Refuse, on every rank and before any model call, a rank whose queries, shots or prompts differ from rank 0's:
    rank 0 scores every output under its own shots, so a node that read other data, or computed other RICES features
    (a --cache-dir not shared with rank 0's node, filled on another kind of device), would be scored wrongly."""
    digest = hashlib.sha256(json.dumps([[r.query.id, list(r.shots.ids), prompt_texts(r)] for r in requests]).encode())
    differing = first_differing(digest.hexdigest(), world)
    if differing is not None:
        rank, host, main_host = differing
        cell = plan.cell
        raise ConfigError(f"{plan.task.name} {cell.shots}-shot {cell.selection} seed {cell.seed}: rank {rank} (host {host}) "
                          f"built other queries, shots or prompts than rank 0 (host {main_host}); every node must read "
                          "the same task data and RICES features: share --data-dir and --cache-dir between the nodes, "
                          "or copy rank 0's to each")


def run_share(
    model: Model, plan: CellPlan, requests: Sequence[Request], settings: RunSettings, progress: Progress, world: World
) -> Share:
    """The model work of these requests, journaled (per rank when data parallel) so a killed run resumes it."""
    task, cell = plan.task, plan.cell
    units = work_units(requests)
    batch = BatchSize(settings.batch_size)
    progress.start(f"{task.name} {cell.shots}-shot {cell.selection} seed {cell.seed}", len(units))
    with Journal(journal_path(plan.stem, world.rank if world.parallel else None), journal_key(plan.protocol)) as journal:
        verify_journal(journal, units, {q.id for q in plan.data.queries}, task.kind)
        check_journal(journal, units)
        resumed = fully_journaled(units, journal.entries)
        progress.advance(sum(u.key in journal.entries for u in units))
        call = ModelCall(task.kind, plan.params, plan.loglik)
        done, model_seconds = run_units(model, call, units, journal, batch, settings.skip_bad_samples, progress.advance,
                                        settings.length_buckets)
    entries = {u.key: done[u.key] for u in units}  # a journal of another world size may hold other ranks' units
    return Share(entries, model_seconds, len(requests) - resumed, resumed, batch.size, journal.rejected)


def score_cell(
    plan: CellPlan, requests: Sequence[Request], shares: Sequence[Share], started: float, output_dir: Path, auto_batch: bool,
    resamples: int = 1000,
) -> CellResult:
    """Postprocess and score every query's output (from all ranks), each score's bootstrap interval (`resamples`
    resamples; 0: none), write the cell, drop its journals."""
    task, cell, data = plan.task, plan.cell, plan.data
    outputs, failed = collect_outputs(task, requests, {key: e for share in shares for key, e in share.entries.items()})
    scored = [r for r in requests if r.query.id not in failed]
    if task.kind == "generate":
        predictions = {r.query.id: task.postprocess(outputs[r.query.id], plan.template.stop) for r in scored}
    else:
        predictions = {r.query.id: task.decide(r.query, outputs[r.query.id]) for r in scored}
    queries = scored_queries(task, data, failed)
    metric = task.metric_named(plan.variant)(predictions, queries)
    samples = [
        SampleRecord(r.query.id, r.shots.ids, prompt_texts(r), outputs[r.query.id], predictions[r.query.id],
                     metric.per_sample[r.query.id], r.shots.similarities,
                     shots_requested=r.shots.requested if r.shots.requested is not None else len(r.shots.ids),
                     shots_delivered=len(r.shots.ids), image_ids=tuple(ref.id for ref in r.query.images))
        for r in scored
    ]
    result = CellResult(
        task=task.name, shots=cell.shots, selection=cell.selection, seed=cell.seed,
        scores=dict(metric.scores), breakdowns={k: dict(v) for k, v in metric.breakdowns.items()},
        protocol=plan.protocol, timing=cell_timing(started, shares, auto_batch),
        failures={"failed_samples": len(failed), "reasons": failed}, integrity=cell_integrity(plan, shares),
        intervals=cell_intervals(task, metric, queries, resamples),
    )
    write_cell(output_dir, result, samples)
    journal_path(plan.stem).unlink(missing_ok=True)  # the samples file now holds all the journals did
    for journal in journal_files(plan.stem):  # (the ranks' journals of a data-parallel run)
        journal.unlink(missing_ok=True)
    return result


def cell_integrity(plan: CellPlan, shares: Sequence[Share]) -> dict[str, int]:
    """What this run found corrupt and recomputed for the cell: journal entries (all ranks) and feature cache files
    (a selector without a cache, such as random, has none: hence the default)."""
    return {"journal_entries_rejected": sum(s.rejected for s in shares),
            "feature_cache_entries_rejected": getattr(plan.selector, "cache_rejections", 0)}


def scored_queries(task: Task, data: TaskData, failed: Mapping[str, str]) -> list[Example]:
    queries = [q for q in data.queries if q.id not in failed]
    if not queries:  # load_task_data refused an empty split: here every sample failed
        raise DataError(f"task '{task.name}': every sample failed (first: {next(iter(failed.values()))})")
    return queries


def cell_timing(started: float, shares: Sequence[Share], auto_batch: bool = False) -> dict[str, float]:
    """Wall seconds of the cell on rank 0 and model seconds per rank (their mean over ranks), counting only what
    this run computed (not what it resumed); the batch size is the smallest a rank ended with."""
    wall = time.perf_counter() - started
    model_seconds = sum(s.model_seconds for s in shares) / len(shares)
    computed, resumed = sum(s.computed for s in shares), sum(s.resumed for s in shares)
    timing = {
        "wall_seconds": round(wall, 3), "model_seconds": round(model_seconds, 3),
        "examples_per_second": round(computed / wall, 2) if wall else 0.0,
        "overhead_fraction": round(max(0.0, 1.0 - model_seconds / wall), 3) if wall else 0.0,
        "resumed_samples": resumed,
    }
    if auto_batch:  # a fixed batch size is the setting itself; what auto settled on is worth recording
        timing["batch_size"] = min(s.batch_size for s in shares)
    if len(shares) > 1:
        timing["processes"] = len(shares)
    return timing


def prompt_texts(request: Request) -> str | list[str]:
    texts = [p.text for p in request.prompts]
    return texts[0] if len(texts) == 1 else texts


def chosen_variant(task: Task, settings: RunSettings) -> str | None:
    return next((v for v in settings.metric_variants if v in task.metric_variants), None)


def check_settings(tasks: Sequence[Task], settings: RunSettings) -> None:
    """Unknown selections, log-likelihood reductions or metric variants fail before any work."""
    for selection in settings.selections:
        SELECTORS.get(selection)
    if settings.loglik is not None and settings.loglik not in LOGLIK_REDUCTIONS:
        raise ConfigError(f"unknown log-likelihood reduction '{settings.loglik}' (choose from {', '.join(LOGLIK_REDUCTIONS)})")
    BatchSize(settings.batch_size)  # a bad batch size fails here, not at the first cell
    known = {v for t in tasks for v in t.metric_variants}
    for variant in settings.metric_variants:
        if variant not in known:
            raise ConfigError(f"no task in this run has metric variant '{variant}' (variants: {', '.join(sorted(known)) or 'none'})")


def load_task_data(task: Task, settings: RunSettings) -> TaskData:
    source = task.source(settings.data_dir, settings.sources.get(task.name))
    support = task.read(source, task.support_split)
    queries = task.read(source, task.query_split)
    if not queries:  # a reader or filter left nothing (an empty split of a hub copy, a subset with no images)
        raise DataError(f"task '{task.name}': its query split '{task.query_split}' has no samples to evaluate")
    if settings.limit is not None:
        queries = queries[: settings.limit]
    return TaskData(support, queries, {e.id: e for e in support}, fingerprint(support), fingerprint(queries))


def check_shots(task: Task, data: TaskData, shots: Sequence[int]) -> None:
    """Fail before any model call when a shot count cannot be met (shots never repeat within a prompt)."""
    if not shots or any(k < 0 for k in shots):
        raise ConfigError(f"shot counts must be one or more integers >= 0, got {list(shots)}")
    shares_examples = any(q.source_id in data.by_id for q in data.queries)  # a query is never its own shot
    available = len(data.support) - (1 if shares_examples else 0)
    runnable = [k for k in shots if k not in skipped_shots(task, shots)] or [0]
    needed = max(max(runnable), task.zero_shot_text_shots if 0 in runnable else 0)
    if needed > available:
        raise ConfigError(
            f"task '{task.name}': {needed} shots requested but its support split '{task.support_split}' "
            f"has {available} examples"
        )


def task_cells(task: Task, settings: RunSettings) -> Iterator[Cell]:
    for shots in settings.shots:
        if task.max_shots is not None and shots > task.max_shots:
            continue  # e.g. Winoground is zero-shot only; `skipped_shots` tells the user
        for selection in settings.selections:
            for seed in settings.seeds:
                yield Cell(task.name, shots, selection, seed)


def skipped_shots(task: Task, shots: Sequence[int]) -> list[int]:
    """Shot counts a zero-shot-only task (or one with a shot cap) does not run."""
    return [k for k in shots if task.max_shots is not None and k > task.max_shots]


def build_selector(
    name: str, task: Task, data: TaskData, model: Model | None, settings: RunSettings, on_batch=None
) -> Selector:
    """Built once per task and selection, reused by every shot count and seed (RICES embeds once)."""
    context = SelectionContext(
        task.name, task.support_split, task.query_split, data.support, data.queries, data.support_fingerprint,
        data.query_fingerprint, bundled_data=task.default_root is not None, model=model, rices=settings.rices,
        on_batch=on_batch,
    )
    return SELECTORS.get(name)(context)


def build_requests(
    task: Task, template: PromptTemplate, selector: Selector, data: TaskData, cell: Cell, score_closing: bool = True
) -> list[Request]:
    """Choose every query's shots and render its prompts. Zero-shot (Flamingo): text-only shots for
    generative tasks (with RICES, the retrieved examples' text), none for ranked tasks."""
    text_only = cell.shots == 0
    k = task.zero_shot_text_shots if text_only else cell.shots
    choices = selector.select_many(data.queries, k, cell.seed)
    return [request_for(task, template, data, query, choice, text_only, score_closing)
            for query, choice in zip(data.queries, choices)]


def request_for(task: Task, template: PromptTemplate, data: TaskData, query: Example, choice: ShotChoice, text_only: bool,
                score_closing: bool) -> Request:
    """One query's prompts (a ranked task's views each get one) with these shots."""
    shots = [(data.by_id[i], task.shot_answer(data.by_id[i])) for i in choice.ids]
    if task.kind == "generate":
        return Request(query, choice, (render(template, shots, query, text_only_shots=text_only),))
    views = task.rank_queries(query)
    prompts = tuple(render(template, shots, v.example, text_only_shots=text_only) for v in views)
    candidates = tuple(tuple(template.continuation(c, score_closing) for c in v.candidates) for v in views)
    return Request(query, choice, prompts, candidates)


def fit_to_context(model: Model, plan: CellPlan, requests: Sequence[Request], settings: RunSettings) -> list[Request]:
    """The cell's requests checked against the model's context before any model call (evals.context): refused with
    the arithmetic, or with `fit_context` the shots farthest from the query dropped where a prompt does not fit."""
    text_only = plan.cell.shots == 0

    def rerender(request: Request, dropped: int) -> Request:
        return request_for(plan.task, plan.template, plan.data, request.query, fewer_shots(request.shots, dropped),
                           text_only, settings.score_closing)

    where = f"{plan.task.name} {plan.cell.shots}-shot {plan.cell.selection} seed {plan.cell.seed}"
    return fit_requests(requests, model_budget(model), plan.params, plan.task.kind == "generate", settings.fit_context,
                        rerender, where)


def fingerprint(examples: Sequence[Example]) -> str:
    """A content hash of the examples as loaded (ids, text, references, image ids)."""
    digest = hashlib.sha256()
    for e in examples:
        row = [e.id, sorted(e.fields.items()), list(e.references), sorted(e.meta.items()), [i.id for i in e.images]]
        digest.update(json.dumps(row, ensure_ascii=False).encode())
    return "sha256:" + digest.hexdigest()[:16]


def cell_protocol(
    model: Model, task: Task, data: TaskData, template: PromptTemplate, cell: Cell, params, selection_details: dict,
    variant: str | None, loglik: str, score_closing: bool, context_fit: str = "refuse",
) -> Protocol:
    generate = task.kind == "generate"
    return Protocol(
        model=model.info.id, model_family=model.info.family, model_revision=model.info.revision,
        dtype=model.info.dtype, task=task.name, support_split=task.support_split, query_split=task.query_split,
        support_fingerprint=data.support_fingerprint, query_fingerprint=data.query_fingerprint,
        n_queries=len(data.queries), shots=cell.shots, selection=cell.selection, selection_details=selection_details,
        seed=cell.seed,
        zero_shot=("n/a" if cell.shots else f"{task.zero_shot_text_shots} text-only shots" if generate else "no shots"),
        prompt_format=template.format, template=template.key, template_hash=template.hash,
        kind=task.kind,
        generation={"max_new_tokens": params.max_new_tokens, "num_beams": params.num_beams,
                    "length_penalty": params.length_penalty, "stop_sequences": list(params.stop_sequences)} if generate else {},
        loglik=loglik if not generate else "n/a",
        candidate_text="n/a" if generate else f"answer + closing {template.closing!r}" if score_closing else "answer only",
        metric=variant or task.metric.__name__,
        postprocess=(task.postprocess if generate else task.decide).__name__,
        model_args=model_args(model), placement=getattr(model, "placement", {}), context_fit=context_fit,
    )
