"""Hostile stored intermediates: a journal entry or a cached feature file that does not verify is recomputed with a
warning and counted in the cell's record (`integrity`), never scored; a cache path that cannot be a file is one line,
exit 2; and a sweep killed at 10 points of journal growth resumes to the records of an uninterrupted run."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import call_evals
from evals.features import FeatureCacheWarning
from evals.journal import JournalWarning, entry_sum, journal_key, journal_path
from evals.models import ScriptedModel
from evals.runner import RunSettings, run
from evals.selection import RicesOptions
from tests.test_resume import assert_identical, journal_rows, kill_when, launch, plugin, records, sent  # noqa: F401
from tests.test_resume import finish, prompts_to_send, snapshot, sweep_command

SETTINGS = {"shots": (2,), "limit": 6, "batch_size": 2}


def line(row: dict, key: str) -> str:
    """A journal line as the harness writes it: verified content, checksum under `key`."""
    return json.dumps({**row, "sum": entry_sum(key, row)})


def reference(tmp_path: Path, task: str):
    """An uninterrupted cell, and its units as journal rows (id, view, shot_ids, output)."""
    (result,) = run(ScriptedModel(), [task], RunSettings(**SETTINGS, output_dir=tmp_path / "clean"))
    (samples,) = (tmp_path / "clean").rglob("*.samples.jsonl")
    rows = []
    for sample in map(json.loads, samples.read_text().splitlines()):
        views = sample["output"] if isinstance(sample["output"], list) else [sample["output"]]
        rows += [{"id": sample["id"], "view": v, "shot_ids": sample["shot_ids"], "output": o} for v, o in enumerate(views)]
    return result, rows


def altered(rows, key):
    return [line(rows[0], key), line(rows[1], key).replace(json.dumps(rows[1]["output"]), json.dumps("tampered")),
            *(line(r, key) for r in rows[2:])]


def other_shots(rows, key):
    text = line(rows[1], key).replace(json.dumps(rows[1]["shot_ids"]), json.dumps(rows[0]["shot_ids"][::-1]))
    return [line(rows[0], key), text, *(line(r, key) for r in rows[2:])]


def first_as(**change):
    """Rows with the first one changed, checksummed under the cell's key (so only the shape check can catch it)."""
    return lambda rows, key: [line({**rows[0], **change}, key), *(line(r, key) for r in rows[1:])]


def without_sum(rows, key):
    return [json.dumps(rows[0]), *(line(r, key) for r in rows[1:])]


def other_protocol(rows, key):
    return [line(rows[0], "sha256:another-protocol"), *(line(r, key) for r in rows[1:])]


def not_an_entry(rows, key):
    return ["[1, 2]", *(line(r, key) for r in rows[1:])]


def failed_not_text(rows, key):
    row = {k: v for k, v in rows[0].items() if k != "output"} | {"failed": 3}
    return [line(row, key), *(line(r, key) for r in rows[1:])]


def ranked_wrong_length(rows, key):
    return first_as(output=rows[0]["output"][:-1])(rows, key)


JOURNAL_CASES = [  # name, task, journal lines (from the clean rows and the cell's key), rejected, warning fragment
    ("altered_output", "demo_vqa", altered, 1, "checksum does not match"),
    ("altered_shot_ids", "demo_vqa", other_shots, 1, "checksum does not match"),
    ("output_wrong_type", "demo_vqa", first_as(output=5), 1, "output is not text"),
    ("output_list_for_text", "demo_vqa", first_as(output=["red"]), 1, "output is not text"),
    ("unknown_id", "demo_vqa", first_as(id="nope"), 1, "'nope' view 0: not a query of this cell"),
    ("unknown_view", "demo_vqa", first_as(view=3), 1, "no such prompt"),
    ("view_is_bool", "demo_vqa", first_as(view=True), 1, "not a journal entry"),
    ("no_checksum", "demo_vqa", without_sum, 1, "checksum does not match"),
    ("other_protocol_checksum", "demo_vqa", other_protocol, 1, "checksum does not match"),
    ("not_an_object", "demo_vqa", not_an_entry, 1, "line 2: not a journal entry"),
    ("failed_not_text", "demo_vqa", failed_not_text, 1, "field 'failed' is not text"),
    ("ranked_wrong_length", "demo_classify", ranked_wrong_length, 1, "candidate scores"),
    ("ranked_text_output", "demo_classify", first_as(output="A"), 1, "candidate scores"),
    ("ranked_bool_scores", "demo_classify", lambda rows, key: first_as(output=[True] * len(rows[0]["output"]))(rows, key),
     1, "candidate scores"),
]


@pytest.mark.parametrize("name, task, corrupt, rejected, fragment", JOURNAL_CASES, ids=[c[0] for c in JOURNAL_CASES])
def test_a_journal_entry_that_does_not_verify_is_recomputed_counted_and_warned(tmp_path, name, task, corrupt, rejected,
                                                                               fragment):
    clean, rows = reference(tmp_path, task)
    key = journal_key(clean.protocol)
    (record,) = records(tmp_path / "clean")
    stem = tmp_path / "resumed" / record.relative_to(tmp_path / "clean").with_suffix("")
    path = journal_path(stem)
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([json.dumps({"journal": 2, "key": key}), *corrupt(rows, key)]) + "\n")
    model = ScriptedModel()
    with pytest.warns(JournalWarning, match=fragment):
        (result,) = run(model, [task], RunSettings(**SETTINGS, output_dir=tmp_path / "resumed"))
    assert result.integrity == {"journal_entries_rejected": rejected, "feature_cache_entries_rejected": 0}
    assert len(model.seen) == rejected  # only what was rejected went to the model again
    assert result.scores == clean.scores
    assert_same_samples(tmp_path / "resumed", tmp_path / "clean")
    assert json.loads(record.read_text())["integrity"]["journal_entries_rejected"] == 0


def test_a_version_1_journal_is_unverifiable_and_every_entry_recomputed(tmp_path):
    clean, rows = reference(tmp_path, "demo_vqa")
    key = journal_key(clean.protocol)
    (record,) = records(tmp_path / "clean")
    path = journal_path(tmp_path / "resumed" / record.relative_to(tmp_path / "clean").with_suffix(""))
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([json.dumps({"journal": 1, "key": key}), *map(json.dumps, rows[:4])]) + "\n")
    model = ScriptedModel()
    with pytest.warns(JournalWarning, match="4 journal entries rejected .*journal version 1"):
        (result,) = run(model, ["demo_vqa"], RunSettings(**SETTINGS, output_dir=tmp_path / "resumed"))
    assert result.integrity["journal_entries_rejected"] == 4 and len(model.seen) == 6
    assert result.scores == clean.scores and result.timing["resumed_samples"] == 0


def cli(monkeypatch, capsys, *args):
    return call_evals(monkeypatch, capsys, list(args))


def rices_args(output: Path, cache: Path) -> list[str]:
    return ["run", "--model", "scripted", "--task", "demo_vqa", "--shots", "2", "--limit", "6", "--selection", "rices",
            "--embedder", "offline", "--cache-dir", str(cache), "--output-dir", str(output)]


def test_cli_shows_a_rejected_journal_entry_on_stderr(monkeypatch, capsys, tmp_path):
    clean, rows = reference(tmp_path, "demo_vqa")
    key = journal_key(clean.protocol)
    (record,) = records(tmp_path / "clean")
    path = journal_path(tmp_path / "out" / record.relative_to(tmp_path / "clean").with_suffix(""))
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([json.dumps({"journal": 2, "key": key}), *altered(rows, key)]) + "\n")
    code, out, err = cli(monkeypatch, capsys, "run", "--model", "scripted", "--task", "demo_vqa", "--shots", "2",
                         "--limit", "6", "--batch-size", "2", "--output-dir", str(tmp_path / "out"))
    assert code == 0, err
    warned = [text for text in err.splitlines() if text.startswith("warning:")]
    assert len(warned) == 1 and str(path) in warned[0] and "1 journal entries rejected" in warned[0]
    assert "Traceback" not in err
    assert json.loads(next((tmp_path / "out").rglob("*seed0.json")).read_text())["integrity"]["journal_entries_rejected"] == 1


def altered_vectors(path: Path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="np") as handle:
        metadata, matrix = handle.metadata(), handle.get_tensor("features")
    matrix[0] = -matrix[0]  # still a unit vector, metadata intact
    save_file({"features": matrix}, str(path), metadata=metadata)


def no_checksum(path: Path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="np") as handle:
        metadata, matrix = handle.metadata(), handle.get_tensor("features")
    save_file({"features": matrix}, str(path), metadata={k: v for k, v in metadata.items() if k != "checksum"})


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


CACHE_CASES = [  # name, what is done to each cached file, warning fragment
    ("altered_vectors", altered_vectors, "checksum does not match its features"),
    ("no_checksum", no_checksum, "no checksum"),
    ("truncated", truncated, "unreadable"),
]


@pytest.mark.parametrize("name, corrupt, fragment", CACHE_CASES, ids=[c[0] for c in CACHE_CASES])
def test_a_feature_cache_that_does_not_verify_is_rebuilt_counted_and_warned(tmp_path, name, corrupt, fragment):
    rices = RicesOptions(embedder="offline", cache_dir=tmp_path / "cache")
    settings = RunSettings(**SETTINGS, selections=("rices",), rices=rices)
    (clean,) = run(ScriptedModel(), ["demo_vqa"], replace(settings, output_dir=tmp_path / "clean"))
    files = sorted((tmp_path / "cache").rglob("*.safetensors"))
    assert len(files) == 2  # support and query splits
    originals = [np.copy(read_matrix(f)) for f in files]
    for file in files:
        corrupt(file)
    with pytest.warns(FeatureCacheWarning, match=fragment):
        (result,) = run(ScriptedModel(), ["demo_vqa"], replace(settings, output_dir=tmp_path / "b"))
    assert result.integrity == {"journal_entries_rejected": 0, "feature_cache_entries_rejected": 2}
    assert result.scores == clean.scores and result.protocol == clean.protocol
    for file, original in zip(files, originals):
        np.testing.assert_array_equal(read_matrix(file), original)  # rebuilt, and verifies again
    assert_same_samples(tmp_path / "b", tmp_path / "clean")


def assert_same_samples(got: Path, want: Path) -> None:
    """Every per-sample file byte for byte (the records differ in their integrity counts, by design)."""
    expected = sorted(want.rglob("*.samples.jsonl"))
    assert expected and [(got / p.relative_to(want)).read_bytes() for p in expected] == [p.read_bytes() for p in expected]


def read_matrix(path: Path) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        return handle.get_tensor("features")


def filled_cache(tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    run(ScriptedModel(), ["demo_vqa"], RunSettings(**SETTINGS, selections=("rices",), output_dir=tmp_path / "first",
                                                   rices=RicesOptions(embedder="offline", cache_dir=cache)))
    return cache


def folder_at_cache_file(tmp_path: Path) -> tuple[Path, str]:
    cache = filled_cache(tmp_path)
    for target in cache.rglob("*.safetensors"):
        target.unlink()
        target.mkdir()
    return cache, ".safetensors: is a folder"


def file_as_cache_dir(tmp_path: Path) -> tuple[Path, str]:
    cache = tmp_path / "not-a-folder"
    cache.write_text("x")
    return cache, str(cache)


def file_as_embedder_folder(tmp_path: Path) -> tuple[Path, str]:
    cache = filled_cache(tmp_path)
    (embedder_dir,) = cache.iterdir()
    shutil.rmtree(embedder_dir)
    embedder_dir.write_text("x")  # the embedder's folder is a file: the cache file's parent is not a folder
    return cache, str(embedder_dir)


PATH_CASES = [  # name, how the cache path is broken (returns --cache-dir and the path the message names)
    ("folder_where_the_file_goes", folder_at_cache_file, "is a folder where the RICES feature cache file goes"),
    ("cache_dir_is_a_file", file_as_cache_dir, "cannot write the RICES feature cache"),
    ("embedder_folder_is_a_file", file_as_embedder_folder, "cannot write the RICES feature cache"),
]


@pytest.mark.parametrize("name, broken, fragment", PATH_CASES, ids=[c[0] for c in PATH_CASES])
def test_a_cache_path_that_cannot_be_a_file_is_one_line_exit_2(monkeypatch, capsys, tmp_path, name, broken, fragment):
    cache, named = broken(tmp_path)
    code, out, err = cli(monkeypatch, capsys, *rices_args(tmp_path / "out", cache))
    assert code == 2, err
    lines = [text for text in err.splitlines() if text.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and named in lines[0] and fragment in lines[0], err
    assert str(cache) in lines[0]
    assert "Traceback" not in err and "vqa_accuracy" not in out


KILLS = 10
QUERIES = "4"  # per cell: 8 cells of 4 queries, batches of 2, so 16 batches for 10 kills and the run that finishes


def progress(output: Path) -> int:
    """Units done so far: every query of a finished cell, plus every journal's entries."""
    return int(QUERIES) * len(records(output)) + sum(journal_rows(output))


def test_a_sweep_killed_at_10_points_of_journal_growth_resumes_identical(tmp_path, plugin):  # noqa: F811
    reference_dir, output = tmp_path / "uninterrupted", tmp_path / "resumed"
    done = finish(sweep_command(plugin, reference_dir, limit=QUERIES), tmp_path / "ref.log")
    assert done.returncode == 0, done.stderr
    snapshots, logs = [], []
    for attempt in range(KILLS + 1):
        snapshots.append(snapshot(output))
        logs.append(tmp_path / f"run{attempt}.log")
        process = launch(sweep_command(plugin, output, limit=QUERIES), logs[-1], delay=0.06)
        if attempt == KILLS:
            _, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stderr
            break
        start = progress(output)
        kill_when(process, lambda: progress(output) >= start + 2, f"journal growth {attempt + 1}")
    for attempt, log in enumerate(logs):  # no run sent a finished or journaled unit again
        finished, journaled = snapshots[attempt]
        assert sent(log) - prompts_to_send(reference_dir, finished, journaled) == Counter()
    assert_identical(output, reference_dir)
    expected = resumed_expected(snapshots + [snapshot(output)])
    assert expected > 0  # some cell was finished by a run that found its journal started
    assert sum(json.loads(p.read_text())["timing"]["resumed_samples"] for p in records(output)) == expected
    assert all(json.loads(p.read_text())["integrity"]["journal_entries_rejected"] == 0 for p in records(output))


def resumed_expected(snapshots: list) -> int:
    """Each cell's record is written by the run that finished it: it resumed what the journal held when it started."""
    total = 0
    for (finished, journaled), (after, _) in zip(snapshots, snapshots[1:]):
        total += sum(len(journaled.get(cell, ())) for cell in after - finished)
    return total
