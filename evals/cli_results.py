"""The `evals` commands that read results: `leaderboard`, `view` (the report) and `compare` (the regression gate and
the paired comparison). evals.cli registers them; the work is in results/."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from evals import terminal
from evals.errors import ConfigError, DataError
from evals.paths import check_writable_dir, check_writable_file, write_output

RESULTS_HELP = "Cell record files, or folders searched recursively for them (samples and journal files are passed over)."


def leaderboard(
    results: Annotated[list[Path], typer.Argument(help=RESULTS_HELP)],
    table_format: Annotated[str, typer.Option("--format", help="md, csv (one row per cell group: mean, std, n), latex or "
                                                               "html.")] = "md",
    output: Annotated[Optional[Path], typer.Option(help="Write the table here instead of printing it.")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Also draw score against shots per task to this PNG file.")] = None,
    metric: Annotated[Optional[list[str]], typer.Option(help="Show this metric where a task has it, instead of its "
                                                             "headline metric (repeatable: the first one a task has).")] = None,
    allow_mixed_protocols: Annotated[bool, typer.Option(help="Put cells produced under different protocols (template, "
                                                             "data, decoding, metric...) in one column.")] = False,
    uncertainty: Annotated[str, typer.Option(help="What a cell shows beside its mean: std (over seeds), ci (95% "
                                                  "interval: one seed's bootstrap, or over seeds the seed mean's from "
                                                  "the demonstration vs query variance split, printed below the "
                                                  "table) or both; the plot draws ci as bands.")] = "std",
) -> None:
    """Models x (task, shots): mean ± std over seeds of each task's headline metric (--uncertainty: intervals too)."""
    from results.leaderboard import render, summarize
    from results.plots import check_plot_path
    from results.records import read_records

    if output is not None:
        check_writable_file(output, "--output")
    if plot is not None:
        check_plot_path(plot)
        check_writable_file(plot, "--plot")
    summary = summarize(read_records(results), tuple(metric or ()), allow_mixed_protocols, uncertainty)
    text = render(summary, table_format)
    if output is None:
        sys.stdout.write(text)
    else:
        write_table(text, output)
    if plot is not None:
        write_plot(summary, plot)


def view(
    results: Annotated[list[Path], typer.Argument(help=RESULTS_HELP)],
    output: Annotated[Path, typer.Option(help="The HTML file to write (one file: style, script, data and thumbnails "
                                              "inside; opens from disk with no network).")] = Path("report.html"),
    data_dir: Annotated[Optional[Path], typer.Option(help="Task data, to show the images and references of demonstrations "
                                                          "and queries (bundled demo tasks need none).")] = None,
    max_samples: Annotated[int, typer.Option(help="Samples shown per cell (the first N; the page notes the rest; "
                                                  "--serve shows all).")] = 5000,
    allow_mixed_protocols: Annotated[bool, typer.Option(help="As for leaderboard: put cells of different protocols in "
                                                             "one column of the overview.")] = False,
    serve: Annotated[bool, typer.Option(help="Serve the page from a local HTTP server instead of writing a file: every "
                                             "sample of every cell, thumbnails made as pages show them (large runs). "
                                             "Ctrl-C (or SIGTERM) stops it.")] = False,
    host: Annotated[str, typer.Option(help="With --serve: the address to bind (another than 127.0.0.1 lets other "
                                           "machines read the results).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="With --serve: the port (0: a free one, printed).")] = 0,
) -> None:
    """A report of the runs to open in a browser: the leaderboard, and each cell sample by sample as the model saw it."""
    if serve:
        return serve_report(results, data_dir, allow_mixed_protocols, host, port)
    from results.view.page import build_report

    check_writable_file(output, "--output")
    if max_samples < 1:
        raise ConfigError(f"--max-samples must be at least 1, got {max_samples}")
    with terminal.errors.status("reading the runs and building the report"):  # a spinner on a terminal, else silent
        size = build_report(results, output, data_dir=data_dir, max_samples=max_samples,
                            allow_mixed_protocols=allow_mixed_protocols)
    terminal.errors.print(f"report written to {output} ({size / 1e6:.1f} MB)", soft_wrap=True, highlight=False)


def serve_report(results: list[Path], data_dir: Path | None, allow_mixed_protocols: bool, host: str, port: int) -> None:
    """`view --serve`: read the runs, bind, print the URL, serve until Ctrl-C."""
    from results.view.serve import LOOPBACK, ServedReport, make_server, serve_until_interrupted, server_url

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0 to 65535, got {port}")
    with terminal.errors.status("reading the runs (samples are indexed, images opened only when shown)"):
        report = ServedReport(results, data_dir=data_dir, allow_mixed_protocols=allow_mixed_protocols)
    try:
        server = make_server(report, host, port)
    except OSError as error:
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({error.strerror or error})") from None
    if host not in LOOPBACK:
        terminal.errors.print(f"warning: serving on {host}: anyone who can reach this machine can read these results",
                     soft_wrap=True, highlight=False)
    terminal.errors.print(f"serving the report at {server_url(server)} (Ctrl-C stops)", soft_wrap=True, highlight=False)
    serve_until_interrupted(server)
    terminal.errors.print("stopped", highlight=False)


def write_table(text: str, output: Path) -> None:
    """The table to `output`; where that write fails after all, to stdout first, so the table is not lost."""
    try:
        write_output(output, text, "--output")
    except DataError:
        sys.stdout.write(text)
        raise
    terminal.errors.print(f"leaderboard written to {output}")


def write_plot(summary, plot: Path) -> None:
    from results.plots import save_plot, shot_curves

    try:
        save_plot(shot_curves(summary), plot)
    except OSError as error:
        raise DataError(f"--plot {plot}: cannot write ({error.strerror or error})") from None
    terminal.errors.print(f"plot written to {plot}")


class GateMode(str, Enum):
    exact = "exact"
    significant = "significant"


class CompareTest(str, Enum):
    paired = "paired"


def compare_results(
    current: Annotated[Path, typer.Argument(help="Cell records of the run to check (a folder or a file); A of --test paired.")],
    baseline: Annotated[Path, typer.Argument(help="Cell records it must match (a folder or a file); B of --test paired.")],
    tolerance: Annotated[float, typer.Option(help="Largest drop of a score allowed, in points (0-100 scale).")] = 0.5,
    metric: Annotated[Optional[list[str]], typer.Option(help="Metric to compare (repeatable; 'all' for every score). "
                                                             "Default: each task's headline metric.")] = None,
    allow_protocol_change: Annotated[bool, typer.Option(help="Compare scores even where the protocol changed.")] = False,
    update: Annotated[bool, typer.Option(help="Then copy CURRENT's cell records over BASELINE (records only, no samples), "
                                              "to record a deliberate change.")] = False,
    test: Annotated[Optional[CompareTest], typer.Option(help="paired: B - A per cell on the same queries (matched by id), "
                                                             "its bootstrap interval, p-value (Holm across cells), flips.")] = None,
    gate: Annotated[GateMode, typer.Option(help="exact: fail on any drop beyond the tolerance; significant: only where the "
                                                "drop is also significant (paired test on the samples, Holm-adjusted p < --level).")] = GateMode.exact,
    level: Annotated[float, typer.Option(help="Significance level of --gate significant.")] = 0.05,
    a_shots: Annotated[Optional[int], typer.Option(help="--test paired: compare A's cells of these shots ...")] = None,
    b_shots: Annotated[Optional[int], typer.Option(help="... with B's of these (A and B may be one run: 0 against k shots).")] = None,
    common_ids: Annotated[bool, typer.Option(help="Compare the query ids both cells have (default: differing ids are an error).")] = False,
    data_dir: Annotated[Optional[Path], typer.Option(help="Task data, to group queries by image and recompute ROC AUC "
                                                          "(bundled demo tasks need none).")] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples (and sign-flip permutations) of a paired test.")] = 1000,
    flips_shown: Annotated[int, typer.Option("--flips", help="--test paired: how many flipped query ids to list per cell.")] = 5,
    form: Annotated[terminal.ListFormat, typer.Option("--format", help="--test paired: " + terminal.FORMAT_HELP)] = terminal.ListFormat.table,
) -> None:
    """Regression gate: exit 1 when a baseline cell is missing, a score drops beyond the tolerance (and, with --gate
    significant, significantly), or the protocol changed. With --test paired: a paired comparison of A and B instead."""
    from results.paired import Settings

    settings = Settings(resamples=resamples, common_only=common_ids, data_dir=data_dir)
    if test == CompareTest.paired:
        return paired_comparison(current, baseline, tuple(metric or ()), settings, (a_shots, b_shots), flips_shown, form)
    if a_shots is not None or b_shots is not None:
        raise ConfigError("--a-shots and --b-shots pair cells of different shots: they need --test paired")
    regression_gate(current, baseline, tolerance, tuple(metric or ()), allow_protocol_change, update,
                    (gate, level, settings))


def regression_gate(current: Path, baseline: Path, tolerance: float, metrics: tuple[str, ...], allow_protocol_change: bool,
                    update: bool, noise: tuple) -> None:
    """The gate: the exact one, or (`noise` = (significant, level, settings)) the one that knows noise."""
    from rich.markup import escape

    from results.compare import compare, noise_aware, update_baseline
    from results.paired import compare_paired, gate_p_values
    from results.records import json_files, read_records

    gate, level, settings = noise
    if update:
        check_writable_dir(baseline, "--update BASELINE")
    now = read_records([current])
    fresh = update and not (baseline.is_dir() and json_files(baseline))  # --update may create the baseline
    before = [] if fresh else read_records([baseline])
    comparison = compare(now, before, tolerance, metrics, allow_protocol_change)
    if gate == GateMode.significant and not update:
        comparison = noise_aware(comparison, gate_p_values(compare_paired(before, now, metrics, settings)), level)
    columns = ["cell", "metric", "baseline", "current", "delta", "status"] + (["p (Holm)"] if comparison.gate == "significant" else [])
    table = Table(title=f"{current} vs baseline {baseline}")
    for column in columns:
        table.add_column(column, justify="left" if column in ("cell", "metric", "status") else "right", overflow="fold")
    for row in comparison.rows:
        texts = (row.cell, row.metric, row.baseline, row.current, row.delta, row.status, row.p_value)[:len(columns)]
        table.add_row(*(escape(text) for text in texts))
    terminal.console.print(table)
    if comparison.version_note():
        terminal.console.print(comparison.version_note(), highlight=False)
    if update:  # a deliberate change: the differences are recorded, not judged
        terminal.console.print(comparison.update_summary(), highlight=False)
        for line in update_baseline(current, now, baseline, before):
            terminal.console.print(line, highlight=False)
        return
    terminal.console.print(comparison.summary(), highlight=False)
    if not comparison.passed:
        sys.exit(1)


def paired_comparison(a: Path, b: Path, metrics: tuple[str, ...], settings, shots: tuple, flips_shown: int,
                      form: terminal.ListFormat) -> None:
    """`evals compare A B --test paired`: a table (or JSON) of B - A per cell; never a gate (exit 0)."""
    from rich.markup import escape

    from results.paired import PAIRED_COLUMNS, compare_paired, flip_lines
    from results.records import read_records

    rows = compare_paired(read_records([a]), read_records([b]), metrics, settings, *shots)
    if form == terminal.ListFormat.json:
        terminal.print_listing([row.as_record() for row in rows], [], form)
        return
    table = Table(title=f"paired: {b} - {a} (B - A, points)")
    for column in PAIRED_COLUMNS:
        table.add_column(column, justify="left" if column in ("cell", "metric", "test") else "right", overflow="fold")
    for row in rows:
        table.add_row(*(escape(text) for text in row.columns()))
    terminal.console.print(table)
    for line in flip_lines(rows, flips_shown, settings):
        terminal.console.print(line, highlight=False, soft_wrap=True)
