"""In-process transport: hands each request straight to a WSGI application.

No sockets, no threads: fast tests of the whole client against the real server code, and
the embedded mode (Galaxy running Pulsar inside its own process).  The URL's host is
ignored; its path and query go to the app.
"""

from __future__ import annotations

import io
import sys
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import unquote, urlsplit

from pulsar.client.transport.base import HttpRequest, lower_headers

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _WsgiResponse:
    def __init__(self, status: int, headers: Mapping[str, str], body: Iterable[bytes]):
        self.status = status
        self.headers = headers
        self._body = body
        self._iterator: Iterator[bytes] = iter(body)
        self._buffer = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._iterator, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            result, self._buffer = self._buffer, b""
        else:
            result, self._buffer = self._buffer[:size], self._buffer[size:]
        return result

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


class WsgiTransport:
    def __init__(self, app: WsgiApp, remote_addr: str = "127.0.0.1"):
        self.app = app
        self.remote_addr = remote_addr

    def send(self, request: HttpRequest) -> _WsgiResponse:
        parts = urlsplit(request.url)
        body: Any = request.body
        if body is None:
            body_stream: Any = io.BytesIO(b"")
        elif isinstance(body, bytes):
            body_stream = io.BytesIO(body)
        else:
            body_stream = body
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(parts.path),
            "QUERY_STRING": parts.query,
            "SERVER_NAME": parts.hostname or "localhost",
            "SERVER_PORT": str(parts.port or 80),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": self.remote_addr,
            "CONTENT_LENGTH": str(request.content_length),
            "CONTENT_TYPE": request.headers.get("Content-Type", "application/octet-stream"),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": parts.scheme or "http",
            "wsgi.input": body_stream,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = value
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = lower_headers(headers)
            return lambda data: None

        result = self.app(environ, start_response)
        # Pull the first chunk so start_response has run even for generator apps.
        iterator = iter(result)
        first = next(iterator, b"")

        def chained() -> Iterator[bytes]:
            if first:
                yield first
            yield from iterator

        class _Body:
            def __iter__(self) -> Iterator[bytes]:
                return chained()

            def close(self) -> None:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

        return _WsgiResponse(captured["status"], captured["headers"], _Body())
