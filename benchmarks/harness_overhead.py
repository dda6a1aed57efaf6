"""Harness overhead: the share of a few-shot sweep's wall time spent outside model calls (IDEFICS, arXiv 2306.16527).

Runs the demo sweep (every demo task, shots 0 and 4 as in the Flamingo (arXiv 2204.14198) and IDEFICS
evaluations, seed 0, the first `--limit` queries of each task) in this process through `evals.runner.run`,
as `evals run` does (length-bucketed batches of 8), once per model:

- "realistic": IDEFICS built from `benchmarks/feature_cache.py`'s config (random weights, no download),
  whose vision/language cost split is IDEFICS-9B's at CPU size (26M parameters, 224 px images). Reused,
  not rebuilt, so both benchmarks time the same model. On one CPU thread a prompt costs it a few tenths of
  a second, the order of what IDEFICS-9B costs on one GPU, so the harness's own work (CPU-bound Python,
  the same on any device) weighs against the model about as it would in a real run. It runs first and
  so pays the run's one-off costs (METEOR's JVM start, lazy imports, first image decodes): an upper bound.
- "tiny": the bundled tiny IDEFICS (1.5M parameters, 48 px images): unrealistically cheap, so its share is high.

Every cell record carries `timing.overhead_fraction` (1 - model seconds / cell wall seconds); this prints,
per model, the sums over cells, per-task shares, the sweep's whole wall time (which adds data loading and
shot selection before the cells) and where the overhead goes: a few harness functions are wrapped with a
stopwatch for the run (microseconds a call), so the numbers come from the same run, not a second one.
One torch thread (--threads): on a shared 2-core machine two OpenMP threads spin-wait whenever another
process takes a core, which would turn into noise in the model's seconds.

    python benchmarks/harness_overhead.py [--limit 16] [--threads 1] [--models realistic,tiny]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import transformers
from feature_cache import scaled_config  # the sibling benchmark (this script's folder is on sys.path)
from transformers import IdeficsConfig, IdeficsForVisionText2Text, IdeficsProcessor

import evals.runner
import metrics.captioning
from evals.journal import Journal
from evals.models import BUNDLED_CHECKPOINT, DEFAULT_MODEL, resolve_model
from evals.models.base import Model, ModelInfo
from evals.models.idefics import IdeficsModel
from evals.registry import suite_tasks
from evals.runner import RunSettings
from results.schema import CellResult
from results.store import read_cell
from tasks.base import Task

SHOTS = (0, 4)


def realistic_model() -> IdeficsModel:
    """IDEFICS-9B's vision/LM cost split at CPU size, with the bundled tokenizer and a 224 px image processor."""
    transformers.utils.logging.disable_progress_bar()
    tiny = IdeficsProcessor.from_pretrained(str(BUNDLED_CHECKPOINT))
    processor = IdeficsProcessor(type(tiny.image_processor)(image_size=224), tiny.tokenizer)
    torch.manual_seed(0)
    model = IdeficsForVisionText2Text(scaled_config(IdeficsConfig.from_pretrained(str(BUNDLED_CHECKPOINT)))).eval()
    return IdeficsModel(model, processor, ModelInfo("benchmark-9b-ratio", "idefics", "random", "float32", "idefics"), "cpu")


MODELS: dict[str, Callable[[], Model]] = {"realistic": realistic_model, "tiny": lambda: resolve_model(DEFAULT_MODEL)}


class Stopwatch:
    """Seconds spent inside wrapped callables, per label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, label: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            tick = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - tick

        return timed


def timed_metric_named(stopwatch: Stopwatch, original: Callable) -> Callable:
    """`Task.metric_named` whose returned metric is timed, per task (the runner looks the metric up per cell)."""
    def metric_named(task: Task, variant: str | None):
        return stopwatch.wrap(f"metric_scoring {task.name}", original(task, variant))

    return metric_named


JVM_LOAD = "java meteor_first_call (the JVM loads its tables if first in the process)"


def timed_meteor_score(stopwatch: Stopwatch, original: Callable) -> Callable:
    """`Meteor.score`, its first call in the process timed apart: the JVM started a moment before loads its tables
    then, once per process (metrics.captioning keeps it warm), so a longer run spreads that cost thin."""
    def score(meteor, gts, res) -> float:
        label = "java meteor_scoring" if JVM_LOAD in stopwatch.seconds else JVM_LOAD
        return stopwatch.wrap(label, original)(meteor, gts, res)

    return score


@contextmanager
def attributed(stopwatch: Stopwatch) -> Iterator[None]:
    """Wrap the harness steps whose time is worth naming for the duration of a run; restored afterwards."""
    targets = [
        (evals.runner, "plan_cells", "data_loading_and_selectors"),  # before the cells: not in any cell's wall
        (evals.runner, "build_requests", "shot_selection_and_prompt_rendering"),
        (evals.runner, "write_cell", "record_writing"),  # after the cell's wall is taken: not in it either
        (Journal, "append", "journaling"),
        (metrics.captioning, "ptb_tokenize", "java ptb_tokenizer"),  # inside metric_scoring (captioning)
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    original_metric_named, original_meteor_score = Task.metric_named, metrics.captioning.Meteor.score
    try:
        for owner, name, label in targets:
            setattr(owner, name, stopwatch.wrap(label, getattr(owner, name)))
        Task.metric_named = timed_metric_named(stopwatch, Task.metric_named)
        metrics.captioning.Meteor.score = timed_meteor_score(stopwatch, original_meteor_score)
        yield
    finally:
        Task.metric_named, metrics.captioning.Meteor.score = original_metric_named, original_meteor_score
        for owner, name, function in originals:
            setattr(owner, name, function)


def shares(results: Sequence[CellResult]) -> dict[str, float]:
    wall = sum(r.timing["wall_seconds"] for r in results)
    model = sum(r.timing["model_seconds"] for r in results)
    return {"wall_seconds": round(wall, 3), "model_seconds": round(model, 3),
            "overhead_fraction": round(1 - model / wall, 3) if wall else 0.0}


def sweep(name: str, limit: int) -> dict:
    """One model over the demo sweep in a fresh output folder; its timing, per task and attributed."""
    model = MODELS[name]()
    tasks = suite_tasks("demo")
    stopwatch = Stopwatch()
    with tempfile.TemporaryDirectory() as output, attributed(stopwatch):
        settings = RunSettings(shots=SHOTS, seeds=(0,), limit=limit, output_dir=Path(output), length_buckets=True)
        start = time.perf_counter()
        results = evals.runner.run(model, tasks, settings)
        sweep_wall = time.perf_counter() - start
        records = [read_cell(path) for path in Path(output).rglob("*.json")]
    totals = shares(results)
    outside = {label: round(stopwatch.seconds.pop(label, 0.0), 3) for label in ("data_loading_and_selectors", "record_writing")}
    in_cells = totals["wall_seconds"] - totals["model_seconds"]
    named = {label: round(seconds, 3) for label, seconds in sorted(stopwatch.seconds.items())}
    other = in_cells - sum(s for label, s in stopwatch.seconds.items() if not label.startswith("java"))
    jvm_start = stopwatch.seconds.get(JVM_LOAD, 0.0)
    return {
        "model": model.info.id, "parameters": sum(p.numel() for p in model.model.parameters()),
        "cells": len(results), **totals,
        "sweep_wall_seconds": round(sweep_wall, 3),
        "sweep_overhead_fraction": round(1 - totals["model_seconds"] / sweep_wall, 3),
        "per_task_overhead_fraction": {task: shares([r for r in results if r.task == task])["overhead_fraction"] for task in tasks},
        # once per process, not per cell: what the share is when a longer run has spread it thin
        "overhead_fraction_without_meteor_jvm_start": round(1 - totals["model_seconds"] / (totals["wall_seconds"] - jvm_start), 3),
        "overhead_in_cells_seconds": {**named, "other (batching, postprocessing, gathering)": round(other, 3)},
        "overhead_outside_cells_seconds": outside,
        "records_read_back": len(records),
        "records_with_overhead_fraction": sum("overhead_fraction" in r.timing for r in records),
        "max_record_overhead_fraction": max(r.timing["overhead_fraction"] for r in records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=16, help="queries per task")
    # One thread: on a shared 2-core machine two OpenMP threads spin-wait whenever another process takes a core.
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--models", default="realistic,tiny", help=f"comma-separated, in run order: {', '.join(MODELS)}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)} (choose from {', '.join(MODELS)})")
    report = {"benchmark": "harness_overhead", "tasks": "demo suite", "shots": list(SHOTS), "seed": 0, "limit": args.limit,
              "batch_size": RunSettings().batch_size, "torch_threads": torch.get_num_threads(), "target_overhead_fraction": 0.10}
    report["models"] = {name: sweep(name, args.limit) for name in names}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
