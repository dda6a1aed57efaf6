"""`evals view --serve`: the report page from a small local HTTP server, for runs too large to embed in one file. The
page holds the overview and each cell's header; samples come 50 to a page from /samples, and thumbnails from
/thumb/<key>, each encoded when first asked for and kept."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from evals.errors import EvalsError
from evals.records import ImageRef
from results.pairing import CellSamples, checked_samples
from results.view.cells import CellSource, TaskData, open_cell, outcome, query_types
from results.view.page import render_page, report_frame, sorted_records
from results.view.thumbnails import THUMBNAIL_SIDE, Thumbnails, image_key, thumbnail_jpeg
from tasks.base import parse_json

PAGE_SIZE = 50  # as report.js's PAGE_SIZE: the page asks for one page of samples at a time
FILE_CSP = "img-src data:;"
# Served, the page may load its thumbnails and sample pages from the server that sent it, and from nowhere else.
SERVED_CSP = "img-src data: 'self'; connect-src 'self';"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ServedThumbnails(Thumbnails):
    """Thumbnails by key, but encoded only when the browser asks for one: building a page of samples registers its
    images' keys and touches no image; `encoded` counts the encodings (once per key)."""

    def __init__(self, side: int = THUMBNAIL_SIDE) -> None:
        super().__init__(side)
        self.refs: dict[str, ImageRef] = {}
        self.jpegs: dict[str, bytes | None] = {}
        self.encoded = 0
        self.lock = threading.Lock()

    def key(self, task: str, ref: ImageRef) -> str:
        key = image_key(task, ref)
        with self.lock:
            self.refs.setdefault(key, ref)
        return key

    def jpeg(self, key: str) -> bytes | None:
        """The key's thumbnail; None for a key no built sample showed (never a path from the request) or an
        unreadable image."""
        with self.lock:
            if key in self.jpegs:
                return self.jpegs[key]
            ref = self.refs.get(key)
            if ref is None:
                return None
            self.jpegs[key] = thumbnail_jpeg(ref, self.side)
            self.encoded += 1
            return self.jpegs[key]


class IndexedLines(Sequence):
    """A samples file's lines by index, each parsed again when a page shows it: the server keeps each line's offset
    and score, not 200,000 parsed lines per cell. The file is read and checked whole once, at start-up."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offsets: list[int] = []
        self.scores: list[float] = []
        self.ids: list[str] = []
        self.checked = checked_samples(path, self.scan())  # the scores by id, for the comparisons

    @classmethod
    def read(cls, path: Path) -> tuple[IndexedLines, CellSamples]:
        """open_cell's reader: the indexed lines and the checked scores."""
        lines = cls(path)
        return lines, lines.checked

    def scan(self) -> Iterator[tuple[int, Any]]:
        """(line number, value) as read_jsonl gives them, noting each line's offset and score on the way."""
        offset = 0
        with self.path.open("rb") as lines:
            for number, raw in enumerate(lines, start=1):
                if raw.strip():
                    line = parse_json(raw.decode("utf-8-sig", errors="replace"), self.path, number)
                    self.offsets.append(offset)
                    self.scores.append(line.get("score") if isinstance(line, dict) else None)
                    self.ids.append(str(line.get("id")) if isinstance(line, dict) else "")
                    yield number, line
                offset += len(raw)

    def __len__(self) -> int:
        return len(self.offsets)

    def __iter__(self) -> Iterator[Any]:
        """Every line in order, in one pass over the file (the first search needs them all)."""
        with self.path.open("rb") as lines:
            for raw in lines:
                if raw.strip():
                    yield json.loads(raw.decode("utf-8-sig"))

    def __getitem__(self, index):  # one line (the Sequence protocol; a slice is not asked for)
        with self.path.open("rb") as lines:
            lines.seek(self.offsets[index])
            return json.loads(lines.readline().decode("utf-8-sig"))


class ServedReport:
    """Every cell's samples checked and indexed once, its task data read once; pages of sample views built on request
    (filtered, searched, sorted as the page does it from a file), the page itself built once."""

    def __init__(self, paths: Sequence[Path], data_dir: Path | None = None, allow_mixed_protocols: bool = False,
                 side: int = THUMBNAIL_SIDE) -> None:
        records = sorted_records(paths)
        data = TaskData({}, data_dir)
        self.cells: list[CellSource] = [open_cell(record, data, IndexedLines.read) for record in records]
        self.thumbnails = ServedThumbnails(side)
        self.searchable: dict[int, list[str]] = {}
        self.positions: dict[int, dict[str, int]] = {}
        self.types: dict[int, list[dict[str, str]]] = {}
        cells = [{**c.header, "notes": c.notes, "total": len(c.lines), "samples": []} for c in self.cells]
        page = render_page({**report_frame(records, self.cells, allow_mixed_protocols), "cells": cells, "images": {}, "served": True})
        if FILE_CSP not in page:
            raise RuntimeError("report.html's Content-Security-Policy no longer holds " + FILE_CSP)
        self.page = page.replace(FILE_CSP, SERVED_CSP, 1).encode("utf-8")

    def samples_page(self, query: dict[str, str], ids: Sequence[str] = ()) -> dict[str, Any] | None:
        """One page of a cell's samples for the page's state (cell, filter, type, sort, q, page), or with `ids` the
        samples of those query ids that the cell has (the comparison view's page of flips); None for no such cell."""
        try:
            index = int(query.get("cell", "0"))
            page = int(query.get("page", "1"))
        except ValueError:
            return None
        if not 0 <= index < len(self.cells):
            return None
        if ids:
            found = [self.position(index).get(i) for i in ids[:PAGE_SIZE]]
            return {"samples": [self.cells[index].view(i, self.thumbnails) for i in found if i is not None]}
        chosen = self.chosen(index, query.get("filter", "all"), query.get("q", ""), query.get("sort", "order"),
                             query.get("type", ""))
        pages = max(1, -(-len(chosen) // PAGE_SIZE))
        page = min(max(page, 1), pages)
        shown = chosen[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
        return {"page": page, "pages": pages, "matched": len(chosen), "total": len(self.cells[index].lines),
                "samples": [self.cells[index].view(i, self.thumbnails) for i in shown]}

    def chosen(self, index: int, filter_: str, text: str, sort: str, type_: str = "") -> list[int]:
        """The indices of the samples that pass the filter, the type ("key=value", as report.js typeMatches) and the
        search, in the order asked for."""
        cell = self.cells[index]
        if not cell.lines:  # a record without its samples file
            return []
        scores = cell.lines.scores
        chosen = [i for i, score in enumerate(scores) if filter_ == "all" or outcome(float(score)) == filter_]
        if type_ in cell.header["type_counts"]:  # a type the cell lacks (left from another cell) filters nothing
            key, value = type_.split("=", 1)
            types = self.line_types(index)
            chosen = [i for i in chosen if types[i].get(key) == value]
        if text:
            searchable, needle = self.search_texts(index), text.lower()
            chosen = [i for i in chosen if needle in searchable[i]]
        if sort in ("score-asc", "score-desc"):
            chosen.sort(key=lambda i: float(scores[i]), reverse=sort == "score-desc")
        return chosen

    def position(self, index: int) -> dict[str, int]:
        """The cell's line index by query id (made at the first comparison page that asks)."""
        if index not in self.positions:
            self.positions[index] = {sample_id: i for i, sample_id in enumerate(self.cells[index].ids())}
        return self.positions[index]

    def line_types(self, index: int) -> list[dict[str, str]]:
        """Each sample's types (cells.query_types), made at the first type filter the cell is asked for."""
        if index not in self.types:
            cell = self.cells[index]
            self.types[index] = [query_types(cell.queries.get(sample_id)) for sample_id in cell.ids()]
        return self.types[index]

    def search_texts(self, index: int) -> list[str]:
        """Each sample's id, prompt, output, prediction and references in lower case (made at the first search)."""
        if index not in self.searchable:
            cell = self.cells[index]
            self.searchable[index] = [search_text(line, cell) for line in cell.lines]
        return self.searchable[index]


def search_text(line: dict[str, Any], cell: CellSource) -> str:
    query = cell.queries.get(str(line["id"]))
    prompts = line["prompt"] if isinstance(line["prompt"], list) else [line["prompt"]]
    parts = [str(line["id"]), " ".join(str(p) for p in prompts), shown(line.get("output")), shown(line.get("prediction")),
             shown(list(query.references)) if query else ""]
    return "\n".join(parts).lower()


def shown(value: Any) -> str:
    """A value as the page's search sees it (report.js `shown`): text as is, anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


class ReportHandler(BaseHTTPRequestHandler):
    """GET / (the page), /samples?cell=&filter=&type=&sort=&q=&page= or /samples?cell=&id=..&id=.. (JSON),
    /thumb/<key> (JPEG); anything else 404."""

    report: ServedReport  # set on the subclass make_server builds
    hosts: frozenset[str] | None  # the Host headers a loopback server answers; None: any (bound beyond loopback)

    def do_GET(self) -> None:  # http.server calls it by this name
        try:
            self.answer(urlsplit(self.path))
        except (BrokenPipeError, ConnectionResetError):
            raise  # the browser left: nothing to answer (ReportServer.handle_error stays quiet)
        except (OSError, ValueError, LookupError, EvalsError) as error:  # a samples file changed since start-up, say
            print(f"evals view: {self.path}: {type(error).__name__}: {error}", file=sys.stderr)
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR)

    def answer(self, url) -> None:
        if self.hosts is not None and self.headers.get("Host", "") not in self.hosts:
            # A page elsewhere that rebinds its own name to 127.0.0.1 would send that name: it reads nothing here.
            self.send_error(HTTPStatus.FORBIDDEN)
        elif url.path in ("/", "/index.html"):
            self.send(HTTPStatus.OK, "text/html; charset=utf-8", self.report.page)
        elif url.path == "/samples":
            asked = parse_qs(url.query)
            page = self.report.samples_page({k: v[-1] for k, v in asked.items()}, asked.get("id", []))
            body = json.dumps(page, allow_nan=False, separators=(",", ":")).encode("utf-8") if page else None
            self.send_or_404(body, "application/json")
        elif url.path.startswith("/thumb/"):
            self.send_or_404(self.report.thumbnails.jpeg(unquote(url.path[len("/thumb/"):])), "image/jpeg")
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def send_or_404(self, body: bytes | None, content_type: str) -> None:
        if body is None:
            self.send_error(HTTPStatus.NOT_FOUND)
        else:
            self.send(HTTPStatus.OK, content_type, body)

    def send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store" if content_type == "application/json" else "max-age=3600")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per thumbnail would bury the URL the user needs."""


def make_server(report: ServedReport, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server for `report` on host:port (port 0: a free one; the bound port is server.server_address[1])."""
    import socket

    handler = type("BoundReportHandler", (ReportHandler,), {"report": report, "hosts": None})
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("ReportServer", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True,
                                                                 "handle_error": one_line_error})
    server = server_class((host, port), handler)
    if host in LOOPBACK:
        bound = server.server_address[1]
        handler.hosts = frozenset(f"{name}:{bound}" for name in ("127.0.0.1", "localhost", "[::1]"))
    return server


def one_line_error(server: ThreadingHTTPServer, request: Any, client_address: Any) -> None:
    """What do_GET could not answer is one line on stderr, never a traceback (a browser that left mid-answer: none);
    the server goes on."""
    error = sys.exc_info()[1]
    if not isinstance(error, (BrokenPipeError, ConnectionResetError)):
        print(f"evals view: a request failed: {type(error).__name__}: {error}", file=sys.stderr)


def server_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://[{host}]:{port}/" if ":" in str(host) else f"http://{host}:{port}/"


def serve_until_interrupted(server: ThreadingHTTPServer) -> None:
    """Serve until Ctrl-C or SIGTERM (`kill`, a service manager), then close the socket: a stop, not an error."""
    import signal

    def stop(signum, frame) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
