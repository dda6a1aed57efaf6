"""Resume: a sweep killed with SIGKILL at several points and run again ends identical to an uninterrupted run,
journaled samples are never sent to the model again, and the journal, record schema and refusals behave."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from evals.errors import ConfigError, DataError
from evals.journal import Entry, Journal, journal_key, journal_path, read_entries
from evals.models import ScriptedModel
from evals.runner import RunSettings, run
from results.schema import SCHEMA_VERSION, CellResult
from results.store import read_cell
from tests.conftest import default_sigint

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "250"}

# A task module that registers test-only models: they take a moment per batch (so a test can kill a run
# mid-cell) and log every prompt they are sent (so a test can see what a resumed run recomputed).
SLOW_MODELS = '''
import hashlib, json, os, time
from evals.models import BUNDLED_CHECKPOINT, ModelEntry, ScriptedModel
from evals.models.base import ModelInfo
from evals.registry import MODELS

def digest(text):
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)

def sent(prompts):
    with open(os.environ["EVALS_TEST_PROMPT_LOG"], "a", encoding="utf-8") as log:
        log.write("".join(json.dumps(p.text) + "\\n" for p in prompts))
    time.sleep(float(os.environ.get("EVALS_TEST_DELAY", "0.03")))

class Slow:
    def __init__(self, inner):
        self.inner, self.info, self.placement = inner, inner.info, getattr(inner, "placement", {})

    def generate(self, prompts, params):
        sent(prompts)
        return self.inner.generate(prompts, params)

    def score(self, prompts, candidates, reduction="sum"):
        sent(prompts)
        return self.inner.score(prompts, candidates, reduction)

def scripted(device, dtype):
    model = ScriptedModel(answers=lambda p: ("red", "green", "blue", "yes")[digest(p.text) % 4],
                          candidate_scores=lambda p, c: -(digest(p.text + c) % 1000) / 7.0)
    model.info = ModelInfo("slow-scripted", "scripted", "fixed", "none", "idefics")
    return Slow(model)

def tiny(device, dtype):  # results name it tiny-idefics: the same protocol as the bundled model run in-process
    from evals.models.idefics import IdeficsModel
    return Slow(IdeficsModel.load(BUNDLED_CHECKPOINT, device=device, dtype=dtype, name="tiny-idefics"))

MODELS.add("slow-scripted", ModelEntry("test: scripted, slow, logs prompts", scripted))
MODELS.add("slow-tiny", ModelEntry("test: the bundled tiny IDEFICS, slow, logs prompts", tiny))
'''


@pytest.fixture
def plugin(tmp_path) -> Path:
    path = tmp_path / "slow_models.py"
    path.write_text(SLOW_MODELS)
    return path


def sweep_command(plugin: Path, output: Path, model: str = "slow-scripted", seeds: str = "2", limit: str = "6") -> list[str]:
    """Two tasks (one generative, one ranked), two shot counts, batches of two."""
    return [sys.executable, "-m", "evals", "run", "--model", model, "--task-module", str(plugin),
            "--task", "demo_vqa", "--task", "demo_classify", "--shots", "0,2", "--seeds", seeds, "--limit", limit,
            "--batch-size", "2", "--output-dir", str(output)]


def launch(command: list[str], log: Path, delay: float | None = None) -> subprocess.Popen:
    """The run in the background; `delay` (seconds a model call takes) keeps it going long enough for a test that
    polls from a loaded machine to signal it mid-run."""
    extra = {"EVALS_TEST_DELAY": str(delay)} if delay is not None else {}
    return subprocess.Popen(command, env={**ENV, "EVALS_TEST_PROMPT_LOG": str(log), **extra}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def finish(command: list[str], log: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=False, env={**ENV, "EVALS_TEST_PROMPT_LOG": str(log)}, capture_output=True, text=True,
                          timeout=300)


def kill_when(process: subprocess.Popen, ready, what: str, sig: int = signal.SIGKILL) -> str:
    """Signal the run as soon as `ready()` holds (polling the output folder); fail if it finished first.
    Returns what the run wrote on stderr."""
    deadline = time.monotonic() + 60
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the run ended before {what}: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)
    os.kill(process.pid, sig)
    _, stderr = process.communicate()
    if sig == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    return stderr


def records(output: Path) -> list[Path]:
    return sorted(output.rglob("*shot-seed*.json"))


def journal_rows(output: Path) -> list[int]:
    """Entries (complete lines after the header) in each journal now."""
    return [max(0, p.read_bytes().count(b"\n") - 1) for p in output.rglob("*.journal.jsonl")]


def snapshot(output: Path) -> tuple[set[str], dict[str, set]]:
    """The cells finished and the units journaled (cell stem -> {(id, view)}) before a restart."""
    finished = {str(p.relative_to(output))[: -len(".json")] for p in records(output)}
    journaled = {}
    for path in output.rglob("*.journal.jsonl"):
        lines = path.read_bytes().decode().split("\n")[1:-1]  # past the header; the piece after the last newline is torn
        journaled[str(path.relative_to(output))[: -len(".journal.jsonl")]] = {(r["id"], r["view"]) for r in map(json.loads, lines)}
    return finished, journaled


def prompts_to_send(reference: Path, finished: set[str], journaled: dict[str, set]) -> Counter:
    """The prompts a restart must send: those of unfinished cells' units that are not journaled."""
    expected = Counter()
    for samples in reference.rglob("*.samples.jsonl"):
        stem = str(samples.relative_to(reference))[: -len(".samples.jsonl")]
        if stem in finished:
            continue
        for row in map(json.loads, samples.read_text().splitlines()):
            prompts = row["prompt"] if isinstance(row["prompt"], list) else [row["prompt"]]
            expected.update(p for view, p in enumerate(prompts) if (row["id"], view) not in journaled.get(stem, set()))
    return expected


def sent(log: Path) -> Counter:
    return Counter(map(json.loads, log.read_text().splitlines())) if log.exists() else Counter()


def without_timing(path: Path) -> dict:
    record = json.loads(path.read_text())
    record.pop("timing")
    return record


def names_of_results(output: Path) -> list[str]:
    """Every file a run wrote but its log (OUTPUT_DIR/evals.log, which only the CLI keeps, a header line per run)."""
    return sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file() and p.suffix != ".log")


def assert_identical(resumed: Path, reference: Path, float_noise: bool = False) -> None:
    """Same files; every record equal but for timing; every per-sample file byte for byte. With `float_noise`,
    a ranked task's raw log-likelihoods may differ in float32's last bits (a unit a restart recomputes is batched
    with other queries than before, and CPU kernels sum padded batches in another order): the rest of every row,
    prediction and score included, is still identical."""
    assert names_of_results(resumed) == names_of_results(reference)
    for path in records(reference):
        assert without_timing(resumed / path.relative_to(reference)) == without_timing(path)
    for path in reference.rglob("*.samples.jsonl"):
        got, want = (resumed / path.relative_to(reference)).read_bytes(), path.read_bytes()
        if not float_noise:
            assert got == want
            continue
        for row, expected in zip(map(json.loads, got.splitlines()), map(json.loads, want.splitlines()), strict=True):
            if isinstance(expected["output"], list):  # ranked: one list of candidate log-likelihoods per view
                assert [[pytest.approx(v, rel=1e-6, abs=1e-6) for v in view] for view in expected["output"]] == row["output"]
                row["output"] = expected["output"]
            assert row == expected


KILL_AFTER = (1, 5, 10, 14, 19, 24, 29, 34, 39, 43)  # samples done (of 48) at which the ten runs are killed


def samples_done(output: Path, per_cell: int = 6) -> int:
    """Progress read from the output folder: a finished cell's samples plus the lines of unfinished cells' journals
    (a cell's journal is removed once its record is written)."""
    return per_cell * len(records(output)) + sum(journal_rows(output))


def fully_journaled_samples(reference: Path, journaled: dict[str, set]) -> dict[str, int]:
    """Per unfinished cell, the samples every view of which is journaled: what a restart must read back, not send."""
    counts = {}
    for samples in reference.rglob("*.samples.jsonl"):
        stem = str(samples.relative_to(reference))[: -len(".samples.jsonl")]
        units = journaled.get(stem, set())
        rows = map(json.loads, samples.read_text().splitlines())
        counts[stem] = sum(all((r["id"], v) in units for v in range(len(r["prompt"]) if isinstance(r["prompt"], list) else 1))
                           for r in rows)
    return counts


def test_sweep_killed_at_ten_points_resumes_identical_without_recomputing(tmp_path, plugin):
    """Ten SIGKILLs, each as soon as the journals and records show the next point of progress, then a run to the end.
    No run sends a journaled or finished sample again (the prompt log), and every record's `resumed_samples` is
    exactly what the journal held when the run that finished it started."""
    reference, output = tmp_path / "uninterrupted", tmp_path / "resumed"
    done = finish(sweep_command(plugin, reference), tmp_path / "ref.log")
    assert done.returncode == 0, done.stderr
    assert len(records(reference)) == 8 and "mean ± std" in done.stdout
    total = sum(sent(tmp_path / "ref.log").values())
    assert total == 2 * 2 * 2 * 6  # tasks x shots x seeds x queries, one prompt each

    expected_resumed: dict[str, int] = {}
    for attempt, point in enumerate([*KILL_AFTER, None]):
        finished, journaled = snapshot(output)
        log = tmp_path / f"run{attempt}.log"
        process = launch(sweep_command(plugin, output), log, delay=0.1)
        if point is None:
            _, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stderr
        else:
            target = max(point, samples_done(output) + 1)
            kill_when(process, lambda: samples_done(output) >= target, f"{target} samples done")
        allowed = prompts_to_send(reference, finished, journaled)
        assert sent(log) - allowed == Counter(), f"run {attempt} sent a finished or journaled sample again"
        if point is None:  # the run that finishes sends exactly what was left, nothing twice
            assert sent(log) == allowed and 0 < sum(allowed.values()) < total
        resumable = fully_journaled_samples(reference, journaled)
        for stem in {str(p.relative_to(output))[: -len(".json")] for p in records(output)} - finished:
            expected_resumed[stem] = resumable[stem]  # finished by this run: it read back what the journal held
    assert_identical(output, reference)
    resumed = {str(p.relative_to(output))[: -len(".json")]: json.loads(p.read_text())["timing"]["resumed_samples"]
               for p in records(output)}
    assert resumed == expected_resumed
    assert sum(resumed.values()) > 0  # the kills landed mid-cell: some cells took samples from their journal


def test_tiny_idefics_resumed_mid_cell_matches_an_uninterrupted_run(tmp_path, plugin, tiny_idefics):
    """The bundled model's real outputs (generated text, candidate log-likelihoods) survive the journal exactly."""
    reference, output = tmp_path / "uninterrupted", tmp_path / "resumed"
    run(tiny_idefics, ["demo_vqa", "demo_classify"], RunSettings(shots=(0, 2), limit=4, batch_size=2, output_dir=reference))
    process = launch(sweep_command(plugin, output, "slow-tiny", seeds="1", limit="4"), tmp_path / "first.log")
    kill_when(process, lambda: any(journal_rows(output / "tiny-idefics" / "demo_classify")), "the ranked task's journal")
    finished, journaled = snapshot(output)
    second = finish(sweep_command(plugin, output, "slow-tiny", seeds="1", limit="4"), tmp_path / "second.log")
    assert second.returncode == 0, second.stderr
    assert sent(tmp_path / "second.log") == prompts_to_send(reference, finished, journaled)
    assert_identical(output, reference, float_noise=True)


def test_ctrl_c_says_what_is_kept_and_the_rerun_finishes_the_sweep(tmp_path, plugin):
    output = tmp_path / "out"
    process = launch(sweep_command(plugin, output), tmp_path / "first.log", delay=0.25)  # ~6 s in all: SIGINT lands mid-run
    stderr = kill_when(process, lambda: len(records(output)) >= 1 and any(journal_rows(output)), "a record and a journal",
                       signal.SIGINT)
    assert process.returncode == 130
    assert "interrupted: finished cells and journaled samples are kept; run the same command again" in stderr
    assert records(output) and list(output.rglob("*.journal.jsonl"))
    finished, journaled = snapshot(output)
    done = finish(sweep_command(plugin, output), tmp_path / "second.log")
    assert done.returncode == 0, done.stderr
    assert len(records(output)) == 8 and not list(output.rglob("*.journal.jsonl"))
    # A kill between writing a record and deleting its journal leaves both: that cell counts once, as finished.
    pending = sum(len(units) for cell, units in journaled.items() if cell not in finished)
    assert sum(sent(tmp_path / "second.log").values()) == 48 - len(finished) * 6 - pending


class Interrupt(Exception):
    """Stands in for a kill in-process: the model fails on a chosen call."""


class FailingModel(ScriptedModel):
    def __init__(self, fail_on_call: int | None = None) -> None:
        super().__init__(answers=lambda p: p.text[-12:])
        self.fail_on_call = fail_on_call

    def generate(self, prompts, params):
        if self.fail_on_call is not None and len(self.batch_sizes) + 1 == self.fail_on_call:
            raise Interrupt
        return super().generate(prompts, params)


SETTINGS = {"shots": (2,), "limit": 10, "batch_size": 3}


def test_torn_last_journal_line_is_ignored_and_its_sample_recomputed(tmp_path):
    (reference,) = run(FailingModel(), ["demo_vqa"], RunSettings(**SETTINGS, output_dir=tmp_path / "a"))
    settings = RunSettings(**SETTINGS, output_dir=tmp_path / "b")
    with pytest.raises(Interrupt):
        run(FailingModel(fail_on_call=3), ["demo_vqa"], settings)  # two batches (6 samples) journaled
    (journal,) = (tmp_path / "b").rglob("*.journal.jsonl")
    lines = journal.read_text().splitlines()
    assert len(lines) == 1 + 6
    journal.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])  # the 6th entry torn, as a power loss leaves it
    model = FailingModel()
    (resumed,) = run(model, ["demo_vqa"], settings)
    torn = json.loads(lines[-1])["id"]
    samples = {row["id"]: row for row in map(json.loads, next((tmp_path / "a").rglob("*.samples.jsonl")).read_text().splitlines())}
    assert [p.text for p in model.seen] == [row["prompt"] for i, row in samples.items() if i == torn or list(samples).index(i) >= 6]
    assert model.batch_sizes == [1, 3, 1]  # batches keep their boundaries: [3..5] less the journaled 3, 4; [6..8]; [9]
    assert resumed.scores == reference.scores and resumed.timing["resumed_samples"] == 5
    assert_identical(tmp_path / "b", tmp_path / "a")


def test_a_malformed_journal_line_that_is_not_the_last_is_an_error(tmp_path):
    settings = RunSettings(**SETTINGS, output_dir=tmp_path)
    with pytest.raises(Interrupt):
        run(FailingModel(fail_on_call=3), ["demo_vqa"], settings)
    (journal,) = tmp_path.rglob("*.journal.jsonl")
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join([lines[0], "{not json", *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"journal.jsonl: line 2 is malformed JSON.*--overwrite"):
        run(FailingModel(), ["demo_vqa"], settings)


def test_a_journal_of_another_protocol_is_refused_and_overwrite_starts_afresh(tmp_path):
    settings = RunSettings(**SETTINGS, output_dir=tmp_path)
    with pytest.raises(Interrupt):
        run(FailingModel(fail_on_call=2), ["demo_vqa"], RunSettings(**{**SETTINGS, "limit": 9}, output_dir=tmp_path))
    model = FailingModel()
    with pytest.raises(ConfigError, match=r"seed0.journal.jsonl: journal of a run with another protocol; pass --overwrite"):
        run(model, ["demo_vqa"], settings)
    assert model.seen == []
    (result,) = run(model, ["demo_vqa"], RunSettings(**SETTINGS, output_dir=tmp_path, overwrite=True))
    assert len(model.seen) == 10 and result.timing["resumed_samples"] == 0  # nothing taken from the stale journal
    assert not list(tmp_path.rglob("*.journal.jsonl"))


def test_journal_reads_back_what_it_appended_and_keys_by_protocol(tmp_path):
    path = journal_path(tmp_path / "cell")
    with Journal(path, "key-a") as journal:
        written = journal.append([Entry("q1", 0, ("s1", "s2"), [[-1.5, -0.25]]), Entry("q2", 1, (), failed="bad image")])
    assert written == [Entry("q1", 0, ("s1", "s2"), [[-1.5, -0.25]]), Entry("q2", 1, (), failed="bad image")]
    assert read_entries(path, "key-a") == {("q1", 0): written[0], ("q2", 1): written[1]}
    with pytest.raises(ConfigError, match="another protocol"):
        read_entries(path, "key-b")
    with open(path, "ab") as handle:
        handle.write(b'{"id": "q3", "vi')  # torn
    with Journal(path, "key-a") as journal:  # reopening drops the torn tail before appending
        assert set(journal.entries) == {("q1", 0), ("q2", 1)}
        journal.append([Entry("q3", 0, (), "text")])
    assert set(read_entries(path, "key-a")) == {("q1", 0), ("q2", 1), ("q3", 0)}


def test_finished_cells_are_read_back_and_a_changed_protocol_is_refused(tmp_path):
    first = run(ScriptedModel(), ["demo_vqa"], RunSettings(shots=(0, 2), limit=4, output_dir=tmp_path))
    model = ScriptedModel()
    again = run(model, ["demo_vqa"], RunSettings(shots=(0, 2), limit=4, output_dir=tmp_path))
    assert model.seen == [] and again == first  # both cells finished: read back, nothing sent
    with pytest.raises(ConfigError, match=r"random-0shot-seed0.json: holds a result of another protocol \(differs in "
                                          r"query_fingerprint, n_queries\); pass --overwrite"):
        run(model, ["demo_vqa"], RunSettings(shots=(0, 2), limit=5, output_dir=tmp_path))
    assert model.seen == []  # refused before any model call


def test_cli_refuses_a_changed_protocol_and_overwrite_replaces_it(tmp_path):
    base = [sys.executable, "-m", "evals", "run", "--model", "scripted", "--task", "demo_vqa", "--shots", "2",
            "--output-dir", str(tmp_path)]
    assert subprocess.run([*base, "--limit", "3"], check=False, env=ENV, capture_output=True, text=True).returncode == 0
    refused = subprocess.run([*base, "--limit", "4"], check=False, env=ENV, capture_output=True, text=True)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "holds a result of another protocol" in refused.stderr and "--overwrite" in refused.stderr
    replaced = subprocess.run([*base, "--limit", "4", "--overwrite"], check=False, env=ENV, capture_output=True, text=True)
    assert replaced.returncode == 0, replaced.stderr
    (record,) = records(tmp_path)
    assert read_cell(record).protocol.n_queries == 4


def test_record_schema_v4_timing_failures_and_reading_back(tmp_path):
    (result,) = run(ScriptedModel(), ["demo_vqa"], RunSettings(shots=(2,), limit=4, output_dir=tmp_path))
    (path,) = records(tmp_path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 6
    assert data["integrity"] == {"journal_entries_rejected": 0, "feature_cache_entries_rejected": 0}
    v4 = {k: v for k, v in data.items() if k != "integrity"} | {"schema_version": 4}
    assert CellResult.from_dict(v4, "v4.json").integrity == data["integrity"]  # a v4 record reads, claiming nothing found
    assert set(data["timing"]) == {"wall_seconds", "model_seconds", "examples_per_second", "overhead_fraction", "resumed_samples"}
    assert 0.0 <= data["timing"]["overhead_fraction"] <= 1.0
    assert data["failures"] == {"failed_samples": 0, "reasons": {}}
    commit = data["protocol"]["git_commit"]
    assert commit == "unknown" or len(commit.removesuffix("-dirty")) == 40
    assert "git_commit" not in result.protocol.comparable() and read_cell(path) == result
    v2 = {k: v for k, v in data.items() if k != "failures"} | {"schema_version": 2}
    v2["protocol"] = {k: v for k, v in data["protocol"].items() if k != "git_commit"}
    old = CellResult.from_dict(v2, "old.json")  # a v2 record reads, with nothing claimed for what it did not say
    assert old.protocol.git_commit == "unknown" and old.failures == {"failed_samples": 0, "reasons": {}}
    assert data["protocol"]["model_args"] == {}  # the scripted model has no loading options
    v3 = data | {"schema_version": 3, "protocol": {k: v for k, v in data["protocol"].items() if k != "model_args"}}
    older = CellResult.from_dict(v3, "v3.json")  # a v3 record, written before model_args, reads with none set
    assert older.protocol.model_args == {} and older.protocol.comparable_hash() == result.protocol.comparable_hash()
    with pytest.raises(DataError, match="new.json: record has unknown field 'extra'"):
        CellResult.from_dict({**data, "extra": 1}, "new.json")
    with pytest.raises(DataError, match="x.json: protocol has no field 'task'"):
        CellResult.from_dict({**data, "protocol": {k: v for k, v in data["protocol"].items() if k != "task"}}, "x.json")
    with pytest.raises(DataError, match="x.json: schema_version 9"):
        CellResult.from_dict({**data, "schema_version": 9}, "x.json")


def test_skip_bad_samples_counts_them_and_scores_the_rest(tmp_path, vqa_data_dir):
    broken = sorted((vqa_data_dir / "vqav2" / "val2014").glob("*.jpg"))[1]
    broken.write_bytes(b"not an image")
    model = ScriptedModel(default="red")
    settings = RunSettings(shots=(2,), data_dir=vqa_data_dir, output_dir=tmp_path, skip_bad_samples=True)
    (result,) = run(model, ["vqav2"], settings)
    assert result.failures["failed_samples"] == 1
    (reason,) = result.failures["reasons"].values()
    assert f"{broken}: cannot decode image" in reason
    assert len(model.seen) == 5 and len(next(tmp_path.rglob("*.samples.jsonl")).read_text().splitlines()) == 5
    assert result.scores["vqa_accuracy"] == pytest.approx(100 * 2 / 5)  # red answers queries 0 and 4 of the five left


def test_journal_key_depends_on_seed_and_comparable_fields_only(tmp_path):
    from dataclasses import replace

    (result,) = run(ScriptedModel(), ["demo_vqa"], RunSettings(shots=(2,), limit=2, output_dir=tmp_path))
    protocol = result.protocol
    assert journal_key(replace(protocol, versions={}, git_commit="other")) == journal_key(protocol)
    assert journal_key(replace(protocol, seed=1)) != journal_key(protocol)
    assert journal_key(replace(protocol, template_hash="x")) != journal_key(protocol)
