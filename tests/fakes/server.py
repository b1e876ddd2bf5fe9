"""A tiny real HTTP server on 127.0.0.1 for tests that cross a network boundary.

Routes are plain functions ``(request) -> Response``; faults are injected per route by the
test (status codes, stalls, dropped connections) so client code is exercised against real
sockets, real HTTP parsing and real timeouts, never against a mocked client.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass(kw_only=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    match: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass(kw_only=True)
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as is
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(kw_only=True)
class Fault:
    """What to do instead of (or after) the normal handler for matching requests."""

    status: int | None = None  # answer with this status instead of calling the handler
    stall_s: float = 0.0  # sleep before answering
    drop: bool = False  # close the socket without answering
    after_handler: bool = False  # run the handler first (the request takes effect), then fault
    times: int = 1  # how many matching requests it applies to


Handler = Callable[[Request], Response]


class FakeServer:
    """``with FakeServer() as srv: srv.route("GET", "/v2/x", fn); srv.url`` ..."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._faults: list[tuple[str, re.Pattern[str], Fault]] = []
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration -------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """``pattern`` is a regex over the path, e.g. ``r"/v2/orders/(?P<id>[^/]+)"``."""
        self._routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

    def fault(self, method: str, pattern: str, fault: Fault) -> None:
        with self._lock:
            self._faults.append((method.upper(), re.compile(f"^{pattern}$"), fault))

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, Nagle + delayed ACK
            # add ~40 ms to every response.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _serve(self) -> None:
                server._dispatch(self)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling ----------------------------------------------------------------
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for i, (m, pat, f) in enumerate(self._faults):
                if m == method and pat.match(path):
                    f.times -= 1
                    if f.times <= 0:
                        del self._faults[i]
                    return f
        return None

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        req = Request(
            method=h.command,
            path=parsed.path,
            query=parse_qs(parsed.query),
            headers={k.lower(): v for k, v in h.headers.items()},
            body=h.rfile.read(length) if length else b"",
        )
        with self._lock:
            self.log.append(req)
        fault = self._take_fault(req.method, req.path)
        if fault and fault.stall_s:
            time.sleep(fault.stall_s)
        resp: Response | None = None
        if fault is None or fault.after_handler or (fault.status is None and not fault.drop):
            resp = self._handle(req)
        if fault is not None and fault.drop:
            h.close_connection = True
            h.connection.close()
            return
        if fault is not None and fault.status is not None:
            resp = Response(status=fault.status, body={"message": f"injected {fault.status}"})
        assert resp is not None
        try:
            self._send(h, resp)
        except OSError:
            # The client gave up (a stall fault outlived its timeout): nobody is listening.
            h.close_connection = True

    def _handle(self, req: Request) -> Response:
        for method, pat, handler in self._routes:
            m = pat.match(req.path)
            if method == req.method and m:
                req.match = m.groupdict()
                return handler(req)
        return Response(status=404, body={"message": f"no route {req.method} {req.path}"})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, resp: Response) -> None:
        if isinstance(resp.body, bytes):
            payload = resp.body
            ctype = "application/octet-stream"
        else:
            payload = json.dumps(resp.body).encode()
            ctype = "application/json"
        h.send_response(resp.status)
        h.send_header("Content-Type", resp.headers.get("Content-Type", ctype))
        h.send_header("Content-Length", str(len(payload)))
        for k, v in resp.headers.items():
            if k != "Content-Type":
                h.send_header(k, v)
        h.end_headers()
        h.wfile.write(payload)
