"""`evals view` on a VQAv2-val-sized cell (214,354 samples): the one-file report against the served page.

The benchmark writes, into a temporary folder, a VQAv2-format copy of the task data (the bundled demo's train2014
support set, and a val2014 set of 214,354 synthetic questions over the demo's 40 val images, 10 answers each) and one
2-shot cell of the `vqav2` task as `evals run` writes it (the record of a scripted demo run, re-labelled; a
samples line per question with its shots, interleaved prompt, output, prediction and score), so every `<image>`
marker resolves to a real image. It measures, in this process:

- file mode (`evals view`, --max-samples 5000 by default): the report's size and the time to build and write it;
- served mode (`evals view --serve`): the start-up time (records, samples and task data read, page built, socket
  bound), and what the browser fetches for the first page of samples (the page, one /samples answer, the
  thumbnails it shows) with the number of thumbnails encoded;
- for each mode, headless Chromium opening the cell's first page (`chromium --headless --dump-dom`): the page's
  own `performance.now()` when that page was drawn (report.js writes it into `body[data-rendered-ms]`: from
  navigation start to the samples in the DOM, data parsing and, served, the /samples fetch included), and the
  whole browser process's wall time (start-up included).

Prints one JSON object.

    python benchmarks/view_large.py [--samples 214354] [--max-samples 5000] [--quick] [--no-browser] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results.view.page import build_report  # after the path: runs as a script from anywhere
from results.view.serve import ServedReport, make_server, server_url

VQAV2_VAL_QUESTIONS = 214_354
DEMO = ROOT / "tasks" / "demo" / "vqa"
VAL_IMAGES = range(1000, 1040)  # the demo's val2014 image ids
QUESTIONS = (("How many shapes are there?", "number", ("1", "2", "3")),
             ("Is there a red shape?", "yes/no", ("yes", "no")),
             ("What color is the circle?", "other", ("red", "green", "blue")))
SCORES = (0.0, 30.0, 60.0, 90.0, 100.0)


def write_task_data(folder: Path, samples: int, rng: random.Random) -> list[dict]:
    """DATA/vqav2 in VQAv2's layout: the demo's train2014 as the support set, `samples` val2014 questions over the
    demo's val images; the questions, for the samples file."""
    vqav2 = folder / "vqav2"
    vqav2.mkdir(parents=True)
    for name in ("train2014", "val2014", "v2_OpenEnded_mscoco_train2014_questions.json",
                 "v2_mscoco_train2014_annotations.json"):
        (vqav2 / name).symlink_to(DEMO / name)
    questions, annotations = [], []
    for qid in range(1, samples + 1):
        text, answer_type, answers = QUESTIONS[qid % len(QUESTIONS)]
        image_id = VAL_IMAGES[qid % len(VAL_IMAGES)]
        questions.append({"image_id": image_id, "question": text, "question_id": qid})
        given = [rng.choice(answers) for _ in range(10)]
        annotations.append({"question_id": qid, "image_id": image_id, "answer_type": answer_type,
                            "question_type": text.lower().rsplit(" ", 2)[0], "multiple_choice_answer": given[0],
                            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1}
                                        for k, a in enumerate(given)]})
    (vqav2 / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps({"questions": questions}))
    (vqav2 / "v2_mscoco_val2014_annotations.json").write_text(json.dumps({"annotations": annotations}))
    return questions


def write_cell(folder: Path, questions: list[dict], rng: random.Random) -> Path:
    """A 2-shot `vqav2` cell: a scripted demo run's record re-labelled, and a samples line per question."""
    scratch = folder / "scripted-run"
    from evals.cli import app

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # stdout is the JSON
        app(["run", "--model", "scripted", "--task", "demo_vqa", "--shots", "2", "--limit", "2", "--output-dir",
             str(scratch)], standalone_mode=False)
    (template,) = scratch.glob("scripted/demo_vqa/*.json")
    record = json.loads(template.read_text())
    record["task"] = record["protocol"]["task"] = "vqav2"
    record["protocol"]["n_queries"] = len(questions)
    cell = folder / "run" / "scripted" / "vqav2" / template.name
    cell.parent.mkdir(parents=True)
    cell.write_text(json.dumps(record, indent=1))
    support = json.loads((DEMO / "v2_OpenEnded_mscoco_train2014_questions.json").read_text())["questions"]
    with cell.with_name(template.name.replace(".json", ".samples.jsonl")).open("w") as out:
        for question in questions:
            shots = rng.sample(support, 2)
            prompt = "".join(f"<image>Question: {s['question']} Short answer: {rng.choice('123')}\n" for s in shots)
            answer = rng.choice(QUESTIONS[question["question_id"] % len(QUESTIONS)][2])
            out.write(json.dumps({"id": str(question["question_id"]), "shot_ids": [str(s["question_id"]) for s in shots],
                                  "prompt": prompt + f"<image>Question: {question['question']} Short answer:",
                                  "output": answer, "prediction": answer, "score": rng.choice(SCORES)}) + "\n")
    return cell.parent.parent.parent


BROWSER = {"on": True}  # --no-browser turns it off (a test's quick run: the browser is tested on its own)


def chromium_first_page(url: str) -> dict:
    """Headless Chromium on the cell's first page: the page's own render time and the browser's wall time."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or not BROWSER["on"]:
        return {"skipped": "chromium not installed" if BROWSER["on"] else "--no-browser"}
    start = time.perf_counter()
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=60000",
                           "--dump-dom", url], capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - start
    rendered = re.search(r'data-rendered-ms="([0-9.]+)"', done.stdout)
    return {"first_page_ms": float(rendered.group(1)) if rendered else None, "browser_wall_s": round(wall, 2),
            "samples_shown": done.stdout.count("<article ")}


def file_mode(run: Path, data: Path, out: Path, max_samples: int) -> dict:
    start = time.perf_counter()
    size = build_report([run], out, data_dir=data, max_samples=max_samples)
    build = time.perf_counter() - start
    return {"max_samples": max_samples, "report_bytes": size, "build_s": round(build, 2),
            "chromium": chromium_first_page(out.resolve().as_uri() + "#view=cell&cell=0")}


def fetched(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def served_mode(run: Path, data: Path) -> dict:
    start = time.perf_counter()
    report = ServedReport([run], data_dir=data)
    server = make_server(report)
    started = time.perf_counter() - start
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = server_url(server)
        page = fetched(url)
        first = time.perf_counter()
        samples = fetched(url + "samples?cell=0&page=1")
        samples_s = time.perf_counter() - first
        keys = dict.fromkeys(s["image"] for sample in json.loads(samples)["samples"] for prompt in sample["prompts"]
                             for s in prompt if s.get("image"))
        thumbnails = sum(len(fetched(url + "thumb/" + urllib.request.quote(key, safe=""))) for key in keys)
        encoded = report.thumbnails.encoded
        browser = chromium_first_page(url + "#view=cell&cell=0")
    finally:
        server.shutdown()
        server.server_close()
    return {"start_s": round(started, 2), "page_bytes": len(page), "first_samples_bytes": len(samples),
            "first_samples_s": round(samples_s, 3), "thumbnails": len(keys), "thumbnail_bytes": thumbnails,
            "first_page_bytes": len(page) + len(samples) + thumbnails, "thumbnails_encoded": encoded,
            "chromium": browser}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=VQAV2_VAL_QUESTIONS)
    parser.add_argument("--max-samples", type=int, default=5000, help="file mode's cap (evals view's default)")
    parser.add_argument("--quick", action="store_true", help="1,200 samples, a file cap of 500: a test's few seconds")
    parser.add_argument("--no-browser", action="store_true", help="leave Chromium's timings out")
    parser.add_argument("--keep", type=Path, help="write the data, the cell and the report here (kept)")
    args = parser.parse_args()
    BROWSER["on"] = not args.no_browser
    samples, max_samples = (1200, 500) if args.quick else (args.samples, args.max_samples)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="view-large-"))
    try:
        rng = random.Random(0)
        made = time.perf_counter()
        questions = write_task_data(folder / "data", samples, rng)
        run = write_cell(folder, questions, rng)
        result = {"samples": samples, "made_s": round(time.perf_counter() - made, 2),
                  "file": file_mode(run, folder / "data", folder / "report.html", max_samples),
                  "served": served_mode(run, folder / "data")}
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
