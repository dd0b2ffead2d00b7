"""The review page that `startctl dataset review DIR` serves: a local web page over one dataset
directory, where a person lists its trajectories, reads one span by span, edits, drops or
restores, and saves.

The page (recipe/review_page/: plain HTML, CSS and JavaScript, no build step and nothing
fetched from the internet) stages a reviewer's changes and posts them in one Save. The server
is a thin adapter over recipe/review.py: a save is `apply_changes` (all or nothing; a
`ReviewError` comes back as HTTP 400 with its message) then `Dataset.save`, which re-renders
the card with every edit as a diff. The JSON API:

    GET  /api/dataset               name, counts, sources, the card (README.md as saved)
    GET  /api/trajectories          one row per trajectory, without span texts
    GET  /api/trajectories/<id>     one trajectory with its spans (id URL-encoded)
    POST /api/save                  {"by": "...", "changes": [recipe.review.Change, ...]}
                                    -> {"edits", "trajectories", "counts", "card"}

Every error is JSON, {"error": "..."}. The server binds to 127.0.0.1 unless told otherwise:
it writes to the dataset and has no login. A save takes a copy of the dataset, applies the
changes and writes it, and only then swaps it in, all under one lock, so concurrent saves do
not interleave and a failed one leaves memory as the files are.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import TypeAdapter, ValidationError

from recipe.dataset import Dataset, counts, render_card, review_of
from recipe.review import EDITABLE, Change, ReviewError, ToolRunner, apply_changes
from training.data import Sample

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024  # a save carries span texts: a few MB is thousands of edits
TRAJECTORY_PREFIX = "/api/trajectories/"
LOOPBACK = ("127.0.0.1", "localhost")  # an IPv4 server, as ThreadingHTTPServer is by default
# The page's files, served by name and nothing else from the disk.
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/review.js": ("review.js", "text/javascript; charset=utf-8"),
    "/review.css": ("review.css", "text/css; charset=utf-8"),
}
# The page runs only its own script and style: model output shown in it can never run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_CHANGES = TypeAdapter(list[Change])


class HTTPError(Exception):
    """An answer other than 200, with the message the page shows."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def row(sample: Sample) -> dict[str, Any]:
    """What the list shows of a trajectory (no span texts: the list must stay small)."""
    review = review_of(sample)
    meta = sample.meta
    return {
        "id": sample.id,
        "problem_id": str(meta.get("problem_id", "")),
        "source": str(meta.get("source", "")),
        "task_type": str(meta.get("task_type", "")),
        "tool_calls": sum(1 for s in sample.spans if s.type == "tool_output"),
        "response_chars": int(meta.get("response_chars") or sum(len(s.text) for s in sample.spans
                                                                 if s.type != "prompt")),
        "generated_tokens": meta.get("generated_tokens"),
        "status": review.status,
        "reason": review.reason,
        "flags": review.flags,
        "edited": review.edited,
    }


def detail(sample: Sample) -> dict[str, Any]:
    """A trajectory as the page opens it: its row, where it came from, and every span."""
    return {
        **row(sample),
        "reference": sample.meta.get("reference"),
        "extracted": sample.meta.get("extracted"),
        # The messages before the assistant turn are kept for readers; the prompt span is what the model saw.
        "messages": [{"role": m.role, "content": m.content} for m in sample.messages[:-1]],
        "spans": [
            {"index": i, "type": s.type, "text": s.text, "editable": s.type in EDITABLE, "hint_id": s.hint_id}
            for i, s in enumerate(sample.spans)
        ],
    }


class ReviewState:
    """The dataset in memory and the lock every read and save takes."""

    def __init__(self, dataset_url: str, runner: ToolRunner | None) -> None:
        self.dataset = Dataset.load(dataset_url)
        self.runner = runner
        self.lock = threading.Lock()

    def summary(self) -> dict[str, Any]:
        with self.lock:
            dataset = self.dataset
            return {
                "url": dataset.url,
                "kind": dataset.build.get("kind", ""),
                "name": dataset.build.get("name") or f"START {dataset.build.get('kind', '')} dataset",
                "counts": counts(dataset),
                "sources": sorted({str(t.meta.get("source", "")) for t in dataset.trajectories}),
                "editable": sorted(EDITABLE),
                "card": render_card(dataset),
            }

    def rows(self) -> list[dict[str, Any]]:
        with self.lock:
            return [row(t) for t in self.dataset.trajectories]

    def trajectory(self, trajectory_id: str) -> dict[str, Any]:
        with self.lock:
            try:
                return detail(self.dataset.get(trajectory_id))
            except KeyError as exc:
                raise HTTPError(HTTPStatus.NOT_FOUND, exc.args[0]) from None

    def save(self, by: str, changes: list[Change]) -> dict[str, Any]:
        with self.lock:
            working = copy.deepcopy(self.dataset)
            try:
                edits = apply_changes(working, changes, by=by, runner=self.runner)
            except KeyError as exc:
                raise HTTPError(HTTPStatus.NOT_FOUND, exc.args[0]) from None
            except ReviewError as exc:
                raise HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from None
            working.save()
            self.dataset = working
            touched = dict.fromkeys([c.trajectory_id for c in changes] + [e.trajectory_id for e in edits])
            return {
                "edits": [e.model_dump() for e in edits],
                "trajectories": [detail(working.get(i)) for i in touched],
                "counts": counts(working),
                "card": render_card(working),
            }


def parse_save(body: bytes) -> tuple[str, list[Change]]:
    """The reviewer's name and changes from a save's body; a malformed one is a 400 that says why."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("changes"), list):
        raise HTTPError(HTTPStatus.BAD_REQUEST, 'expected {"by": "...", "changes": [...]}')
    by = payload.get("by") or ""
    if not isinstance(by, str):
        raise HTTPError(HTTPStatus.BAD_REQUEST, '"by" must be a string: the reviewer\'s name')
    try:
        changes = _CHANGES.validate_python(payload["changes"])
    except ValidationError as exc:
        problems = "; ".join(f"changes.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"malformed changes: {problems}") from None
    if not changes:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "nothing to save: no changes")
    return by.strip(), changes


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a reader left open by the browser does not hold up close()
    state: ReviewState
    hosts: frozenset[str]  # the Host headers answered; empty: any (bound beyond loopback on purpose)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "start-review"
    timeout = 60  # seconds a connection may stall (a body shorter than its Content-Length) before it is closed

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self._post)

    def _check_host(self) -> None:
        """A page on another site that renames itself to 127.0.0.1 (DNS rebinding) still sends its own Host."""
        host = (self.headers.get("Host") or "").lower()
        if self.server.hosts and host not in self.server.hosts:
            raise HTTPError(HTTPStatus.FORBIDDEN, f"this server answers only {sorted(self.server.hosts)}, not {host!r}")

    def _get(self) -> None:
        path = urlsplit(self.path).path
        state = self.server.state
        if path in STATIC:
            name, content_type = STATIC[path]
            self._send(HTTPStatus.OK, resources.files(__package__).joinpath("review_page", name).read_bytes(),
                       content_type)
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")  # none: spares the console a 404
        elif path == "/api/dataset":
            self._send_json(HTTPStatus.OK, state.summary())
        elif path == "/api/trajectories":
            self._send_json(HTTPStatus.OK, {"trajectories": state.rows()})
        elif path.startswith(TRAJECTORY_PREFIX):
            self._send_json(HTTPStatus.OK, state.trajectory(unquote(path.removeprefix(TRAJECTORY_PREFIX))))
        else:
            raise HTTPError(HTTPStatus.NOT_FOUND, f"nothing at {path}")

    def _post(self) -> None:
        path = urlsplit(self.path).path
        if path != "/api/save":
            raise HTTPError(HTTPStatus.NOT_FOUND, f"nothing to post to at {path}; saves go to /api/save")
        self._check_origin()
        self._send_json(HTTPStatus.OK, self.server.state.save(*parse_save(self._body())))

    def _check_origin(self) -> None:
        """Only the page itself may save: another site open in the same browser must not.
        A JSON content type makes a cross-site request ask first (CORS), which this server never allows."""
        if self.headers.get_content_type() != "application/json":
            raise HTTPError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "a save is posted as application/json")
        origin = self.headers.get("Origin")
        if origin and urlsplit(origin).netloc != self.headers.get("Host"):
            raise HTTPError(HTTPStatus.FORBIDDEN, f"a save from {origin} is not allowed; use the page itself")

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise HTTPError(HTTPStatus.LENGTH_REQUIRED, "a save needs a Content-Length")
        if int(length) > MAX_BODY_BYTES:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"the body is {int(length)} bytes; at most {MAX_BODY_BYTES} are accepted: save more often")
        return self.rfile.read(int(length))

    def _answer(self, handle: Callable[[], None]) -> None:
        try:
            self._check_host()
            handle()
        except HTTPError as exc:
            self._send_error(exc.status, exc.message)
        except Exception as exc:  # noqa: BLE001 - the page shows the error; the log keeps the trace
            log.exception("review page: %s %s failed", self.command, self.path)
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The standard library's own errors (a bad request line, an unknown method) as JSON too.
        self._send_error(HTTPStatus(code), message or HTTPStatus(code).phrase)

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        # The body of a refused request may be unread: the connection cannot be reused.
        self.close_connection = True
        self._send_json(status, {"error": message})

    def _send_json(self, status: HTTPStatus, payload: Any) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the standard library's name
        log.debug("review page: " + format, *args)


@dataclass
class ReviewServer:
    """A review page served from a background thread; `close` stops it."""

    url: str
    _server: _Server
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> ReviewServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bind(dataset_url: str, host: str, port: int, runner: ToolRunner | None) -> _Server:
    state = ReviewState(dataset_url, runner)  # a missing or broken dataset fails here, before binding
    server = _Server((host, port), _Handler)
    server.state = state
    port = server.server_address[1]
    server.hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"} if host in LOOPBACK else ())
    return server


def _url(server: _Server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def serve(dataset_url: str, host: str = "127.0.0.1", port: int = 0, runner: ToolRunner | None = None) -> ReviewServer:
    """Serve the review page of a dataset from a background thread (port 0: any free port)."""
    server = _bind(dataset_url, host, port, runner)
    # A short poll interval: close() waits for the loop to notice.
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="review-page", daemon=True)
    thread.start()
    return ReviewServer(url=_url(server), _server=server, _thread=thread)


def serve_forever(dataset_url: str, host: str = "127.0.0.1", port: int = 0, runner: ToolRunner | None = None,
                  announce: Callable[[str], None] = lambda line: print(line, flush=True)) -> None:
    """Serve the review page until interrupted (Ctrl-C); `announce` is told the page's address."""
    server = _bind(dataset_url, host, port, runner)
    announce(f"reviewing {dataset_url} at {_url(server)} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
