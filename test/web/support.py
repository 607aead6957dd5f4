"""Helpers for the web tests: an in-process WSGI caller and a real server in a thread."""

from __future__ import annotations

import io
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from pulsar.web.server import Server, make_server


class WsgiResult:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.headers = {name.lower(): value for name, value in headers}
        self.body = body

    def json(self) -> Any:
        import json

        assert self.headers["content-type"] == "application/json"
        return json.loads(self.body)


def call(app: Any, method: str, path: str, query: str = "", body: bytes = b"",
         headers: dict[str, str] | None = None, content_length: bool = True,
         **extra: Any) -> WsgiResult:
    """Run one request through a WSGI app without a server."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    if content_length and (body or method in ("POST", "PUT")):
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    environ.update(extra)
    captured: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = int(status.split(" ", 1)[0])
        captured["headers"] = response_headers
        return lambda data: None

    result = app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return WsgiResult(captured["status"], captured["headers"], data)


@contextmanager
def running_server(app: Any, **options: Any) -> Iterator[Server]:
    server = make_server(app, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, name="test-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=30)
        assert not thread.is_alive()
