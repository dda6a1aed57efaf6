"""Bootstrap speed: `metrics.uncertainty.bootstrap_mean` vs a plain per-resample loop on a VQAv2-val-sized cell.

A synthetic cell shaped like VQAv2 val (Goyal et al. 2017, arXiv 1612.00837): 214,354 questions on 40,504
images, each question's VQA accuracy one of 0, 30, 60, 90, 100, questions of one image correlated. The
benchmark times the 95% interval with 1,000 resamples, by question and by image, through the vectorised path
(chunks of resamples, one gather per chunk) and through a loop written here from the documented stream (one
PCG64 generator read in order, one resample at a time, its mean taken as is), and checks that both give the
same numbers: every resample's mean and the interval. The callable path (`bootstrap_statistic`, how corpus
metrics are resampled) is timed with a mean as its statistic. Prints JSON.

    python benchmarks/bootstrap.py [--questions 214354] [--images 40504] [--resamples 1000] [--seed 0] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from metrics.uncertainty import Units, bootstrap_mean, bootstrap_statistic, mean_resamples, units_of

VQAV2_VAL_QUESTIONS = 214_354
VQAV2_VAL_IMAGES = 40_504


def synthetic_cell(questions: int, images: int, seed: int) -> tuple[np.ndarray, list[str], list[str]]:
    """Per-question VQA accuracies, question ids and image ids, in a shuffled order (as gathered from shards)."""
    rng = np.random.default_rng(seed)
    image_of = np.sort(rng.integers(0, images, questions))
    ease = rng.normal(0, 1.2, images)[image_of] + rng.normal(0, 1, questions)  # an image the model reads well helps all its questions
    levels = np.array([0.0, 30.0, 60.0, 90.0, 100.0])
    values = levels[np.digitize(ease, [-0.6, -0.3, 0.0, 0.3])]
    order = rng.permutation(questions)
    return values[order], [f"q{q}" for q in order], [f"img{image_of[q]}" for q in order]


def plain_loop(values: np.ndarray, units: Units, resamples: int, seed: int) -> np.ndarray:
    """Resample b reads uniforms b*m .. (b+1)*m - 1 of PCG64(seed); uniform u picks unit floor(u*m), as documented."""
    sums = np.add.reduceat(values[units.members], units.starts)
    rng = np.random.Generator(np.random.PCG64(seed))
    m = units.count
    out = np.empty(resamples)
    for b in range(resamples):
        picked = np.minimum((rng.random(m) * m).astype(np.intp), m - 1)
        out[b] = sums[picked].sum() / units.sizes[picked].sum()
    return out


def timed(function, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def compare(values: np.ndarray, ids: list[str], groups: list[str] | None, resamples: int, seed: int, repeats: int) -> dict:
    """Seconds of the whole interval (ids to interval: sorting ids, grouping, resampling, percentiles), of the
    vectorised resampling alone and of the loop's, and how far their numbers are apart."""
    vectorised_s, interval = timed(lambda: bootstrap_mean(values, ids, groups=groups, resamples=resamples, seed=seed), repeats)
    units = units_of(ids, groups)
    resampling_s, resampled = timed(lambda: mean_resamples(values, units, resamples, seed), repeats)
    loop_s, looped = timed(lambda: plain_loop(values, units, resamples, seed), repeats)
    tail = 2.5
    loop_low, loop_high = np.percentile(looped, [tail, 100 - tail])
    gap = float(np.max(np.abs(resampled - looped)))
    return {
        "unit": interval.unit, "units": interval.groups,
        "interval_s": round(vectorised_s, 3), "vectorised_resampling_s": round(resampling_s, 3), "loop_resampling_s": round(loop_s, 3),
        "speedup": round(loop_s / resampling_s, 2),
        "interval": [interval.low, interval.high], "loop_interval": [float(loop_low), float(loop_high)],
        "max_abs_gap_per_resample": gap, "same_numbers": bool(gap < 1e-9 and abs(loop_low - interval.low) < 1e-9
                                                              and abs(loop_high - interval.high) < 1e-9),
        "under_10_s": vectorised_s < 10,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=VQAV2_VAL_QUESTIONS)
    parser.add_argument("--images", type=int, default=VQAV2_VAL_IMAGES)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--small", type=int, default=500, help="questions of a small cell (Hateful Memes dev: 500)")
    args = parser.parse_args()
    values, ids, images = synthetic_cell(args.questions, args.images, args.seed)
    callable_s, by_callable = timed(lambda: bootstrap_statistic(lambda positions: float(values[positions].mean()), ids,
                                                                resamples=args.resamples, seed=args.seed), args.repeats)
    report = {
        "benchmark": "bootstrap interval of a VQAv2-val-sized cell",
        "questions": args.questions, "images": args.images, "resamples": args.resamples, "seed": args.seed,
        "repeats": args.repeats, "cpus": os.cpu_count(), "numpy": np.__version__, "python": platform.python_version(),
        "mean": float(values.mean()),
        "by_question": compare(values, ids, None, args.resamples, args.seed, args.repeats),
        "by_image": compare(values, ids, images, args.resamples, args.seed, args.repeats),
        "small_cell_by_question": {"questions": args.small,
                                   **compare(values[:args.small], ids[:args.small], None, args.resamples, args.seed, args.repeats)},
        "callable_path_by_question": {"seconds": round(callable_s, 3), "interval": [by_callable.low, by_callable.high]},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
