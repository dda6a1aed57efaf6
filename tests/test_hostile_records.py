"""Hostile input to `evals leaderboard`, `compare`, `score` and `run`'s output folder: bad records, unwritable output
paths, a tolerance that hides a drop, a plot suffix that lies, a symlink loop. Each gets one line naming the file and
field (exit 2), never a traceback, never a table, and a result computed before a failed write is printed."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import evals.cli as cli_module
import evals.cli_results as cli_results
from evals.cli import main
from tests.cells import cell

CONFORMANCE = Path(__file__).parent / "data" / "conformance" / "vqa_accuracy"
TIMEOUT_SECONDS = 60  # the symlink loop: a walk that follows links never ends


class Hung(BaseException):
    """Raised by the alarm; a BaseException so `main()` does not turn it into a crash report."""


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit status, stdout, stderr); a command that hangs fails the test."""
    def hung(*_):
        raise Hung(f"evals {' '.join(args)} ran over {TIMEOUT_SECONDS} s")

    monkeypatch.setattr(sys, "argv", ["evals", *args])
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(TIMEOUT_SECONDS)
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code or 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def record(folder: Path, change: Callable[[dict], Any] = lambda data: None, task: str = "demo_vqa",
           scores: dict | None = None, name: str = "cell") -> Path:
    """A good cell record under `folder`, then `change` applied to its JSON object."""
    data = cell(task, scores=scores).to_dict()
    change(data)
    path = folder / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def setting(dotted: str, value: Any) -> Callable[[dict], None]:
    """A change that sets a (dotted: `protocol.model_args`) field."""
    def change(data: dict) -> None:
        *parents, last = dotted.split(".")
        for key in parents:
            data = data[key]
        data[last] = value
    return change


def board(change=lambda data: None, task="demo_vqa", scores=None, extra: tuple[str, ...] = ()):
    """Case builder: `evals leaderboard` over one record."""
    def build(tmp: Path) -> list[str]:
        record(tmp / "runs", change, task, scores)
        return ["leaderboard", str(tmp / "runs"), *extra]
    return build


def gate(baseline_scores: dict, extra: tuple[str, ...] = ()):
    """Case builder: `evals compare` of a good current run with a baseline holding `baseline_scores`."""
    def build(tmp: Path) -> list[str]:
        record(tmp / "current")
        record(tmp / "baseline", scores=baseline_scores)
        return ["compare", str(tmp / "current"), str(tmp / "baseline"), *extra]
    return build


def board_output(option: str, make: Callable[[Path], Path]):
    """Case builder: `evals leaderboard` with `option` given the path `make(tmp)` prepares."""
    def build(tmp: Path) -> list[str]:
        record(tmp / "runs")
        return ["leaderboard", str(tmp / "runs"), option, str(make(tmp))]
    return build


def score_output(make: Callable[[Path], Path]):
    """Case builder: `evals score` of the VQA conformance files, `--output` at `make(tmp)`."""
    def build(tmp: Path) -> list[str]:
        return ["score", "vqav2", "--predictions", str(CONFORMANCE / "predictions.json"),
                "--annotations", str(CONFORMANCE / "annotations.json"), "--output", str(make(tmp))]
    return build


def folder(tmp: Path, name: str = "taken") -> Path:
    (tmp / name).mkdir(parents=True, exist_ok=True)
    return tmp / name


def file(tmp: Path, name: str = "plain") -> Path:
    (tmp / name).write_text("a file\n")
    return tmp / name


def run_into(make: Callable[[Path], Path]):
    def build(tmp: Path) -> list[str]:
        return ["run", "--model", "scripted", "--task", "demo_vqa", "--output-dir", str(make(tmp))]
    return build


def update_into(make: Callable[[Path], Path]):
    def build(tmp: Path) -> list[str]:
        record(tmp / "current")
        return ["compare", str(tmp / "current"), str(make(tmp)), "--update"]
    return build


def looped(command: str):
    """Case builder: a results folder with a symlink back to itself and one to its parent."""
    def build(tmp: Path) -> list[str]:
        record(tmp / "runs" / "model")
        (tmp / "runs" / "model" / "again").symlink_to(tmp / "runs")
        (tmp / "runs" / "up").symlink_to("..")
        (tmp / "runs" / "self.json").symlink_to("self.json")  # a link loop named like a record
        if command == "compare":
            return ["compare", str(tmp / "runs"), str(tmp / "runs")]
        return ["leaderboard", str(tmp / "runs")]
    return build


class Case(NamedTuple):
    name: str
    build: Callable[[Path], list[str]]
    code: int
    fragment: str  # in the error line (exit 2), or on stdout (exit 0)


CASES = [
    # records: each bad field refused, naming the file and field
    Case("score above 100", board(setting("scores", {"vqa_accuracy": 100.5})), 2, "'scores.vqa_accuracy' is 100.5, outside"),
    Case("score below 0", board(setting("scores", {"vqa_accuracy": -0.5})), 2, "vqa_accuracy's range [0, 100]"),
    Case("nan score", board(setting("scores", {"vqa_accuracy": float("nan")})), 2, "is nan, not a finite number"),
    Case("inf score", board(setting("scores", {"vqa_accuracy": float("inf")})), 2, "is inf, not a finite number"),
    Case("BLEU above 100", board(task="demo_caption", scores={"CIDEr": 90.0, "Bleu_4": 101.0}), 2, "'scores.Bleu_4' is 101"),
    Case("CIDEr below 0", board(task="demo_caption", scores={"CIDEr": -2.0}), 2, "CIDEr's range >= 0"),
    Case("CIDEr above 100 is legitimate", board(task="demo_caption", scores={"CIDEr": 216.43}), 0, "216.43"),
    Case("string score", board(setting("scores", {"vqa_accuracy": "high"})), 2, "'scores' must map metric names to numbers"),
    Case("negative shots", board(setting("shots", -1)), 2, "field 'shots' must be >= 0, got -1"),
    Case("negative seed", board(setting("seed", -3)), 2, "field 'seed' must be >= 0, got -3"),
    Case("seed as text", board(setting("seed", "0")), 2, "field 'seed' must be int, got '0'"),
    Case("seed as float", board(setting("seed", 1.5)), 2, "field 'seed' must be int, got 1.5"),
    Case("shots as bool", board(setting("shots", True)), 2, "field 'shots' must be int, got True"),
    Case("task not text", board(setting("task", 7)), 2, "field 'task' must be str"),
    Case("future schema", board(setting("schema_version", 99)), 2, "schema_version 99 is newer than this evals reads"),
    Case("schema version as text", board(setting("schema_version", "4")), 2, "field 'schema_version' must be int"),
    Case("older schema still read", board(setting("schema_version", 3)), 0, "50.00"),
    Case("unknown metric of a registered task", board(setting("scores", {"vqa_acuracy": 50.0})), 2,
         "task 'demo_vqa' has no metric 'vqa_acuracy'"),
    Case("plugin task's own metric", board(setting("task", "my_plugin"), scores={"custom": 500.0},
                                           extra=("--metric", "custom")), 0, "500.00"),
    Case("model_args not an object", board(setting("protocol.model_args", "dtype=bf16")), 2,
         "field 'protocol.model_args' must be an object, got 'dtype=bf16'"),
    Case("placement devices not a list", board(setting("protocol.placement", {"devices": "cuda:0"})), 2,
         "field 'protocol.placement.devices' must be a list of device names"),
    Case("placement not an object", board(setting("protocol.placement", ["cuda:0"])), 2,
         "field 'protocol.placement' must be an object"),
    Case("protocol field of the wrong type", board(setting("protocol.n_queries", "20")), 2,
         "field 'protocol.n_queries' must be an integer"),
    Case("protocol not an object", board(setting("protocol", ["tiny-idefics"])), 2, "protocol is not a JSON object"),
    Case("baseline with an out-of-range score", gate({"vqa_accuracy": 150.0}), 2, "baseline/cell.json: field 'scores.vqa_accuracy'"),
    Case("baseline with a nan score", gate({"vqa_accuracy": float("nan")}), 2, "is nan, not a finite number"),
    # the gate's tolerance
    Case("nan tolerance", gate({"vqa_accuracy": 90.0}, ("--tolerance", "nan")), 2, "--tolerance must be >= 0 and finite, got nan"),
    Case("inf tolerance", gate({"vqa_accuracy": 90.0}, ("--tolerance", "inf")), 2, "got inf"),
    Case("negative tolerance", gate({"vqa_accuracy": 90.0}, ("--tolerance", "-1")), 2, "--tolerance must be >= 0"),
    Case("a drop still fails the gate", gate({"vqa_accuracy": 90.0}), 1, "REGRESSED"),
    # output paths, checked before the work
    Case("leaderboard --output is a folder", board_output("--output", folder), 2, "taken: is a folder, not a file"),
    Case("leaderboard --output under a file", board_output("--output", lambda t: file(t) / "board.md"), 2,
         "plain is a file, not a folder"),
    Case("leaderboard --plot is a folder", board_output("--plot", lambda t: folder(t, "curves.png")), 2,
         "curves.png: is a folder, not a file"),
    Case("leaderboard --plot under a file", board_output("--plot", lambda t: file(t) / "deep" / "curves.png"), 2,
         "--plot"),
    Case("--plot suffix .txt", board_output("--plot", lambda t: t / "curves.txt"), 2, "the suffix must be one of .png, .svg, .pdf"),
    Case("--plot .svg is written as SVG", board_output("--plot", lambda t: t / "curves.svg"), 0, "vqa_accuracy"),
    Case("score --output is a folder", score_output(folder), 2, "--output"),
    Case("score --output under a file", score_output(lambda t: file(t) / "scores.json"), 2, "is a file, not a folder"),
    Case("run --output-dir is a file", run_into(file), 2, "--output-dir"),
    Case("run --output-dir under a file", run_into(lambda t: file(t) / "out"), 2, "plain is a file, not a folder"),
    Case("compare --update into a file", update_into(file), 2, "--update BASELINE"),
    # symlink loops: the record search does not follow links into folders
    Case("leaderboard over a symlink loop", looped("leaderboard"), 0, "50.00"),
    Case("compare over a symlink loop", looped("compare"), 0, "gate passed"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile(case, monkeypatch, capsys, tmp_path):
    code, out, err = run_cli(monkeypatch, capsys, *case.build(tmp_path))
    assert "Traceback" not in out + err
    assert code == case.code, out + err
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), err
        assert case.fragment in lines[0], err
        assert out == "", out  # no table, no score, where an error is due
    else:
        assert case.fragment in out, out


def test_the_suffix_names_the_format_written(monkeypatch, capsys, tmp_path):
    record(tmp_path / "runs")
    for suffix, opening in ((".svg", b"<?xml"), (".pdf", b"%PDF"), (".png", b"\x89PNG")):
        plot = tmp_path / f"curves{suffix}"
        assert run_cli(monkeypatch, capsys, "leaderboard", str(tmp_path / "runs"), "--plot", str(plot))[0] == 0
        assert plot.read_bytes().startswith(opening)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a read-only folder")
def test_read_only_folder_refused_before_the_work(monkeypatch, capsys, tmp_path):
    record(tmp_path / "runs")
    locked = folder(tmp_path, "locked")
    locked.chmod(0o500)
    try:
        code, out, err = run_cli(monkeypatch, capsys, "leaderboard", str(tmp_path / "runs"), "--output", str(locked / "b.md"))
    finally:
        locked.chmod(0o700)
    assert code == 2 and "is not writable" in err and out == ""


def test_score_printed_before_a_write_that_fails_late(monkeypatch, capsys, tmp_path):
    """The path passes the early check, then its folder becomes a file: the scores are on stdout, then one line."""
    monkeypatch.setattr(cli_module, "check_writable_file", lambda path, option: None)
    code, out, err = run_cli(monkeypatch, capsys, *score_output(lambda t: file(t) / "scores.json")(tmp_path))
    assert code == 2 and "vqa_accuracy" in out and "Traceback" not in err
    assert err.startswith("error: --output") and "cannot write" in err


def test_leaderboard_printed_when_its_output_fails_late(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli_results, "check_writable_file", lambda path, option: None)
    record(tmp_path / "runs")
    target = file(tmp_path) / "board.md"
    code, out, err = run_cli(monkeypatch, capsys, "leaderboard", str(tmp_path / "runs"), "--output", str(target))
    assert code == 2 and "50.00" in out and "cannot write" in err and "Traceback" not in err


def test_bundled_baselines_pass_the_reader():
    from results.records import read_records

    baselines = Path(__file__).parent.parent / "results" / "baselines"
    assert len(read_records([baselines])) > 10  # every shipped record is valid
