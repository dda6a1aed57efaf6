"""Sweeps: what `evals run` evaluates (models x tasks x shots x selections x seeds), from a TOML file and
command-line flags, and the mean and standard deviation over seeds that a sweep reports.

A sweep file uses the `run` options as keys (dashes or underscores), with the list-valued ones plural:

    models = ["tiny-idefics"]            # run one after another, each under OUTPUT_DIR/<model>/
    tasks = ["demo_vqa", "demo_classify"]  # empty or absent: the demo suite
    shots = [0, 4, 8, 16, 32]
    seeds = 3                            # a count (seeds 0, 1, 2) or a list: [0, 1, 7]
    selection = ["random", "rices"]
    limit = 100
    model_args = "dtype=bf16,attn_implementation=sdpa"  # or a table, as --model-args (evals/models/options.py)
    [sources]                            # TASK = folder or hub id (as --source TASK=LOCATION)
    vqav2 = "/data/vqav2"

Flags given on the command line override the file; paths are relative to the folder the command runs in.
"""

from __future__ import annotations

import difflib
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.errors import ConfigError
from metrics.stats import mean_std


@dataclass(frozen=True)
class SweepSpec:
    """Everything one `evals run` does; the defaults are the command's."""

    models: tuple[str, ...] = ("tiny-idefics",)
    tasks: tuple[str, ...] = ()  # (): the demo suite
    shots: tuple[int, ...] = (0, 4)
    seeds: tuple[int, ...] = (0,)
    selection: tuple[str, ...] = ("random",)
    limit: int | None = None
    batch_size: int = 8
    data_dir: Path | None = None
    output_dir: Path = Path("eval-results")
    device: str = "cpu"
    gpus_per_process: int | None = None  # None: the node's GPUs divided among its processes (with device_map)
    dtype: str | None = None  # None: float32, or what model_args says
    model_args: Mapping[str, str] = field(default_factory=dict)  # --model-args key=value,... (evals/models/options.py)
    prompt_format: str | None = None
    embedder: str = "auto"
    rices_order: str = "ascending"
    rices_dedup_images: bool = False
    rices_index: str = "exact"
    cache_dir: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    loglik: str | None = None
    score_closing: bool = True
    metric_variants: tuple[str, ...] = ()
    task_modules: tuple[Path, ...] = ()
    skip_bad_samples: bool = False
    fit_context: bool = False
    bootstrap_resamples: int = 1000  # each score's 95% interval over queries (evals.intervals); 0: none


# Converters: (value from TOML or the command line, where it came from for errors) -> the SweepSpec value.


def parse_int_list(text: str, flag: str) -> tuple[int, ...]:
    """Comma-separated integers >= 0, each once (a repeat would run the same cell twice)."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integers, got '{text}'") from None
    if not values:
        raise ConfigError(f"{flag} needs at least one value")
    return distinct_counts(values, flag)


def distinct_counts(values: Sequence[int], where: str) -> tuple[int, ...]:
    """`values` in their order, each once; a negative one is refused, a repeat dropped with a note on stderr."""
    negative = [v for v in values if v < 0]
    if negative:
        raise ConfigError(f"{where}: expected integers >= 0, got {negative[0]}")
    unique = tuple(dict.fromkeys(values))
    if len(unique) < len(values):
        repeated = sorted({v for v in values if values.count(v) > 1})
        print(f"note: {where}: {', '.join(map(str, repeated))} given more than once; running "
              f"{', '.join(map(str, unique))}", file=sys.stderr)
    return unique


def parse_seeds(text: str, flag: str = "--seeds") -> tuple[int, ...]:
    """`3` is a count (seeds 0, 1, 2); `0,1,7` a list; `7,` the single seed 7."""
    if "," in text:
        return parse_int_list(text, flag)
    (count,) = parse_int_list(text, flag)
    return seed_count(count, flag)


def seed_count(count: int, where: str) -> tuple[int, ...]:
    if count < 1:
        raise ConfigError(f"{where}: a seed count must be >= 1, got {count}")
    return tuple(range(count))


def parse_sources(pairs: Sequence[str] | None, where: str = "--source") -> dict[str, str]:
    sources = {}
    for pair in pairs or ():
        name, sep, location = pair.partition("=")
        if not sep or not name.strip() or not location.strip():
            raise ConfigError(f"{where} takes TASK=LOCATION, got '{pair}'")
        sources[name.strip()] = location.strip()
    return sources


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML's true is not a count


def wrong_type(where: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{where}: expected {expected}, got {value!r}")


def to_ints(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, str):
        return parse_int_list(value, where)
    if is_int(value) and value >= 0:
        return (value,)
    if isinstance(value, list | tuple) and value and all(is_int(v) for v in value):
        return distinct_counts(value, where)
    raise wrong_type(where, "an integer >= 0 or a non-empty list of them", value)


def to_seeds(value: Any, where: str) -> tuple[int, ...]:
    if is_int(value):
        return seed_count(value, where)
    if isinstance(value, str):
        return parse_seeds(value, where)
    if isinstance(value, list | tuple) and value and all(is_int(v) for v in value):
        return distinct_counts(value, where)
    raise wrong_type(where, "a seed count (3) or a list of seeds ([0, 1, 7])", value)


def to_names(value: Any, where: str) -> tuple[str, ...]:
    """A list of names, or one comma-separated string of them."""
    if isinstance(value, str):
        names = tuple(part.strip() for part in value.split(",") if part.strip())
    elif isinstance(value, list | tuple) and all(isinstance(v, str) and v.strip() for v in value):
        names = tuple(v.strip() for v in value)
    else:
        raise wrong_type(where, "a list of names", value)
    return names


def to_models(value: Any, where: str) -> tuple[str, ...]:
    """Model names, folders or hub ids: a list, or one (not split at commas: a folder name may hold one)."""
    models = (value,) if isinstance(value, str) else to_names(value, where)
    if not models or not all(m.strip() for m in models):
        raise wrong_type(where, "a model name or a non-empty list of them", value)
    return tuple(m.strip() for m in models)


def to_sources(value: Any, where: str) -> dict[str, str]:
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return dict(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return parse_sources(value, where)
    raise wrong_type(where, "a table of TASK = \"folder or hub id\"", value)


def to_model_args(value: Any, where: str) -> dict[str, str]:
    """`key=value,...` (command line, or a string in a sweep file) or a TOML table; checked now, before any model loads."""
    from evals.models.options import parse_model_args, split_pairs

    if isinstance(value, str):
        pairs = split_pairs(value)
    elif isinstance(value, dict) and all(isinstance(v, str | int | bool) for v in value.values()):
        pairs = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    else:
        raise wrong_type(where, "key=value pairs or a table of them", value)
    parse_model_args(pairs)
    return pairs


def model_options(spec: SweepSpec):
    """The loading options of every model of the sweep (evals.models.options.ModelOptions); --dtype is an alias."""
    from dataclasses import replace

    from evals.models.options import parse_model_args

    return replace(parse_model_args(spec.model_args, dtype=spec.dtype), gpus_per_process=spec.gpus_per_process)


def to_count(minimum: int) -> Callable[[Any, str], int]:
    def convert(value: Any, where: str) -> int:
        if not is_int(value) or value < minimum:
            raise wrong_type(where, f"an integer >= {minimum}", value)
        return value
    return convert


def to_str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise wrong_type(where, "a string", value)
    return value


def to_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise wrong_type(where, "true or false", value)
    return value


def to_path(value: Any, where: str) -> Path:
    return value if isinstance(value, Path) else Path(to_str(value, where))


def to_paths(value: Any, where: str) -> tuple[Path, ...]:
    if isinstance(value, str | Path):
        return (to_path(value, where),)
    if isinstance(value, list | tuple):
        return tuple(to_path(v, where) for v in value)
    raise wrong_type(where, "a list of file paths", value)


def one_of(*choices: str) -> Callable[[Any, str], str]:
    def convert(value: Any, where: str) -> str:
        if value not in choices:
            raise wrong_type(where, " or ".join(choices), value)
        return value
    return convert


def optional(convert: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda value, where: None if value is None else convert(value, where)


CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "models": to_models, "tasks": to_names, "shots": to_ints, "seeds": to_seeds, "selection": to_names,
    "limit": optional(to_count(1)), "batch_size": to_count(1), "data_dir": optional(to_path), "output_dir": to_path,
    "device": to_str, "gpus_per_process": optional(to_count(1)), "dtype": optional(to_str), "model_args": to_model_args,
    "prompt_format": optional(to_str), "embedder": to_str,
    "rices_order": one_of("ascending", "descending"), "rices_dedup_images": to_bool, "rices_index": one_of("exact", "ivf"),
    "cache_dir": optional(to_path), "sources": to_sources, "loglik": optional(to_str), "score_closing": to_bool,
    "metric_variants": to_names, "task_modules": to_paths, "skip_bad_samples": to_bool,
    "fit_context": to_bool, "bootstrap_resamples": to_count(0),
}
# `evals run` parameters whose name differs from the SweepSpec field (repeatable flags are singular there).
CLI_FIELDS = {"model": "models", "task": "tasks", "seed": "seeds", "source": "sources", "metric_variant": "metric_variants",
              "task_module": "task_modules"}
CLI_ONLY = frozenset({"config", "overwrite", "verbose"})  # decisions of one invocation, not part of a sweep's definition


def read_sweep_file(path: Path) -> dict[str, Any]:
    """A sweep file's settings as SweepSpec fields; an unknown key or a wrong type is one error naming both."""
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: sweep file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the sweep file ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    values = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in CONVERTERS:
            close = difflib.get_close_matches(name, CONVERTERS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (keys: {', '.join(CONVERTERS)})"
            raise ConfigError(f"{path}: unknown key '{key}'{hint}")
        values[name] = CONVERTERS[name](value, f"{path}: key '{key}'")
    return values


def cli_values(explicit: Mapping[str, Any]) -> dict[str, Any]:
    """The `run` options the user typed (parameter name -> value as parsed), as SweepSpec fields."""
    if "seed" in explicit and "seeds" in explicit:
        raise ConfigError("give --seeds (a count or a list) or --seed (repeatable), not both")
    values = {}
    for name, value in explicit.items():
        if name in CLI_ONLY:
            continue
        spec_field = CLI_FIELDS.get(name, name)
        values[spec_field] = CONVERTERS[spec_field](value, "--" + name.replace("_", "-"))
    return values


def build_spec(file_values: Mapping[str, Any], command_line: Mapping[str, Any]) -> SweepSpec:
    """The sweep file's settings with the command line's on top."""
    return SweepSpec(**{**file_values, **command_line})


def run_settings(spec: SweepSpec, overwrite: bool = False):
    """The runner's settings for each model of the sweep (evals.runner.RunSettings)."""
    from evals.runner import RunSettings
    from evals.selection import RicesOptions

    rices = RicesOptions(spec.embedder, spec.cache_dir, spec.rices_order, spec.rices_dedup_images, spec.rices_index, spec.device)
    return RunSettings(
        shots=spec.shots, seeds=spec.seeds, selections=spec.selection, limit=spec.limit, batch_size=spec.batch_size,
        data_dir=spec.data_dir, output_dir=spec.output_dir, prompt_format=spec.prompt_format, rices=rices,
        sources=dict(spec.sources), loglik=spec.loglik, metric_variants=spec.metric_variants,
        score_closing=spec.score_closing, overwrite=overwrite, skip_bad_samples=spec.skip_bad_samples,
        fit_context=spec.fit_context, bootstrap_resamples=spec.bootstrap_resamples,
    )


@dataclass(frozen=True)
class SummaryRow:
    """One (model, task, shots, selection) of a sweep: each metric's mean and sample std over its seeds."""

    model: str
    task: str
    shots: int
    selection: str
    seeds: tuple[int, ...]
    headline: str
    stats: Mapping[str, tuple[float, float]]  # metric -> (mean, std); the headline first


def summarize(results: Sequence[Any], headline: Callable[[str], str]) -> list[SummaryRow]:
    """Group cell results (results.schema.CellResult) over seeds, in the order the groups first appear;
    `headline(task)` names the metric a task reports first."""
    groups: dict[tuple[str, str, int, str], list[Any]] = {}
    for r in results:
        groups.setdefault((r.protocol.model, r.task, r.shots, r.selection), []).append(r)
    rows = []
    for (model, task, shots, selection), cells in groups.items():
        first = headline(task)
        metrics = [first] + [m for m in cells[0].scores if m != first]
        stats = {m: mean_std([c.scores[m] for c in cells]) for m in metrics if all(m in c.scores for c in cells)}
        rows.append(SummaryRow(model, task, shots, selection, tuple(c.seed for c in cells), first, stats))
    return rows
