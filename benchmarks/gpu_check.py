"""GPU check: the bundled tiny IDEFICS through `evals run` on CUDA, each path compared sample by sample; prints JSON.

One command to run on a machine with NVIDIA GPUs (a few minutes on one H100) before trusting it with a real
sweep. Each check runs the demo suite (`--model tiny-idefics`, the first `--limit` queries of every task) in
its own `evals run` process and compares the per-sample records (`*.samples.jsonl`) with a reference run:
predictions exactly, candidate log-likelihoods (and the log-likelihoods demo_match predicts) within a
tolerance, shot ids and rendered prompts exactly.

- cuda_float32: `--device cuda` against `--device cpu`, both float32.
- bfloat16: `--dtype bfloat16` runs every cell; how many predictions equal float32's is reported, not required.
- batch_size_auto: `--batch-size auto` against batches of 8 (a batch size never changes a prediction).
- feature_cache: EVALS_FEATURE_CACHE=0 (every image re-encoded) against the cache.
- prefix_reuse: the ranked tasks with `score` replaced by `score_naive` (one full forward per candidate).
- placement: `--model-args device_map=auto,max_memory=0:2MiB;cpu:4GiB` (part of the model on the CPU) against
  the whole model on the GPU; reports the record's `protocol.placement`.
- two_processes: `torchrun --nproc_per_node 2` against one process; needs two GPUs.

`--dry-run` runs the same comparisons on the CPU so the script itself can be tested without a GPU: cuda vs cpu
becomes cpu vs cpu, bfloat16 runs on the CPU, placement splits the model between CPU memory and an offload
folder, and the two processes talk through gloo. A check that fails or raises never stops the others.

    bash benchmarks/gpu_check.sh [--dry-run] [--limit 2] [--shots 0,4] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MODEL = "tiny-idefics"
# Same device, another path (batching, cache, prefix, processes): float32 sums in another order. Across devices
# (CPU vs CUDA, or a model split between them) kernels differ too (cuDNN convolutions may use TF32).
SAME_DEVICE_TOLERANCE = 1e-4
CROSS_DEVICE_TOLERANCE = 5e-3
TOLERANCE_RULE = "|a - b| <= tolerance * max(1, |b|)"
EXAMPLES_SHOWN = 5  # mismatching samples named in a check's details


class RunFailed(Exception):
    """An `evals run` the check needs exited non-zero, timed out or wrote nothing."""


@dataclass
class Setup:
    device: str  # "cuda", or "cpu" in a dry run
    dry_run: bool
    limit: int
    shots: str
    workdir: Path
    timeout: float
    gpus: int
    budget: float  # seconds all runs together may take (inf: no limit)
    runs: dict[str, Path | RunFailed] = field(default_factory=dict)  # each run once, shared by the checks
    run_seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


# ---------------------------------------------------------------- runs


def evals_command(setup: Setup, device: str, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "evals", "run", "--model", MODEL, "--limit", str(setup.limit), "--shots", setup.shots,
            "--device", device, "--output-dir", str(output), *extra]


def run_specs(setup: Setup) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Every run a check may need, by name: its command and the environment it adds."""
    folder, device = setup.workdir, setup.device
    cache_on, cache_off = {"EVALS_FEATURE_CACHE": "1"}, {"EVALS_FEATURE_CACHE": "0"}
    placement = ("device_map=auto,max_memory=cpu:2MiB,offload_folder=" + str(folder / "offload") if setup.dry_run
                 else "device_map=auto,max_memory=0:2MiB;cpu:4GiB")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = evals_command(setup, device, folder / "two_processes")
    return {
        "cpu_float32": (evals_command(setup, "cpu", folder / "cpu_float32"), cache_on),
        "float32": (evals_command(setup, device, folder / "float32"), cache_on),
        "bfloat16": (evals_command(setup, device, folder / "bfloat16", "--dtype", "bfloat16"), cache_on),
        "batch_auto": (evals_command(setup, device, folder / "batch_auto", "--batch-size", "auto"), cache_on),
        "cache_off": (evals_command(setup, device, folder / "cache_off"), cache_off),
        "naive": ([sys.executable, __file__, "naive-run", "--device", device, "--limit", str(setup.limit),
                   "--shots", setup.shots, "--output-dir", str(folder / "naive")], cache_on),
        "placement": (evals_command(setup, device, folder / "placement", "--model-args", placement), cache_on),
        "two_processes": ([*torchrun, *two[1:]], cache_on),
    }


def output_of(setup: Setup, name: str) -> Path:
    """The output folder of run `name`, running it on first use; a failed run raises RunFailed for every check."""
    if name not in setup.runs:
        started = time.perf_counter()
        try:
            setup.runs[name] = execute(*run_specs(setup)[name], time_left(setup))
        except RunFailed as failure:
            setup.runs[name] = failure
        setup.run_seconds[name] = round(time.perf_counter() - started, 2)
    found = setup.runs[name]
    if isinstance(found, RunFailed):
        raise RunFailed(f"run '{name}': {found}")
    return found


def time_left(setup: Setup) -> float:
    """Seconds the next run may take: its own limit, within what is left of the whole check's budget."""
    left = setup.started + setup.budget - time.monotonic()
    if left < 1:
        raise RunFailed("not started: the check's --budget is spent")
    return min(setup.timeout, left)


def execute(command: list[str], env: dict[str, str], timeout: float) -> Path:
    """Run one command; its output folder (the value after --output-dir) once it holds sample files."""
    output = Path(command[command.index("--output-dir") + 1])
    # A session of its own, so that a run past its time goes with its children (torchrun's ranks) too.
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise RunFailed(f"timed out after {timeout:.0f} s") from None
    if process.returncode != 0:
        raise RunFailed(f"exit {process.returncode}: {last_line(stderr or stdout)}")
    if not list(output.rglob("*.samples.jsonl")):
        raise RunFailed(f"wrote no samples under {output}")
    return output


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def naive_run(device: str, limit: int, shots: str, output_dir: Path) -> None:
    """The demo suite's ranked tasks through the runner, as `evals run` runs them, with the model's prefix-reusing
    `score` replaced by `score_naive` (the reference: prompt and candidate in one forward, per candidate)."""
    from dataclasses import replace

    from evals.distributed import check_device
    from evals.models import resolve_model
    from evals.registry import TASKS, suite_tasks
    from evals.runner import RunSettings, run

    model = resolve_model(MODEL, device=check_device(device))
    model.score = model.score_naive  # this one instance only
    ranked = [name for name in suite_tasks("demo") if TASKS.get(name).kind == "rank"]
    settings = RunSettings(shots=tuple(int(s) for s in shots.split(",")), limit=limit, output_dir=output_dir)
    run(model, ranked, replace(settings, length_buckets=True))


# ---------------------------------------------------------------- comparing samples


def read_samples(output: Path) -> dict[tuple[str, str], dict]:
    """Every sample record of a run by (cell file, sample id)."""
    samples = {}
    for path in sorted(output.rglob("*.samples.jsonl")):
        cell = str(path.relative_to(output).parent / path.name.removesuffix(".samples.jsonl"))
        cell = cell.split("/", 1)[1]  # without the model folder
        for line in path.read_text().splitlines():
            record = json.loads(line)
            samples[(cell, record["id"])] = record
    return samples


def read_records(output: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(output.rglob("*shot-seed*.json"))]


def numbers(value) -> Iterator[float]:
    """The floats inside a sample's output or prediction (log-likelihoods), in order."""
    if isinstance(value, float):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from numbers(item)
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from numbers(value[key])


def without_numbers(value):
    """The value with every float replaced by a placeholder: what must be equal exactly."""
    if isinstance(value, float):
        return "<float>"
    if isinstance(value, (list, tuple)):
        return [without_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: without_numbers(item) for key, item in value.items()}
    return value


@dataclass
class Comparison:
    samples: int = 0
    missing: list[str] = field(default_factory=list)  # in the reference, not in the run (or the other way)
    differing: dict[str, list[str]] = field(default_factory=dict)  # field -> samples whose field differs
    logliks: int = 0
    largest_difference: float = 0.0
    largest_relative: float = 0.0  # the difference / max(1, |reference|) the tolerance bounds

    def within(self, tolerance: float) -> bool:
        return not self.missing and not self.differing and self.largest_relative <= tolerance

    def details(self, tolerance: float | None) -> dict:
        shown = {name: keys[:EXAMPLES_SHOWN] for name, keys in self.differing.items()}
        found = {"samples_compared": self.samples, "logliks_compared": self.logliks,
                 "largest_loglik_difference": self.largest_difference,
                 "largest_relative_difference": self.largest_relative,
                 "differing": {name: len(keys) for name, keys in self.differing.items()}}
        if tolerance is not None:
            found["tolerance"] = f"{TOLERANCE_RULE}, tolerance {tolerance:g}"
        if shown:
            found["differing_examples"] = shown
        if self.missing:
            found["missing"] = self.missing[:EXAMPLES_SHOWN]
            found["missing_count"] = len(self.missing)
        return found


def compare_samples(run: dict, reference: dict) -> Comparison:
    """Prompts, shots and predictions exactly; every float in outputs and predictions numerically."""
    result = Comparison(missing=[f"{cell}:{key}" for cell, key in sorted(set(run) ^ set(reference))])
    for key in sorted(set(run) & set(reference)):
        result.samples += 1
        found, wanted = run[key], reference[key]
        for name in ("shot_ids", "prompt", "prediction"):
            if without_numbers(found[name]) != without_numbers(wanted[name]):
                result.differing.setdefault(name, []).append(f"{key[0]}:{key[1]}")
        for name in ("output", "prediction"):
            add_numbers(result, list(numbers(found[name])), list(numbers(wanted[name])), f"{key[0]}:{key[1]}")
    return result


def add_numbers(result: Comparison, found: list[float], wanted: list[float], key: str) -> None:
    if len(found) != len(wanted):
        result.differing.setdefault("loglik_count", []).append(key)
        return
    for a, b in zip(found, wanted):
        result.logliks += 1
        difference = abs(a - b) if math.isfinite(a) and math.isfinite(b) else (0.0 if a == b else math.inf)
        result.largest_difference = max(result.largest_difference, difference)
        result.largest_relative = max(result.largest_relative, difference / max(1.0, abs(b)))


def only_ranked(samples: dict) -> dict:
    """The samples whose output is candidate log-likelihoods (ranked tasks), not generated text."""
    return {key: record for key, record in samples.items() if not isinstance(record["output"], str)}


def compared(run: str, reference: str, setup: Setup, tolerance: float, ranked_only: bool = False) -> dict:
    """A check's verdict on run vs reference: equal within `tolerance`, with its details."""
    found, wanted = read_samples(output_of(setup, run)), read_samples(output_of(setup, reference))
    if ranked_only:
        found, wanted = only_ranked(found), only_ranked(wanted)
    comparison = compare_samples(found, wanted)
    ok = comparison.within(tolerance) and comparison.samples > 0
    return {"ok": ok, "compared_with": reference, **comparison.details(tolerance)}


# ---------------------------------------------------------------- checks


def check_device_float32(setup: Setup) -> dict:
    return compared("float32", "cpu_float32", setup, CROSS_DEVICE_TOLERANCE)


def check_bfloat16(setup: Setup) -> dict:
    """bfloat16 must run every cell with finite numbers; its agreement with float32 is information."""
    found, wanted = read_samples(output_of(setup, "bfloat16")), read_samples(output_of(setup, "float32"))
    comparison = compare_samples(found, wanted)
    same = sum(1 for key in set(found) & set(wanted) if found[key]["prediction"] == wanted[key]["prediction"])
    finite = all(math.isfinite(x) for record in found.values() for x in numbers(record["output"]))
    details = comparison.details(None)
    details.pop("differing_examples", None)
    return {"ok": not comparison.missing and finite and comparison.samples > 0, "compared_with": "float32",
            "all_logliks_finite": finite, "predictions_equal_to_float32": same, **details}


def check_batch_size_auto(setup: Setup) -> dict:
    verdict = compared("batch_auto", "float32", setup, SAME_DEVICE_TOLERANCE)
    sizes = sorted({r["timing"].get("batch_size") for r in read_records(output_of(setup, "batch_auto"))}, key=str)
    return {**verdict, "batch_sizes_chosen": sizes}


def check_feature_cache(setup: Setup) -> dict:
    return {**compared("cache_off", "float32", setup, SAME_DEVICE_TOLERANCE), "cache_on": "float32 run"}


def check_prefix_reuse(setup: Setup) -> dict:
    return compared("naive", "float32", setup, SAME_DEVICE_TOLERANCE, ranked_only=True)


def check_placement(setup: Setup) -> dict:
    verdict = compared("placement", "float32", setup, CROSS_DEVICE_TOLERANCE)
    placements = [r["protocol"].get("placement") for r in read_records(output_of(setup, "placement"))]
    known = [p for p in placements if p is not None]
    return {**verdict, "placement": known[0] if known else "(no protocol.placement in the records)",
            "placement_same_in_every_cell": all(p == known[0] for p in known) if known else None}


def check_two_processes(setup: Setup) -> dict:
    if setup.device == "cuda" and setup.gpus < 2:
        return {"skipped": "needs 2 GPUs"}
    verdict = compared("two_processes", "float32", setup, SAME_DEVICE_TOLERANCE)
    processes = {r["timing"].get("processes") for r in read_records(output_of(setup, "two_processes"))}
    return {**verdict, "ok": verdict["ok"] and processes == {2}, "processes_recorded": sorted(processes, key=str)}


CHECKS: dict[str, Callable[[Setup], dict]] = {
    "cuda_float32": check_device_float32,
    "bfloat16": check_bfloat16,
    "batch_size_auto": check_batch_size_auto,
    "feature_cache": check_feature_cache,
    "prefix_reuse": check_prefix_reuse,
    "placement": check_placement,
    "two_processes": check_two_processes,
}


def run_check(check: Callable[[Setup], dict], setup: Setup) -> dict:
    """One check's verdict; whatever it raises becomes its "error", never the end of the script."""
    started = time.perf_counter()
    try:
        verdict = check(setup)
    except Exception as error:  # noqa: BLE001 - a check reports its failure; the others still run
        verdict = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    return {**verdict, "seconds": round(time.perf_counter() - started, 2)}


# ---------------------------------------------------------------- the report


def machine() -> dict:
    import torch
    import transformers

    gpus = gpu_count()
    return {"device_name": torch.cuda.get_device_name(0) if gpus else "cpu (no CUDA device)", "gpu_count": gpus,
            "torch": torch.__version__, "transformers": transformers.__version__,
            "cuda": torch.version.cuda}


def report(setup: Setup) -> dict:
    checks = {name: run_check(check, setup) for name, check in CHECKS.items()}
    return {
        "ok": all(c.get("ok", False) for c in checks.values() if "skipped" not in c),
        "dry_run": setup.dry_run, "device": setup.device, **machine(), "model": MODEL, "limit": setup.limit,
        "shots": setup.shots, "budget_seconds": None if math.isinf(setup.budget) else setup.budget,
        "checks": checks, "run_seconds": setup.run_seconds,
        "seconds": round(time.monotonic() - setup.started, 2),
    }


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the same comparisons on the CPU (no GPU needed)")
    parser.add_argument("--limit", type=int, default=2, help="queries per demo task")
    parser.add_argument("--shots", default="0,4", help="shot counts, as `evals run --shots`")
    parser.add_argument("--timeout", type=float, default=240, help="seconds one run may take")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds all runs together may take, a run cut short failing its checks (default: 280 on "
                             "a GPU, so the check ends within 5 minutes even when a run hangs; none in a dry run)")
    parser.add_argument("--keep", action="store_true", help="keep the runs' output folder (its path is printed)")
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = math.inf if args.dry_run else 280.0
    if args.limit < 2:  # demo_memes' ROC AUC needs a hateful and a non-hateful meme: its first two are one of each
        parser.error("--limit must be 2 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["naive-run"]:  # the prefix_reuse check's own run, in a process of its own
        return naive_main(argv[1:])
    args = arguments(argv)
    gpus = gpu_count()
    if not args.dry_run and not gpus:
        print("gpu_check: no CUDA device on this machine; --dry-run runs the same comparisons on the CPU", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        setup = Setup("cpu" if args.dry_run else "cuda", args.dry_run, args.limit, args.shots, workdir, args.timeout,
                      gpus, args.budget)
        found = report(setup)
        if args.keep:
            found["output_dir"] = str(workdir)
        print(json.dumps(found, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if found["ok"] else 1


def naive_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check.py naive-run")
    for option in ("--device", "--limit", "--shots", "--output-dir"):
        parser.add_argument(option, required=True)
    args = parser.parse_args(argv)
    naive_run(args.device, int(args.limit), args.shots, Path(args.output_dir))
    return 0


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


if __name__ == "__main__":
    sys.exit(main())
