"""`evals view --serve`: the server binds loopback by default and stops on Ctrl-C; its sample pages are the file mode's
views, paged, filtered and sorted the same way; thumbnails are encoded only for keys a built page showed and the
browser asked for; anything else is a 404; headless Chromium renders a served page with its images in order."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest

from results.view.cells import outcome
from results.view.page import render_page, report_data
from results.view.serve import PAGE_SIZE, ServedReport, make_server, server_url
from tests.conftest import default_sigint
from tests.test_view import CHROMIUM, articles, demo_images, evals, hostile, image_ids, needs_chromium  # noqa: F401 (a fixture)

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The scripted model on demo VQA at 2 shots, all 119 queries: a few pages of samples (a second or two)."""
    out = tmp_path_factory.mktemp("serve") / "run"
    evals(["run", "--model", "scripted", "--task", "demo_vqa", "--shots", "2", "--limit", "120", "--output-dir", str(out)])
    return out


@pytest.fixture()
def served(run):
    """A fresh report (no thumbnail encoded yet) on a free loopback port, served from a thread."""
    report = ServedReport([run])
    server = make_server(report)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield report, server_url(server)
    server.shutdown()
    server.server_close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def samples(url: str, **query: str) -> dict:
    status, body = get(url + "samples?" + "&".join(f"{k}={quote(v)}" for k, v in query.items()))
    assert status == 200
    return json.loads(body)


def keys_of(page: dict) -> list[str]:
    return [s["image"] for sample in page["samples"] for prompt in sample["prompts"] for s in prompt if s.get("image")]


def test_a_served_page_holds_the_file_modes_sample_views(served, run):
    _, url = served
    expected = report_data([run])["cells"][0]["samples"]
    first, second = samples(url, cell="0"), samples(url, cell="0", page="2")
    assert first["samples"] == expected[:PAGE_SIZE] and second["samples"] == expected[PAGE_SIZE:2 * PAGE_SIZE]
    assert (first["page"], first["pages"], first["total"]) == (1, 3, len(expected)) and len(expected) > 100


def test_filter_search_and_sort_match_the_pages_own_rules(served, run):
    _, url = served
    every = report_data([run])["cells"][0]["samples"]
    wrong = [s["id"] for s in every if s["outcome"] == "wrong"]
    assert 0 < len(wrong) < len(every)
    got = samples(url, cell="0", filter="wrong")
    assert [s["id"] for s in got["samples"]] == wrong[:PAGE_SIZE] and got["matched"] == len(wrong)
    ordered = sorted(every, key=lambda s: s["score"], reverse=True)  # stable, as Array.prototype.sort is
    assert [s["id"] for s in samples(url, cell="0", sort="score-desc")["samples"]] == [s["id"] for s in ordered[:PAGE_SIZE]]
    needle = every[7]["prompts"][0][1]["text"].split("Short answer:")[0][-12:].upper()  # a demonstration's question
    hits = [s["id"] for s in every if any(needle.lower() in p.get("text", "").lower() for p in s["prompts"][0])]
    assert [s["id"] for s in samples(url, cell="0", q=needle, page="1")["samples"]] == hits[:PAGE_SIZE] and hits
    assert all(outcome(s["score"]) == s["outcome"] for s in got["samples"])


def test_indexed_lines_read_what_the_file_mode_reads(tmp_path):
    from evals.errors import DataError
    from results.view.cells import samples_lines
    from results.view.serve import IndexedLines

    path = tmp_path / "cell.samples.jsonl"
    lines = [{"id": "1", "score": 100.0, "output": "caf\u00e9\n"}, {"id": "2", "score": 0, "prompt": "a\u2028b"}]
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(lines[0]).encode() + b"\n\n  \n" + json.dumps(lines[1]).encode() + b"\r\n")
    indexed, checked = IndexedLines.read(path)
    read_whole, checked_whole = samples_lines(path)
    assert [indexed[1], indexed[0]] == lines[::-1] and list(indexed) == lines == read_whole
    assert indexed.scores == [100.0, 0] and indexed.ids == ["1", "2"]
    assert checked.scores == checked_whole.scores == {"1": 100.0, "2": 0.0}
    path.write_text(json.dumps(lines[0]) + "\n" + json.dumps(lines[0]) + "\n")
    with pytest.raises(DataError, match="appears twice"):
        IndexedLines(path)


def test_thumbnails_are_encoded_only_for_keys_asked_for(served, monkeypatch):
    report, url = served
    loads = []
    from results.view import thumbnails

    real = thumbnails.load_image
    monkeypatch.setattr(thumbnails, "load_image", lambda ref: loads.append(ref.id) or real(ref))
    keys = list(dict.fromkeys(keys_of(samples(url, cell="0"))))
    assert report.thumbnails.encoded == 0 and loads == []  # building a page touches no image
    status, body = get(url + "thumb/" + quote(keys[0], safe=""))
    assert status == 200 and body.startswith(b"\xff\xd8")  # a JPEG
    assert get(url + "thumb/" + quote(keys[0], safe=""))[1] == body and report.thumbnails.encoded == 1 and len(loads) == 1
    for key in keys[1:4]:
        get(url + "thumb/" + quote(key, safe=""))
    assert report.thumbnails.encoded == 4 and set(report.thumbnails.jpegs) == set(keys[:4])


def test_unknown_or_outside_keys_are_404(served, run):
    report, url = served
    samples(url, cell="0")  # a page built: its keys are known
    image = next(iter(report.thumbnails.refs.values()))
    asked = ["thumb/nothing", "thumb/..%2F..%2F..%2Fetc%2Fpasswd", "thumb/../../etc/passwd", "thumb/%2Fetc%2Fpasswd",
             "thumb/" + quote(str(image.path), safe=""), "thumb/demo_vqa%2Ftrain2014%2F0", "etc/passwd",
             "samples?cell=9", "samples?cell=x", "report.js", quote(str(run))]
    assert [get(url + path)[0] for path in asked] == [404] * len(asked)
    assert report.thumbnails.encoded == 0


def test_a_loopback_server_answers_only_its_own_host_names(served):
    _, url = served
    port = url.rsplit(":", 1)[1].strip("/")
    assert get(url.replace("127.0.0.1", "localhost"))[0] == 200
    for host in (f"rebound.example:{port}", "127.0.0.1", ""):
        request = urllib.request.Request(url, headers={"Host": host})
        try:
            urllib.request.urlopen(request, timeout=30)
            status = 200
        except urllib.error.HTTPError as error:
            status = error.code
        assert status == 403, host


def test_the_served_csp_allows_its_own_origin_and_the_files_does_not(served, run):
    _, url = served
    status, page = get(url)
    assert status == 200 and b"img-src data: 'self'; connect-src 'self';" in page and b'"served":true' in page
    assert "'self'" not in render_page(report_data([run], max_samples=5))


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_cli_serves_on_loopback_and_stops_cleanly(run, stop):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "evals", "view", str(run), "--serve"], stderr=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT, preexec_fn=default_sigint)
    try:
        line = server.stderr.readline()
        url = re.search(r"http://\S+/", line).group(0)
        assert url.startswith("http://127.0.0.1:") and "warning" not in line
        assert get(url)[0] == 200 and samples(url, cell="0")["total"] > 100
    finally:
        server.send_signal(stop)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0 and "Traceback" not in err and "stopped" in err, err


def test_cli_warns_before_serving_beyond_loopback(run, monkeypatch, capsys):
    from results.view import serve
    from tests.conftest import call_evals

    asked = []
    bind_loopback = serve.make_server
    monkeypatch.setattr(serve, "make_server", lambda report, host, port: asked.append(host) or bind_loopback(report))
    monkeypatch.setattr(serve, "serve_until_interrupted", lambda server: server.server_close())
    code, _, err = call_evals(monkeypatch, capsys, ["view", str(run), "--serve", "--host", "0.0.0.0"])
    assert code == 0 and asked == ["0.0.0.0"] and "warning: serving on 0.0.0.0" in err and "stopped" in err, err


def test_cli_refuses_a_port_out_of_range(run, monkeypatch, capsys):
    from tests.conftest import assert_refused, call_evals

    assert_refused(*call_evals(monkeypatch, capsys, ["view", str(run), "--serve", "--port", "70000"]), 2, "--port")


def dump_dom(url: str) -> str:
    return subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--virtual-time-budget=5000",
                           "--dump-dom", url], capture_output=True, text=True, timeout=60, check=True).stdout


def test_a_failed_request_is_one_line_and_the_server_goes_on(served, run, capfd):
    report, url = served
    samples(url, cell="0")
    path = report.cells[0].lines.path
    text = path.read_text()
    path.write_text("")  # changed under the server: the next page's lines are not there
    try:
        assert get(url + "samples?cell=0")[0] == 500  # report.js shows "samples not loaded: HTTP 500"
    finally:
        path.write_text(text)
    assert get(url + "samples?cell=0")[0] == 200
    err = capfd.readouterr().err
    assert "evals view: /samples?cell=0: JSONDecodeError" in err and "Traceback" not in err, err


@needs_chromium
def test_browser_renders_markup_in_served_data_as_text(hostile):  # noqa: F811 (the fixture)
    server = make_server(ServedReport([hostile]))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dom = dump_dom(server_url(server) + "#view=cell&cell=0")
    finally:
        server.shutdown()
        server.server_close()
    assert "pwned=" not in dom.split("<body", 1)[1].split(">", 1)[0] and "<img src=" not in dom
    assert "&lt;script&gt;document.body.dataset.pwned" in articles(dom)[0]


@needs_chromium
def test_browser_renders_a_served_page_with_its_thumbnails_in_order(served):
    report, url = served
    dom = dump_dom(url + "#view=cell&cell=0&page=2")
    shown = articles(dom)
    assert len(shown) == PAGE_SIZE and "page 2 of 3" in dom
    expected = samples(url, cell="0", page="2")["samples"]
    for sample, html in zip(expected[:5], shown):
        assert f'data-id="{sample["id"]}"' in html
        images = re.findall(r'<img class="thumb" src="([^"]+)" alt="[^"]*" data-image-id="([^"]+)"', html)
        assert [i for _, i in images] == image_ids(sample) == \
            demo_images("demo_vqa", "support_split", sample["shot_ids"]) + demo_images("demo_vqa", "query_split", [sample["id"]])
        assert [src for src, _ in images] == ["thumb/" + quote(s["image"], safe="") for p in sample["prompts"] for s in p
                                              if "image" in s]
    assert set(report.thumbnails.jpegs) == set(keys_of({"samples": expected}))  # the browser asked for exactly these
    assert all(report.thumbnails.jpegs.values())


def test_the_large_run_benchmark_prints_its_figures():
    done = subprocess.run([sys.executable, "benchmarks/view_large.py", "--quick", "--no-browser"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    figures = json.loads(done.stdout)
    file, served = figures["file"], figures["served"]
    assert figures["samples"] == 1200 and file["max_samples"] == 500 and file["build_s"] > 0
    assert 0 < served["page_bytes"] < file["report_bytes"] and served["start_s"] > 0
    assert served["first_page_bytes"] == served["page_bytes"] + served["first_samples_bytes"] + served["thumbnail_bytes"]
    assert served["thumbnails_encoded"] == served["thumbnails"] > 0  # only the first page's images were encoded
    assert file["chromium"] == served["chromium"] == {"skipped": "--no-browser"}


def test_type_filter_and_counts_match_the_file_mode(served, run):
    report, url = served
    every = report_data([run])["cells"][0]["samples"]
    counts = Counter(f"{k}={v}" for s in every for k, v in s["types"].items())
    assert report.cells[0].header["type_counts"] == dict(sorted(counts.items())) and len(counts) > 3
    for kind in ("number", "yes/no"):
        expected = [s["id"] for s in every if s["types"]["answer_type"] == kind]
        got = samples(url, cell="0", type=f"answer_type={kind}")
        assert [s["id"] for s in got["samples"]] == expected[:PAGE_SIZE] and got["matched"] == len(expected) > 0
    assert samples(url, cell="0", type="answer_type=no such type")["matched"] == len(every)  # a stale type filters nothing


def test_samples_by_id_are_the_file_modes_views(served, run):
    _, url = served
    every = {s["id"]: s for s in report_data([run])["cells"][0]["samples"]}
    asked = [list(every)[n] for n in (40, 3, 77)]
    status, body = get(url + "samples?cell=0&" + "&".join(f"id={quote(i)}" for i in [*asked, "no-such-id"]))
    assert status == 200 and json.loads(body)["samples"] == [every[i] for i in asked]


@needs_chromium
def test_browser_compare_view_served_shows_the_file_modes_flips(tmp_path):
    """Served, the comparison view fetches each flipped query's samples from both cells: the same rows, the same
    images in order as the file's page."""
    from evals.models import ScriptedModel
    from evals.runner import RunSettings
    from evals.runner import run as run_cells
    from tests.test_paired import shot_dependent_answers

    out = tmp_path / "run"
    run_cells(ScriptedModel(answers=shot_dependent_answers), ["demo_vqa"], RunSettings(shots=(0, 2), limit=30, output_dir=out))
    data = report_data([out])
    (stored,) = data["comparisons"]
    assert stored["wrong_to_right"]
    server = make_server(ServedReport([out]))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dom = dump_dom(server_url(server) + f"#view=compare&a={stored['a']}&b={stored['b']}&flip=wrong-to-right")
    finally:
        server.shutdown()
        server.server_close()
    rows = re.findall(r'<div class="flip" data-id="([^"]+)">', dom)
    assert rows == stored["wrong_to_right"][:PAGE_SIZE]
    by_id = [{s["id"]: s for s in data["cells"][i]["samples"]} for i in (stored["a"], stored["b"])]
    for flipped, html in zip(rows, dom.split('<div class="flip" data-id=')[1:]):
        shown = re.findall(r'data-image-id="([^"]+)"', html)
        assert shown == image_ids(by_id[0][flipped]) + image_ids(by_id[1][flipped])


@needs_chromium
def test_browser_served_type_filter_shows_that_type(served, run):
    _, url = served
    expected = [s["id"] for s in report_data([run])["cells"][0]["samples"] if s["types"]["answer_type"] == "number"]
    dom = dump_dom(url + "#cell=0&type=answer_type%3Dnumber")
    assert [re.search(r'data-id="([^"]+)"', a).group(1) for a in articles(dom)] == expected[:PAGE_SIZE]
    assert f'<option value="answer_type=number">answer_type: number ({len(expected)})</option>' in dom
