"""Writing one WSGI response: start_response/write, framing, and sendfile for
`wsgi.file_wrapper` bodies.

Framing: the app's Content-Length if it gave one; the exact length when the body is a
single block; otherwise chunked for HTTP/1.1 clients and close-delimited for HTTP/1.0.
A body shorter or longer than its declared length marks the response `incomplete` so the
connection is closed rather than reused out of sync.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from email.utils import formatdate
from typing import Any, Callable, Iterable

from pulsar import __version__

log = logging.getLogger("pulsar.web")

SEND_BLOCK = 1024 * 1024
SERVER_HEADER = f"pulsar/{__version__}"


class FileWrapper:
    """`wsgi.file_wrapper`.  The server sends it with `sendfile` from the file's current
    position (`tell()`) for Content-Length bytes, so an app serving a range seeks first;
    otherwise (TLS, no fileno) it is read in `block_size` pieces."""

    def __init__(self, filelike: Any, block_size: int = SEND_BLOCK):
        self.filelike = filelike
        self.block_size = max(block_size, 64 * 1024)

    def __iter__(self) -> Any:
        while block := self.filelike.read(self.block_size):
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class _DateServerLines:
    """The `Date:` and `Server:` header lines, formatted once per second, not per response."""

    def __init__(self) -> None:
        self._cached: tuple[int, str] = (-1, "")

    def __call__(self) -> str:
        now = time.time()
        second, text = self._cached
        if int(now) != second:
            text = f"Date: {formatdate(now, usegmt=True)}\r\nServer: {SERVER_HEADER}\r\n"
            self._cached = (int(now), text)  # one tuple assignment: safe across threads
        return text


date_server_lines = _DateServerLines()


def response_head(version: str, status: str, headers: list[tuple[str, str]], connection: str | None) -> bytes:
    return _head_text(version, status, [f"{name}: {value}\r\n" for name, value in headers], connection)


def _head_text(version: str, status: str, header_lines: list[str], connection: str | None) -> bytes:
    if connection:
        header_lines.append(f"Connection: {connection}\r\n")
    return f"{version} {status}\r\n{date_server_lines()}{''.join(header_lines)}\r\n".encode("latin-1")


class ResponseWriter:
    """start_response/write and the framing decision for one response."""

    def __init__(self, sock: socket.socket, is_tls: bool, method: str, version: str, keep_alive: bool,
                 stopping: Callable[[], bool], io_timeout: float | None = None,
                 body_settled: Callable[[], bool] | None = None):
        self.sock = sock
        #: Asked as the head goes out: False if the request body is still on its way, so
        #: the connection will close after this answer and the head must say so.
        self.body_settled = body_settled
        self.io_timeout = io_timeout
        self.is_tls = is_tls
        self.stopping = stopping
        self.method = method
        self.version = version
        self.keep_alive = keep_alive
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.chunked = False
        self.no_body = False
        self.remaining: int | None = None  # declared Content-Length still to send
        self.incomplete = False

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            if self.headers_sent:
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        self.status = status
        self.headers = list(headers)
        return self.write

    def _sendresponse_head(self, first: bytes = b"", total: int | None = None) -> None:
        """Send the status line and headers (with `first` body bytes in the same packet).
        `total` is the whole body length when the server knows it (single-block bodies)."""
        if self.status is None:
            raise AssertionError("WSGI application did not call start_response")
        code = int(self.status[:3])
        if self.stopping() or (self.keep_alive and self.body_settled is not None and not self.body_settled()):
            self.keep_alive = False
        self.no_body = self.method == "HEAD" or code in (204, 304) or 100 <= code < 200
        lines: list[str] = []
        declared: str | None = None
        for name, value in self.headers:
            lower = name.lower()
            if lower == "content-length":
                if declared is None:
                    declared = value
            elif lower == "connection" or lower == "transfer-encoding":
                continue
            lines.append(f"{name}: {value}\r\n")
        if declared is not None and declared.strip().isdigit():
            self.remaining = int(declared)
        elif self.no_body:
            self.remaining = 0
        elif total is not None:
            lines.append(f"Content-Length: {total}\r\n")
            self.remaining = total
        elif self.version == "HTTP/1.1":
            lines.append("Transfer-Encoding: chunked\r\n")
            self.chunked = True
        else:
            self.keep_alive = False
        if self.keep_alive:
            connection = "keep-alive" if self.version == "HTTP/1.0" else None
        else:
            connection = "close"
        head = _head_text("HTTP/1.1", self.status, lines, connection)
        self.headers_sent = True
        framed = self._frame(first)
        self.sock.sendall(head + framed if framed else head)

    def _frame(self, data: bytes) -> bytes:
        if not data or self.no_body:
            return b""
        if self.chunked:
            return b"%X\r\n" % len(data) + data + b"\r\n"
        if self.remaining is not None:
            if len(data) > self.remaining:
                log.error("WSGI application sent more than its Content-Length; truncating")
                data = data[: self.remaining]
                self.incomplete = True
            self.remaining -= len(data)
        return data

    def write(self, data: bytes) -> None:
        if not self.headers_sent:
            self._sendresponse_head(data)
        elif data:
            framed = self._frame(data)
            if framed:
                self.sock.sendall(framed)

    def send_result(self, result: Iterable[bytes]) -> None:
        if isinstance(result, FileWrapper) and not self.is_tls:
            if self._send_file(result):
                return
        if isinstance(result, (list, tuple)) and len(result) == 1 and not self.headers_sent:
            self._sendresponse_head(bytes(result[0]), total=len(result[0]))
        else:
            for block in result:
                if block:
                    self.write(block)
        self.finish()

    def _send_file(self, wrapper: FileWrapper) -> bool:
        """sendfile from the file's position for the declared length; False if not possible."""
        filelike = wrapper.filelike
        try:
            offset = filelike.tell()
            filelike.fileno()
        except (AttributeError, OSError, ValueError):
            return False
        if not self.headers_sent:
            self._sendresponse_head()
        if self.remaining is None or self.no_body or self.chunked:
            for block in wrapper:
                self.write(block)
            self.finish()
            return True
        if self.remaining > 0:
            # On a blocking socket (kernel timeouts, see httpio.set_blocking_timeout)
            # socket.sendfile would wait for a stalled client forever: give it a timeout.
            timed = self.io_timeout is not None and self.sock.gettimeout() is None
            if timed:
                self.sock.settimeout(self.io_timeout)
            try:
                sent = self.sock.sendfile(filelike, offset, self.remaining)
            finally:
                if timed:
                    self.sock.settimeout(None)
            self.remaining -= sent
        self.finish()
        return True

    def finish(self) -> None:
        if not self.headers_sent:
            self._sendresponse_head(total=0)
        if self.chunked and not self.no_body:
            self.sock.sendall(b"0\r\n\r\n")
        if self.remaining and not self.no_body:
            log.error("WSGI application sent %d bytes less than its Content-Length", self.remaining)
            self.incomplete = True

    def send_fallback_error(self) -> None:
        self.status = "500 Internal Server Error"
        body = json.dumps({"error": "server_error", "detail": "internal server error; see the server log"}).encode()
        self.headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        self.keep_alive = False
        self._sendresponse_head(body)
