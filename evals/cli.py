"""The `evals` command line: run few-shot evaluations, score submission files, list what is registered."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from evals import terminal
from evals.cli_results import compare_results, leaderboard, view
from evals.errors import ConfigError, EvalsError
from evals.paths import check_writable_dir, check_writable_file, write_output
from evals.sweep import parse_sources

app = typer.Typer(
    help="Few-shot, in-context evaluation of interleaved image-text models (IDEFICS / Flamingo protocol).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

DEMO_SUITE = "demo"
EMBEDDER_HELP = ("RICES image embedder: auto (offline for bundled demo data, else clip), offline, clip "
                 "(openai/clip-vit-large-patch14), clip-vit-b32, vision-tower (the model's own), or a CLIP folder/hub id.")
CACHE_HELP = "RICES feature cache folder (default: $EVALS_CACHE_DIR or ~/.cache/evals/features)."
TASK_MODULE_HELP = "A Python file whose import registers tasks (repeatable; also $EVALS_TASK_MODULES)."
SOURCE_HELP = ("TASK=LOCATION: read TASK from LOCATION instead of DATA_DIR/<folder>: a folder of official files, "
               "a Hugging Face save_to_disk folder, or a hub id (repeatable).")


def load_task_modules(paths: list[Path] | None) -> None:
    from evals.plugins import load_task_module

    for path in paths or ():
        load_task_module(path)


SEEDS_HELP = ("Seeds for shot selection: a count N (seeds 0..N-1) or a comma-separated list (0,1,7; a single seed: 7,). "
              "Default: 0.")
MODEL_ARGS_HELP = ("Model loading options, key=value,...: dtype (fp32/bf16/fp16), attn_implementation (eager, sdpa, "
                   "flash_attention_2), load_in_4bit, revision, local_files_only, trust_remote_code; IDEFICS2: "
                   "do_image_splitting, longest_edge; generic: demonstrations (turns, one_turn), scoring (prefix, naive). "
                   "One model over several devices: device_map=auto (or sequential), "
                   "max_memory=70GiB (each GPU of the process) or 0:70GiB;1:60GiB;cpu:200GiB, offload_folder=PATH "
                   "(disk). Recorded with every result.")
GPUS_PER_PROCESS_HELP = ("With --model-args device_map=auto: the GPUs each process spreads its copy of the model over; "
                         "rank r (LOCAL_RANK) gets GPUs r*N .. r*N+N-1 of its node. Default: the node's GPUs divided "
                         "among its processes.")
CONFIG_HELP = ("A sweep file (TOML): models, tasks, shots, seeds, selection and any other option of this command "
               "(see evals/sweep.py); flags given here override it.")


def batch_size_value(text: str | int) -> int | str:
    """--batch-size: a count, or `auto`."""
    if text == "auto" or isinstance(text, int):
        return text
    try:
        return int(text)
    except ValueError:
        raise typer.BadParameter(f"takes a positive integer or 'auto', got '{text}'") from None


@app.command()
def run(
    ctx: typer.Context,
    model: Annotated[Optional[list[str]], typer.Option(help="Registered model name, local checkpoint folder, or hub id "
                                                            "(repeatable: run one after another). Default: tiny-idefics.")] = None,
    task: Annotated[Optional[list[str]], typer.Option(help="Task name (repeatable). Default: the bundled demo suite.")] = None,
    shots: Annotated[str, typer.Option(help="Shot counts, comma-separated. 0 = two text-only shots (Flamingo).")] = "0,4",
    seeds: Annotated[Optional[str], typer.Option(help=SEEDS_HELP)] = None,
    seed: Annotated[Optional[list[int]], typer.Option(help="One seed for shot selection (repeatable; or use --seeds).")] = None,
    selection: Annotated[str, typer.Option(help="Shot selection, comma-separated: random, rices.")] = "random",
    limit: Annotated[Optional[int], typer.Option(help="Evaluate only the first N queries of each task.")] = None,
    batch_size: Annotated[str, typer.Option(parser=batch_size_value, metavar="INTEGER|auto",
                                            help="Prompts per model call, or auto (start at 64, halve on out-of-memory); "
                                                 "never changes a prediction.")] = 8,
    data_dir: Annotated[Optional[Path], typer.Option(help="Root holding each benchmark's folder (e.g. DIR/vqav2).")] = None,
    output_dir: Annotated[Path, typer.Option(help="Where cell records and per-sample JSONL are written.")] = Path("eval-results"),
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda:0.")] = "cpu",
    gpus_per_process: Annotated[Optional[int], typer.Option(help=GPUS_PER_PROCESS_HELP)] = None,
    dtype: Annotated[Optional[str], typer.Option(help="Model weights dtype: float32, bfloat16 or float16 (the same as "
                                                      "--model-args dtype=...). Default: float32.")] = None,
    model_args: Annotated[Optional[str], typer.Option(help=MODEL_ARGS_HELP)] = None,
    prompt_format: Annotated[Optional[str], typer.Option(help="Prompt format (default: the model's own).")] = None,
    embedder: Annotated[str, typer.Option(help=EMBEDDER_HELP)] = "auto",
    rices_order: Annotated[str, typer.Option(help="RICES shot order: ascending (most similar last) or descending.")] = "ascending",
    rices_dedup_images: Annotated[bool, typer.Option(help="RICES: at most one shot per support image.")] = False,
    rices_index: Annotated[str, typer.Option(help="RICES search: exact (default) or ivf (approximate, large sets).")] = "exact",
    cache_dir: Annotated[Optional[Path], typer.Option(help=CACHE_HELP)] = None,
    source: Annotated[Optional[list[str]], typer.Option(help=SOURCE_HELP)] = None,
    loglik: Annotated[Optional[str], typer.Option(help="Ranked tasks: score a candidate by the sum (m4) or mean (OpenFlamingo) "
                                                        "of its token log-probabilities. Default: the task's own.")] = None,
    score_closing: Annotated[bool, typer.Option(help="Ranked tasks: score the template's text after the answer too "
                                                     "(e.g. '\\n', <end_of_utterance>), so no candidate wins by being a "
                                                     "prefix of another; --no-score-closing scores the answer alone (m4, "
                                                     "OpenFlamingo).")] = True,
    metric_variant: Annotated[Optional[list[str]], typer.Option(help="A peers' metric variant by name, used by the tasks "
                                                                      "that have it (see `evals tasks`; repeatable).")] = None,
    task_module: Annotated[Optional[list[Path]], typer.Option(help=TASK_MODULE_HELP)] = None,
    skip_bad_samples: Annotated[bool, typer.Option(help="Skip (and count in the record) a query whose image cannot be "
                                                        "decoded, instead of stopping.")] = False,
    fit_context: Annotated[bool, typer.Option(help="Where a prompt does not fit the model's context, drop the shots "
                                                   "farthest from the query until it does (each sample records the shots "
                                                   "requested and delivered) instead of stopping with the arithmetic.")] = False,
    bootstrap_resamples: Annotated[int, typer.Option(help="Resamples of each score's 95% bootstrap interval over queries "
                                                          "(seed 0, recorded with it; 0: no intervals). Changes no "
                                                          "other number.")] = 1000,
    config: Annotated[Optional[Path], typer.Option(help=CONFIG_HELP)] = None,
    overwrite: Annotated[bool, typer.Option(help="Delete the records and journals of the cells this run has and run them "
                                                 "afresh (default: resume: finished cells and journaled samples are kept).")] = False,
    verbose: Annotated[bool, typer.Option(help="Also show library warnings (deprecations, transformers' messages) on "
                                               "stderr; they are always written to OUTPUT_DIR/evals.log.")] = False,
) -> None:
    """Evaluate models few-shot on tasks; write one record per cell (task x shots x selection x seed) as it finishes.

    Run again with the same command to resume an interrupted run: finished cells are read back and samples
    in a cell's journal are not sent to the model again. With several seeds, prints mean ± std over seeds.
    """
    from evals.sweep import build_spec, cli_values, read_sweep_file

    options = typed_options(ctx)
    auto_batch = batch_size_option(options)
    spec = build_spec(read_sweep_file(config) if config else {}, cli_values(options))
    check_writable_dir(Path(spec.output_dir), "--output-dir")
    run_sweep(spec, overwrite, auto_batch, verbose)


def batch_size_option(options: dict) -> bool:
    """--batch-size auto is not a sweep key (a count is): it is taken out of the options here (True)."""
    if options.get("batch_size") == "auto":
        del options["batch_size"]
        return True
    return False


def typed_options(ctx: typer.Context) -> dict:
    """The options the user gave (on the command line or through the environment), not the defaults."""
    given = ("COMMANDLINE", "ENVIRONMENT")  # by name: typer bundles its own copy of click's ParameterSource
    return {name: value for name, value in ctx.params.items() if getattr(ctx.get_parameter_source(name), "name", "") in given}


def run_sweep(spec, overwrite: bool, auto_batch: bool = False, verbose: bool = False) -> None:
    """Each model in turn over every cell, its table printed when it is done. Under torchrun or accelerate launch
    every process runs this; each evaluates its share of the queries and rank 0 alone writes and prints.

    Library warnings go to OUTPUT_DIR/evals.log, on stderr too with `verbose` (evals/runlog.py); a crash log
    goes into the output folder (evals/crash.py)."""
    from evals import crash, runlog
    from evals.distributed import current_world
    from evals.models.bigmodel import gpus_per_process
    from evals.sweep import model_options

    options = model_options(spec)
    world = current_world(spec.device, gpus_per_process(spec.device, options))
    with crash.logs_into(spec.output_dir), runlog.captured(spec.output_dir, verbose, world.rank):
        evaluate_models(spec, options, world, overwrite, auto_batch)


def evaluate_models(spec, options, world, overwrite: bool, auto_batch: bool) -> None:
    from contextlib import nullcontext
    from dataclasses import replace

    from evals.distributed import check_device, close, exit_cleanly, local_device
    from evals.models import check_model_name, resolve_model
    from evals.registry import TASKS, suite_tasks
    from evals.runner import NoProgress, skipped_shots
    from evals.runner import run as run_cells
    from evals.sweep import run_settings

    spread = options.device_map is not None  # one model over the process's GPUs: evals.placement picks them
    if spec.gpus_per_process is not None and not spec.device.startswith("cuda") and world.main:
        terminal.errors.print(f"note: --gpus-per-process divides GPUs; --device {spec.device} has none to divide (ignored)")
    spec = replace(spec, device=check_device(local_device(spec.device, world, spread)))  # before any model loads
    load_task_modules(list(spec.task_modules))
    task_names = list(spec.tasks) or suite_tasks(DEMO_SUITE)
    for name in [*task_names, *spec.sources]:
        TASKS.get(name)
    for name in spec.models:
        check_model_name(name)  # a typo in the last model fails now, not after the others ran
    settings = replace(run_settings(spec, overwrite), length_buckets=True, **({"batch_size": "auto"} if auto_batch else {}))
    for model in spec.models:
        with terminal.console.status(f"loading model {model}") if world.main else nullcontext():
            loaded = resolve_model(model, device=spec.device, options=options)
        if not world.main:
            run_cells(loaded, task_names, settings, NoProgress(), world)
            continue
        if model == spec.models[0]:
            for name in task_names:
                skipped = skipped_shots(TASKS.get(name), settings.shots)
                if skipped:
                    terminal.errors.print(f"note: {name} runs at most {TASKS.get(name).max_shots} shots (its protocol); "
                                 f"skipping {', '.join(map(str, skipped))}-shot")
        with RichProgress() as progress:
            results = run_cells(loaded, task_names, settings, progress, world)
        prompt_format = spec.prompt_format or loaded.info.prompt_format
        several_seeds = len(spec.seeds) > 1
        terminal.console.print(summary_table(loaded.info.id, prompt_format, results) if several_seeds
                      else results_table(loaded.info.id, prompt_format, results))
    if world.main:
        terminal.console.print(f"records written under {spec.output_dir}/")
    close(world)
    exit_cleanly(world)  # data-parallel ranks skip interpreter teardown (see its docstring)


NUMBER_COLUMNS = frozenset({"shots", "seeds", "score", "mean ± std", "n", "seconds"})


def run_table(title: str, columns: tuple[str, ...]) -> Table:
    """A table of names and numbers, none of them ever cut or wrapped (a reader or grep looks for them whole).

    Each metric of a cell gets its own line (headline first) rather than an "other metrics" column: at 80 columns
    (a pipe, a CI log) the other columns leave such a column two letters wide."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=True, justify="right" if column in NUMBER_COLUMNS else "left")
    return table


def metric_lines(scores: dict[str, str], headline: str) -> tuple[str, str]:
    """The metric and value columns of one row: the headline metric first, then the others, one a line."""
    names = [headline, *(m for m in scores if m != headline)]
    return "\n".join(names), "\n".join(scores.get(m, "n/a") for m in names)


def results_table(model_id: str, prompt_format: str, results) -> Table:
    """One row per cell (of one seed, named in the title): each metric of the cell, its headline metric first."""
    from evals.registry import TASKS

    seeds = ", ".join(sorted({str(r.seed) for r in results}))
    table = run_table(f"{model_id} ({prompt_format} format, seed {seeds})",
                      ("task", "shots", "selection", "metric", "score", "n", "seconds"))
    for r in results:
        metrics, values = metric_lines({k: f"{v:.2f}" for k, v in r.scores.items()}, TASKS.get(r.task).headline)
        table.add_row(r.task, str(r.shots), r.selection, metrics, values, str(r.protocol.n_queries),
                      f"{r.timing['wall_seconds']:.1f}")
    return table


def summary_table(model_id: str, prompt_format: str, results) -> Table:
    """One row per (task, shots, selection): mean ± sample standard deviation over its seeds, each metric a line."""
    from evals.registry import TASKS
    from evals.sweep import summarize

    table = run_table(f"{model_id} ({prompt_format} format): mean ± std over seeds",
                      ("task", "shots", "selection", "seeds", "metric", "mean ± std"))
    for row in summarize(results, lambda task: TASKS.get(task).headline):
        metrics, values = metric_lines({m: f"{mean:.2f} ± {std:.2f}" for m, (mean, std) in row.stats.items()}, row.headline)
        table.add_row(row.task, str(row.shots), row.selection, str(len(row.seeds)), metrics, values)
    return table


def rices_options(embedder: str, order: str, dedup: bool, index: str, cache_dir: Path | None, device: str):
    from evals.selection import RicesOptions

    if order not in ("ascending", "descending"):
        raise ConfigError(f"--rices-order must be ascending or descending, got '{order}'")
    if index not in ("exact", "ivf"):
        raise ConfigError(f"--rices-index must be exact or ivf, got '{index}'")
    return RicesOptions(embedder, cache_dir, order, dedup, index, device)


rices_app = typer.Typer(help="RICES (retrieval-based shot selection) utilities.", no_args_is_help=True)
app.add_typer(rices_app, name="rices")


@rices_app.command("build")
def rices_build(
    task: Annotated[Optional[list[str]], typer.Option(help="Task name (repeatable). Default: the demo suite.")] = None,
    embedder: Annotated[str, typer.Option(help=EMBEDDER_HELP)] = "auto",
    model: Annotated[str, typer.Option(help="Model whose vision tower embeds (only for --embedder vision-tower).")] = "tiny-idefics",
    data_dir: Annotated[Optional[Path], typer.Option(help="Root holding each benchmark's folder.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help=CACHE_HELP)] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N queries (as `run --limit`).")] = None,
    device: Annotated[str, typer.Option(help="torch device for the embedder.")] = "cpu",
    source: Annotated[Optional[list[str]], typer.Option(help=SOURCE_HELP)] = None,
    task_module: Annotated[Optional[list[Path]], typer.Option(help=TASK_MODULE_HELP)] = None,
) -> None:
    """Precompute the RICES feature cache (support and query splits) so later runs only read it."""
    from evals.models import resolve_model
    from evals.registry import TASKS, suite_tasks
    from evals.runner import RunSettings, build_selector, load_task_data

    load_task_modules(task_module)
    task_names = task or suite_tasks(DEMO_SUITE)
    tasks = [TASKS.get(name) for name in task_names]
    from evals.distributed import check_device

    check_device(device)  # one line naming the machine's devices, before any model or embedder loads
    loaded = resolve_model(model, device=device) if embedder == "vision-tower" else None
    settings = RunSettings(data_dir=data_dir, limit=limit, sources=parse_sources(source),
                           rices=rices_options(embedder, "ascending", False, "exact", cache_dir, device))
    with RichProgress() as progress:
        for t in tasks:
            data = load_task_data(t, settings)
            progress.start(f"{t.name}: embedding images", len({e.images[0].id for e in data.support + data.queries}))
            selector = build_selector("rices", t, data, loaded, settings, on_batch=progress.advance)
            details = selector.describe()
            terminal.console.print(f"{t.name}: {details['embedder']} support {details['support_cache']} "
                          f"queries {details['query_cache']}")


class RichProgress:
    """A rich progress bar per cell on stderr (so piped stdout stays clean); off when stderr is not a
    terminal, so logs and error output hold only what matters."""

    def __enter__(self) -> RichProgress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=terminal.errors, transient=True,
                            disable=not terminal.errors.is_terminal)
        self.bar.__enter__()
        self.current = None
        return self

    def start(self, description: str, total: int) -> None:
        self.current = self.bar.add_task(description, total=total)

    def advance(self, n: int) -> None:
        self.bar.advance(self.current, n)

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)


SCORE_PREDICTIONS_HELP = (
    "Submission file, in the task's format: vqa, textvqa: EvalAI JSON [{question_id, answer}]; vizwiz: challenge JSON "
    "[{image, answer}] (image = file name); captions: COCO results JSON "
    "[{image_id, caption}]; classification: JSONL {id, label} (optional top5: 5 labels); hateful_memes: challenge CSV "
    "id,proba,label; visdial: JSON [{image_id, round_id, ranks}] (ranks of the 100 options, 1 = best); winoground: "
    "JSONL {id, c0_i0, c0_i1, c1_i0, c1_i1} (ci_ij = score of caption i with image j)."
)
SCORE_ANNOTATIONS_HELP = (
    "Reference file: vqa: official annotations JSON; textvqa: TextVQA_0.5.1_val.json (data: question_id, answers); "
    "vizwiz: Annotations/val.json (a list of {image, answers, answer_type}); captions: COCO-format JSON (images + "
    "annotations {image_id, caption}); classification: JSONL {id, label}; hateful_memes: dev.jsonl (id, img, label, "
    "text); visdial: dense annotations JSON [{image_id, round_id, gt_relevance}]; winoground: examples JSONL (id, "
    "caption_0, caption_1, image_0, image_1)."
)
SCORE_VARIANT_HELP = ("A peers' metric variant: visdial: ndcg_sklearn (m4: scikit-learn NDCG over all 100 options); textvqa, "
                      "vizwiz: vqav2_rule (vqaEval.py's rule: answers normalised only where the humans disagree).")
SCORE_PARTIAL_HELP = ("Score a file that predicts only part of the reference ids over those ids, as the official scorers "
                      "score the ids of their results file, and report the coverage; without it such a file is an error. "
                      "An id that is not in the annotations is an error either way.")


@app.command()
def score(
    task: Annotated[str, typer.Argument(help="Benchmark whose submission format the files are in, e.g. vqav2, textvqa, "
                                             "vizwiz, coco, hateful_memes, visdial, winoground, imagenet (see `evals tasks`).")],
    predictions: Annotated[Path, typer.Option(help=SCORE_PREDICTIONS_HELP)],
    annotations: Annotated[Path, typer.Option(help=SCORE_ANNOTATIONS_HELP)],
    questions: Annotated[Optional[Path], typer.Option(help="VQA only: official questions file (checked against annotations).")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Write {task, scores, breakdowns} here as JSON.")] = None,
    metric_variant: Annotated[Optional[str], typer.Option(help=SCORE_VARIANT_HELP)] = None,
    partial: Annotated[bool, typer.Option("--partial", help=SCORE_PARTIAL_HELP)] = False,
    task_module: Annotated[Optional[list[Path]], typer.Option(help=TASK_MODULE_HELP)] = None,
) -> None:
    """Score a submission file with no model, as the official scorer does (the file is scored as given).

    Metrics (0-100), by the task's submission format:
    vqa: vqa_accuracy; textvqa: vqa_accuracy (MMF's TextVQA evaluator); vizwiz: vqa_accuracy (the challenge's scorer;
    by answer_type); classification: accuracy, top5_accuracy;
    captions: CIDEr (CIDEr-D), Bleu_4, ROUGE_L, METEOR (pycocoevalcap, Java);
    hateful_memes: roc_auc, accuracy; winoground: text, image, group;
    visdial: ndcg (official: cut at the number of relevant options).
    """
    from evals.process import exit_without_teardown, is_entry_point
    from evals.scoring import result_json, score_submission
    from evals.scoring.files import Retained

    if output is not None:
        check_writable_file(output, "--output")
    load_task_modules(task_module)
    if is_entry_point(main):  # the process ends by exit_without_teardown: nothing needs freeing
        Retained.keep_until_exit()
    result = score_submission(task, predictions=predictions, annotations=annotations, questions=questions,
                              metric_variant=metric_variant, partial=partial)
    table = Table(title=f"{task}: {predictions.name}" + (f" ({metric_variant})" if metric_variant else ""))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for metric, value in result["scores"].items():
        table.add_row(metric, f"{value:.2f}")
    if "coverage" in result:
        covered = result["coverage"]
        table.add_row("coverage", f"{covered['covered']} / {covered['annotated']} ({100 * covered['fraction']:.1f}%)")
    for breakdown in (key for key in result if key.startswith("by_")):
        for key, value in result[breakdown].items():
            table.add_row(f"{breakdown}: {key}", f"{value:.2f}")
    terminal.console.print(table)  # before writing: a write that fails after all leaves the scores on the screen
    if output is not None:
        write_output(output, result_json(result), "--output")
        terminal.console.print(f"written to {output}")
    if is_entry_point(main):  # `python -m evals` or the `evals` script: nothing runs after the command
        exit_without_teardown()


@app.command("tasks")
def list_tasks(
    task_module: Annotated[Optional[list[Path]], typer.Option(help=TASK_MODULE_HELP)] = None,
    form: Annotated[terminal.ListFormat, typer.Option("--format", help=terminal.FORMAT_HELP)] = terminal.ListFormat.table,
) -> None:
    """List the registered tasks: kind, metrics, splits, and the files each expects under DATA_DIR."""
    from evals.listings import task_records, tasks_table

    load_task_modules(task_module)
    records = task_records()
    terminal.print_listing(records, [tasks_table(records)], form)


@app.command("models")
def list_models(
    form: Annotated[terminal.ListFormat, typer.Option("--format", help=terminal.FORMAT_HELP)] = terminal.ListFormat.table,
) -> None:
    """List the registered models and the model families (a local folder or hub id of a family works too)."""
    from evals.listings import model_records, models_tables

    records = model_records()
    terminal.print_listing(records, models_tables(records), form)


app.command()(leaderboard)
app.command()(view)
app.command("compare")(compare_results)


INTERRUPTED = 130  # the shell's exit status for a run stopped by SIGINT


def plain_help_when_piped(stream=None) -> None:
    """Piped or redirected, `--help` is click's plain text: typer's rich panels cut option names to fit the width
    (`--rices-dedup-ima…` at 80 columns), while plain help puts a long option on its own line, whole. typer builds the
    click commands when the app is called and reads the app's `rich_markup_mode` then (None: plain help)."""
    if not (stream or sys.stdout).isatty():
        app.rich_markup_mode = None


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2, a bug one line, a crash log and exit
    status 3 (evals/crash.py); never a traceback."""
    from evals import crash

    plain_help_when_piped()
    try:
        status = app(standalone_mode=False)
    except EvalsError as error:
        from rich.markup import escape  # a message quotes paths and data: "[x]" in one is text, not markup

        terminal.errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True, emoji=False)
        sys.exit(2)
    except KeyboardInterrupt:
        status = INTERRUPTED
    except Exception as error:  # click's usage errors arrive here in non-standalone mode
        kinds = {cls.__name__ for cls in type(error).__mro__}  # by name: typer may bundle its own copy of click
        if "ClickException" in kinds:
            error.show()
            sys.exit(error.exit_code)
        if "Abort" in kinds:
            sys.exit(1)
        sys.exit(crash.report(error))
    if status == INTERRUPTED:  # Ctrl-C: typer reports it as this exit status in non-standalone mode
        terminal.errors.print("interrupted: finished cells and journaled samples are kept; run the same command again to resume",
                     soft_wrap=True)
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    main()
