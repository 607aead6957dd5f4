"""One client connection of `pulsar.web.server`: parse requests, run the WSGI app, frame
the response (Content-Length, chunked or close-delimited), keep the connection alive when
that is safe.

Protocol-level rejections (400, 414, 417, 431, 501, 505) get the same JSON error body as
the app's errors and close the connection after a bounded "lingering close", so a client
still sending its (oversized) request reads the answer instead of a reset.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import ssl
import sys
import time
from typing import Any, Callable, Iterable
from urllib.parse import unquote_to_bytes

from pulsar.web.httpio import BodyInput, ChunkedInput, ContentLengthInput, SocketReader
from pulsar.web.responses import status_line
from pulsar.web.writer import FileWrapper, ResponseWriter, response_head

log = logging.getLogger("pulsar.web")

MAX_HEADER_LINE = 64 * 1024
MAX_HEADERS = 100
#: A header block buffered whole within this many bytes is parsed in one step.
HEADER_BLOCK_LIMIT = 64 * 1024
#: Unread request body the server will still drain to keep a connection alive.
DRAIN_LIMIT = 4 * 1024 * 1024
LINGER_SECONDS = 5.0
LINGER_BYTES = 64 * 1024 * 1024

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Reject(Exception):
    """A request the server answers itself and then closes the connection."""

    def __init__(self, status: int, error: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


class Connection:
    def __init__(self, sock: socket.socket, address: Any, app: WsgiApp, *, server_name: str,
                 server_port: int, max_request_line: int, is_tls: bool, io_timeout: float | None = None):
        self.sock = sock
        self.address = address
        self.app = app
        self.reader = SocketReader(sock)
        self.server_name = server_name
        self.server_port = server_port
        self.max_request_line = max_request_line
        self.is_tls = is_tls
        self.io_timeout = io_timeout
        self.handshaken = not is_tls
        self.parked_at = 0.0
        self._poller: select.poll | None = None
        self._base_environ = self._make_base_environ()

    # --- lifecycle ---------------------------------------------------------------------

    def has_pending_input(self) -> bool:
        if self.reader.buffered():
            return True
        return isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0

    def serve(self, stopping: Callable[[], bool], may_linger: Callable[[], bool] | None = None,
              linger: float = 0.0) -> bool:
        """Serve requests while input is waiting; True to park the connection idle.

        After a response, if `may_linger()` agrees (the server has spare workers), wait up
        to `linger` seconds for the client's next request on this thread instead of handing
        the connection back: a client that sends requests back to back then costs no
        park/unpark round trip through the acceptor per request."""
        if not self.handshaken:
            try:
                assert isinstance(self.sock, ssl.SSLSocket)
                self.sock.do_handshake()
            except (OSError, ValueError) as exc:
                log.debug("TLS handshake with %s failed: %s", self.address, exc)
                return False
            self.handshaken = True
        while True:
            if not self.handle_one(stopping):
                return False
            if stopping():
                return False
            if self.has_pending_input():
                continue
            if may_linger is None or linger <= 0 or not may_linger() or not self._wait_readable(linger):
                return True
            if stopping():
                return False

    def _wait_readable(self, timeout: float) -> bool:
        """True if the socket becomes readable (or hangs up) within `timeout` seconds."""
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(self.sock.fileno(), select.POLLIN)
        try:
            return bool(self._poller.poll(timeout * 1000.0))
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Unblock a worker stuck on this connection (forced shutdown)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def linger_close(self) -> None:
        """Half-close, swallow what the client is still sending (bounded), then close."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            self.sock.settimeout(1.0)
            while drained < LINGER_BYTES and time.monotonic() < deadline:
                data = self.reader.read_some(1024 * 1024)
                if not data:
                    break
                drained += len(data)
        except (OSError, ValueError):
            pass
        self.close()

    # --- one request --------------------------------------------------------------------

    def handle_one(self, stopping: Callable[[], bool]) -> bool:
        """Read and answer one request; True if the connection may carry another."""
        try:
            environ, body, keep_alive, expect_continue = self._read_request()
        except Reject as reject:
            log.warning("%s: rejected request: %d %s: %s", self._peer(), reject.status, reject.error, reject.detail)
            self._send_reject(reject)
            self.linger_close()
            return False
        except (OSError, ValueError, _Closed):
            return False
        response = ResponseWriter(self.sock, self.is_tls, environ["REQUEST_METHOD"], environ["SERVER_PROTOCOL"],
                                  keep_alive, stopping, self.io_timeout)
        result: Iterable[bytes] | None = None
        try:
            result = self.app(environ, response.start_response)
            response.send_result(result)
        except OSError as exc:
            log.debug("connection to %s lost while responding: %s", self._peer(), exc)
            return False
        except Exception:
            log.exception("WSGI application failed on %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"][:300])
            if response.headers_sent:
                return False
            response.send_fallback_error()
            response.keep_alive = False
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing the response body failed")
        if not response.keep_alive or response.incomplete:
            if not body.finished and not body.broken:
                self.linger_close()
            return False
        if not body.finished:
            if expect_continue and not body.started:
                return False
            if not body.discard(DRAIN_LIMIT):
                return False
        return True

    def _peer(self) -> str:
        return f"{self.address[0]}" if isinstance(self.address, tuple) else str(self.address)

    def _read_request(self) -> tuple[dict[str, Any], BodyInput, bool, bool]:
        limit = self.max_request_line + 2
        line = self.reader.readline(limit)
        for _ in range(4):  # tolerate stray CRLFs between requests (RFC 9112 2.2)
            if line not in (b"\r\n", b"\n"):
                break
            line = self.reader.readline(limit)
        if not line:
            raise _Closed()
        if not line.endswith(b"\n"):
            if len(line) >= limit:
                raise Reject(414, "request_line_too_long", f"request line longer than {self.max_request_line} bytes")
            raise _Closed()
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not parts[0].isalpha():
            raise Reject(400, "bad_request", f"malformed request line {line[:100]!r}")
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise Reject(505, "http_version_not_supported", f"unsupported protocol {version[:20]!r}")
        headers = self._read_headers()
        environ = self._environ(method, target, version, headers)
        keep_alive = _wants_keep_alive(version, headers.get("connection", ""))

        transfer_encoding = headers.get("transfer-encoding")
        content_length = headers.get("content-length")
        expect = headers.get("expect", "").strip().lower()
        expect_continue = expect == "100-continue" and version == "HTTP/1.1"
        if expect and not expect_continue:
            raise Reject(417, "expectation_failed", f"unsupported expectation {expect[:40]!r}")
        send_continue = self._send_continue if expect_continue else None
        body: BodyInput
        if transfer_encoding is not None:
            if content_length is not None:
                raise Reject(400, "bad_request", "both Transfer-Encoding and Content-Length given")
            if transfer_encoding.strip().lower() != "chunked":
                raise Reject(501, "not_implemented", f"unsupported Transfer-Encoding {transfer_encoding[:40]!r}")
            body = ChunkedInput(self.reader, send_continue)
            environ["wsgi.input_terminated"] = True
        else:
            length = 0
            if content_length is not None:
                text = content_length.strip()
                if not text.isdigit():
                    raise Reject(400, "bad_request", f"invalid Content-Length {text[:40]!r}")
                length = int(text)
                environ["CONTENT_LENGTH"] = text
            body = ContentLengthInput(self.reader, length, send_continue)
        environ["wsgi.input"] = body
        return environ, body, keep_alive, expect_continue

    def _read_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        block = self.reader.take_header_block(HEADER_BLOCK_LIMIT)
        if block is not None:  # the usual case: the whole block is buffered, CRLF line ends
            lines = block.decode("latin-1").split("\r\n")[:-2]
            for text in lines[: MAX_HEADERS + 1]:
                if len(text) > MAX_HEADER_LINE:
                    raise Reject(431, "header_too_large", f"a header line is longer than {MAX_HEADER_LINE} bytes")
                name, colon, value = text.partition(":")
                key = name.lower()
                if not colon or not name or " " in name or name != name.strip() or key in headers:
                    _add_header(headers, text)  # rejects malformed lines, joins repeated fields
                else:
                    headers[key] = value.strip()
            if len(lines) > MAX_HEADERS:
                raise Reject(431, "header_too_large", f"more than {MAX_HEADERS} header lines")
            return headers
        for _ in range(MAX_HEADERS + 1):
            line = self.reader.readline(MAX_HEADER_LINE + 2)
            if line in (b"\r\n", b"\n"):
                return headers
            if not line.endswith(b"\n"):
                if len(line) >= MAX_HEADER_LINE + 2:
                    raise Reject(431, "header_too_large", f"a header line is longer than {MAX_HEADER_LINE} bytes")
                raise _Closed()
            _add_header(headers, line.decode("latin-1").rstrip("\r\n"))
        raise Reject(431, "header_too_large", f"more than {MAX_HEADERS} header lines")

    def _environ(self, method: str, target: str, version: str, headers: dict[str, str]) -> dict[str, Any]:
        if target.startswith(("http://", "https://")):
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        path, _, query = target.partition("?")
        if not path.startswith("/"):
            raise Reject(400, "bad_request", "request target must be an absolute path")
        if "%" in path:
            path = unquote_to_bytes(path.encode("latin-1")).decode("latin-1")
        environ = self._base_environ.copy()
        environ["REQUEST_METHOD"] = method
        environ["PATH_INFO"] = path
        environ["QUERY_STRING"] = query
        environ["SERVER_PROTOCOL"] = version
        for key, value in headers.items():
            if "_" in key:
                continue  # ambiguous with "-" once mapped to CGI names; never trusted
            if key == "content-type":
                environ["CONTENT_TYPE"] = value
            elif key != "content-length" and key != "transfer-encoding":
                environ["HTTP_" + key.upper().replace("-", "_")] = value
        return environ

    def _make_base_environ(self) -> dict[str, Any]:
        """The part of every request's environ that is the same for the whole connection."""
        return {
            "SCRIPT_NAME": "",
            "SERVER_NAME": self.server_name,
            "SERVER_PORT": str(self.server_port),
            "REMOTE_ADDR": self._peer(),
            "REMOTE_PORT": str(self.address[1]) if isinstance(self.address, tuple) else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.is_tls else "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": False,
            "wsgi.file_wrapper": FileWrapper,
        }

    def _send_continue(self) -> None:
        self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _send_reject(self, reject: Reject) -> None:
        body = json.dumps({"error": reject.error, "detail": reject.detail}).encode("utf-8")
        head = response_head("HTTP/1.1", status_line(reject.status),
                     [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], "close")
        try:
            self.sock.sendall(head + body)
        except OSError:
            pass


def _add_header(headers: dict[str, str], text: str) -> None:
    """Add one header line (without its line end); repeated fields are joined with ", "."""
    name, colon, value = text.partition(":")
    if not colon or not name or name != name.strip() or " " in name:
        raise Reject(400, "bad_request", "malformed header line")
    key = name.lower()
    value = value.strip()
    headers[key] = f"{headers[key]}, {value}" if key in headers else value


class _Closed(Exception):
    """The client went away (or sent half a request) before a request could be read."""


def _wants_keep_alive(version: str, connection: str) -> bool:
    if not connection:
        return version == "HTTP/1.1"
    tokens = {token.strip().lower() for token in connection.split(",")}
    if "close" in tokens:
        return False
    return version == "HTTP/1.1" or "keep-alive" in tokens


