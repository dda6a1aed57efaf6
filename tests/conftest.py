"""Shared fixtures: offline hub settings, conformance vectors, small VQA datasets made on the fly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

TESTS = Path(__file__).resolve().parent
# The repository's own copy of the vectors, so that a lone clone tests itself; test_conformance_copy.py
# checks it against the source, ../shared/conformance, where that sits beside the checkout.
CONFORMANCE = TESTS / "data" / "conformance"
SHARED_CONFORMANCE = TESTS.parent.parent / "shared" / "conformance"


@pytest.fixture(scope="session")
def conformance() -> Path:
    return CONFORMANCE


def write_vqa_split(root: Path, split: str, items: list[dict], image_color=(200, 30, 30)) -> None:
    """Write one split in the official VQAv2 file formats: questions, annotations, COCO-named images.

    `items`: dicts with question_id, image_id, question, answers (10 strings) and optional types.
    """
    from PIL import Image

    (root / split).mkdir(parents=True, exist_ok=True)
    for item in items:
        path = root / split / f"COCO_{split}_{item['image_id']:012d}.jpg"
        if not path.exists():
            Image.new("RGB", (40, 40), image_color).save(path)
    questions = [{"question_id": i["question_id"], "image_id": i["image_id"], "question": i["question"]} for i in items]
    annotations = [
        {
            "question_id": i["question_id"], "image_id": i["image_id"],
            "question_type": i.get("question_type", "what"), "answer_type": i.get("answer_type", "other"),
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": n + 1} for n, a in enumerate(i["answers"])],
        }
        for i in items
    ]
    (root / f"v2_OpenEnded_mscoco_{split}_questions.json").write_text(json.dumps({"questions": questions}))
    (root / f"v2_mscoco_{split}_annotations.json").write_text(json.dumps({"annotations": annotations}))


def vqa_items(first_qid: int, count: int) -> list[dict]:
    colors = ["red", "green", "blue", "yellow"]
    return [
        {"question_id": first_qid + n, "image_id": first_qid + n, "question": f"What color is thing {n}?",
         "answers": [colors[n % 4]] * 10}
        for n in range(count)
    ]


@pytest.fixture
def vqa_data_dir(tmp_path: Path) -> Path:
    """A DATA_DIR holding a small `vqav2/` folder: 12 support and 6 query questions."""
    root = tmp_path / "data" / "vqav2"
    write_vqa_split(root, "train2014", vqa_items(100, 12))
    write_vqa_split(root, "val2014", vqa_items(500, 6))
    return tmp_path / "data"


@pytest.fixture(scope="session")
def tiny_idefics():
    from evals.models import resolve_model

    return resolve_model("tiny-idefics")


def call_evals(monkeypatch, capsys, args: list[str]) -> tuple[int, str, str]:
    """`evals ARGS` in this process, as the installed script calls it: (exit status, stdout, stderr)."""
    import sys

    from evals.cli import main

    monkeypatch.setattr(sys, "argv", ["evals", *args])
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(code: int, out: str, err: str, expected: int, fragment: str) -> None:
    """Bad input as README promises it: the expected exit status, one `error:` line holding `fragment`, no traceback,
    and nothing on stdout (no score or table where an error is due)."""
    assert "Traceback" not in out + err
    assert code == expected, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert fragment in lines[0], err
    assert not out.strip(), out


def free_port() -> int:
    """A localhost port nothing listens on now (for a torchrun rendezvous)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def default_sigint() -> None:
    """A subprocess's preexec_fn: a shell without job control starts background commands (`pytest &`, CI) with SIGINT
    ignored, and a child inherits that: Python then installs no KeyboardInterrupt handler. The command under test gets
    Ctrl-C as a terminal gives it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
