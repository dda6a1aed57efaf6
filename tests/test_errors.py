"""Bad input gets one clear line naming the file, field or name, and a non-zero exit (never a traceback)."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from evals.cli import main
from evals.errors import EvalsError
from evals.crash import package_version, write_log


def cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["evals", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for fragment in fragments:
        assert fragment in lines[0], err


def run_args(data_dir, tmp_path, *extra):
    return ["run", "--model", "scripted", "--task", "vqav2", "--data-dir", str(data_dir),
            "--output-dir", str(tmp_path / "out"), "--shots", "2", *extra]


def test_unknown_task_suggests(monkeypatch, capsys):
    code, err = cli(monkeypatch, capsys, "run", "--task", "vqa2")
    assert_one_line_error(code, err, "unknown task 'vqa2'", "did you mean 'vqav2'")


def test_unknown_model_suggests(monkeypatch, capsys):
    code, err = cli(monkeypatch, capsys, "run", "--model", "tiny-idefic")
    assert_one_line_error(code, err, "unknown model 'tiny-idefic'", "'tiny-idefics'")


def test_task_without_data_dir(monkeypatch, capsys):
    code, err = cli(monkeypatch, capsys, "run", "--model", "scripted", "--task", "vqav2")
    assert_one_line_error(code, err, "task 'vqav2' needs its data", "--data-dir")


def test_missing_file(monkeypatch, capsys, vqa_data_dir, tmp_path):
    missing = vqa_data_dir / "vqav2" / "v2_mscoco_val2014_annotations.json"
    missing.unlink()
    code, err = cli(monkeypatch, capsys, *run_args(vqa_data_dir, tmp_path))
    assert_one_line_error(code, err, str(missing), "file not found")


def test_malformed_json(monkeypatch, capsys, vqa_data_dir, tmp_path):
    path = vqa_data_dir / "vqav2" / "v2_OpenEnded_mscoco_train2014_questions.json"
    path.write_text('{"questions": [')
    code, err = cli(monkeypatch, capsys, *run_args(vqa_data_dir, tmp_path))
    assert_one_line_error(code, err, str(path), "malformed JSON")


def test_missing_field(monkeypatch, capsys, vqa_data_dir, tmp_path):
    path = vqa_data_dir / "vqav2" / "v2_OpenEnded_mscoco_val2014_questions.json"
    payload = json.loads(path.read_text())
    del payload["questions"][3]["question"]
    path.write_text(json.dumps(payload))
    code, err = cli(monkeypatch, capsys, *run_args(vqa_data_dir, tmp_path))
    assert_one_line_error(code, err, str(path), "question 503", "no field 'question'")


def test_corrupt_image(monkeypatch, capsys, vqa_data_dir, tmp_path):
    image = vqa_data_dir / "vqav2" / "val2014" / "COCO_val2014_000000000502.jpg"
    image.write_bytes(b"not a jpeg at all")
    code, err = cli(monkeypatch, capsys, *run_args(vqa_data_dir, tmp_path, "--model", "tiny-idefics"))
    assert_one_line_error(code, err, str(image), "cannot decode image")


def test_missing_image(monkeypatch, capsys, vqa_data_dir, tmp_path):
    image = vqa_data_dir / "vqav2" / "val2014" / "COCO_val2014_000000000501.jpg"
    image.unlink()
    code, err = cli(monkeypatch, capsys, *run_args(vqa_data_dir, tmp_path, "--model", "tiny-idefics"))
    assert_one_line_error(code, err, str(image), "image file not found")


def test_too_many_shots(monkeypatch, capsys, vqa_data_dir, tmp_path):
    code, err = cli(monkeypatch, capsys, *run_args(vqa_data_dir, tmp_path, "--shots", "0,16"))
    assert_one_line_error(code, err, "16 shots requested", "'train2014' has 12 examples")


def test_bad_shot_list(monkeypatch, capsys):
    code, err = cli(monkeypatch, capsys, "run", "--shots", "4,eight")
    assert_one_line_error(code, err, "--shots", "'4,eight'")


def copy_conformance(conformance, tmp_path):
    folder = tmp_path / "vqa"
    shutil.copytree(conformance / "vqa_accuracy", folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def score_args(folder):
    return ["score", "vqav2", "--predictions", str(folder / "predictions.json"),
            "--annotations", str(folder / "annotations.json"), "--questions", str(folder / "questions.json")]


def test_prediction_missing_ids(monkeypatch, capsys, conformance, tmp_path):
    folder = copy_conformance(conformance, tmp_path)
    rows = json.loads((folder / "predictions.json").read_text())
    (folder / "predictions.json").write_text(json.dumps(rows[2:]))
    code, err = cli(monkeypatch, capsys, *score_args(folder))
    assert_one_line_error(code, err, "predictions.json", "no prediction for 2 question_ids", "700000")


def test_prediction_unknown_ids(monkeypatch, capsys, conformance, tmp_path):
    folder = copy_conformance(conformance, tmp_path)
    rows = json.loads((folder / "predictions.json").read_text())
    rows.append({"question_id": 123456789, "answer": "yes"})
    (folder / "predictions.json").write_text(json.dumps(rows))
    code, err = cli(monkeypatch, capsys, *score_args(folder))
    assert_one_line_error(code, err, "predictions.json", "not in annotations.json", "123456789")


def test_prediction_missing_answer_field(monkeypatch, capsys, conformance, tmp_path):
    folder = copy_conformance(conformance, tmp_path)
    rows = json.loads((folder / "predictions.json").read_text())
    del rows[5]["answer"]
    (folder / "predictions.json").write_text(json.dumps(rows))
    code, err = cli(monkeypatch, capsys, *score_args(folder))
    assert_one_line_error(code, err, "predictions.json", "entry #5", "no field 'answer'")


def test_score_unscoreable_task(monkeypatch, capsys, conformance):
    folder = conformance / "vqa_accuracy"
    code, err = cli(monkeypatch, capsys, "score", "vqav3", "--predictions", str(folder / "predictions.json"),
                    "--annotations", str(folder / "annotations.json"))
    assert_one_line_error(code, err, "unknown task 'vqav3'")


def crash_in_model_loading(monkeypatch):
    """A bug inside `evals run` (after its output folder is known): model loading raises RuntimeError."""
    import evals.models

    def broken(*args, **kwargs):
        raise RuntimeError("tensor sizes do not match\n(a second line of detail)")

    monkeypatch.setattr(evals.models, "resolve_model", broken)


def test_a_bug_is_one_line_a_crash_log_and_status_3(monkeypatch, capsys, tmp_path):
    from importlib.metadata import version

    crash_in_model_loading(monkeypatch)
    monkeypatch.delenv("EVALS_DEBUG", raising=False)
    code, err = cli(monkeypatch, capsys, "run", "--model", "scripted", "--output-dir", str(tmp_path / "out"))
    assert code == 3 and "Traceback" not in err
    (line,) = err.splitlines()
    (log,) = (tmp_path / "out").glob("crash-*.log")
    assert line == (f"internal error: RuntimeError: tensor sizes do not match (torch {version('torch')}, "
                    f"transformers {version('transformers')}); full traceback in {log}")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in broken" in text and "(a second line of detail)" in text
    assert "command: evals run --model scripted" in text


def test_without_an_output_folder_the_crash_log_is_a_temporary_file(monkeypatch, capsys, tmp_path):
    import tempfile

    import evals.listings

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(evals.listings, "task_records", lambda: {}["no such key"])
    monkeypatch.delenv("EVALS_DEBUG", raising=False)
    code, err = cli(monkeypatch, capsys, "tasks")
    (log,) = tmp_path.glob("evals-crash-*.log")
    assert code == 3 and err == f"internal error: KeyError: 'no such key' (torch {package_version('torch')}, " \
                                f"transformers {package_version('transformers')}); full traceback in {log}\n"
    assert "KeyError" in log.read_text()
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # a folder that cannot be made: the log goes to a temporary file instead
    assert write_log("text", blocked / "out", "crash-1.log").parent == tmp_path


def test_evals_debug_prints_the_traceback(monkeypatch, capsys, tmp_path):
    crash_in_model_loading(monkeypatch)
    monkeypatch.setenv("EVALS_DEBUG", "1")
    code, err = cli(monkeypatch, capsys, "run", "--model", "scripted", "--output-dir", str(tmp_path / "out"))
    assert code == 3
    assert "Traceback (most recent call last)" in err and "RuntimeError: tensor sizes do not match" in err
    assert not list(tmp_path.rglob("crash-*.log"))


def test_only_rank_0_reports_a_crash(monkeypatch, capsys, tmp_path):
    crash_in_model_loading(monkeypatch)
    monkeypatch.delenv("EVALS_DEBUG", raising=False)
    monkeypatch.setenv("RANK", "1")
    code, err = cli(monkeypatch, capsys, "run", "--model", "scripted", "--output-dir", str(tmp_path / "out"))
    assert code == 3 and err == ""
    (log,) = (tmp_path / "out").glob("crash-*-rank1.log")
    assert "tensor sizes do not match" in log.read_text()


@pytest.mark.parametrize("folder", ["./missing-folder", "../missing-folder", "/tmp/nope/ckpt", "missing-folder/",
                                    "~/no-such-evals-checkpoint", "a/b/c"])
def test_a_missing_model_folder_is_named(monkeypatch, capsys, tmp_path, folder):
    monkeypatch.chdir(tmp_path)
    code, err = cli(monkeypatch, capsys, "run", "--model", folder, "--output-dir", str(tmp_path / "out"))
    assert_one_line_error(code, err, f"model folder not found: {folder}")


def test_what_looks_like_a_model_folder(monkeypatch, tmp_path):
    from evals.models import check_model_name, looks_like_path

    monkeypatch.chdir(tmp_path)
    assert not any(looks_like_path(name) for name in ("HuggingFaceM4/idefics-9b", "tiny-idefics", "org/name"))
    check_model_name("HuggingFaceM4/idefics-9b")  # a hub id goes to the hub, not to "folder not found"
    (tmp_path / "ckpts").mkdir()
    assert looks_like_path("ckpts/tiny2")  # `ckpts` is a folder here: a path, and a missing one
    with pytest.raises(EvalsError, match="model folder not found: ckpts/tiny2"):
        check_model_name("ckpts/tiny2")
    check_model_name("ckpts")  # a folder here without a slash is still a folder, not a typo of a model name


def test_an_error_quoting_brackets_prints_them_as_text(tmp_path, capsys, monkeypatch):
    """A path or a data value in the one-line error is shown as typed: '[bold]' or '[/]' in it is not rich markup
    (an unbalanced '[/]' would otherwise raise inside the error report itself)."""
    from evals import cli

    missing = tmp_path / "[/]run[bold]" / "predictions.json"
    monkeypatch.setattr(sys, "argv", ["evals", "score", "vqav2", "--predictions", str(missing), "--annotations", str(missing)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "[/]run[bold]" in err and "Traceback" not in err
