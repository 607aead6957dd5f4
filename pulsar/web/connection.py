"""One client connection of `pulsar.web.server`: parse requests, run the WSGI app, frame
the response (Content-Length, chunked or close-delimited), keep the connection alive when
that is safe.

Protocol-level rejections (400, 414, 417, 431, 501, 505) get the same JSON error body as
the app's errors and close the connection after a bounded "lingering close", so a client
still sending its (oversized) request reads the answer instead of a reset.

Reading is split between two threads so that a slow client never holds a worker before
its request is complete: the server's acceptor calls `advance` (TLS handshake, then
non-blocking receives) until the whole request head is buffered (or proven over a limit),
and only then a worker calls `serve`, which parses that head without receiving.  Parsing is
strict RFC 9112: `method SP request-target SP HTTP-version`, the method a token, the target
visible characters (raw UTF-8 accepted), the version `HTTP/DIGIT.DIGIT` (else 400; a
well-formed version other than 1.0/1.1 is 505), header names tokens, no NUL or bare CR.
"""

from __future__ import annotations

import json
import logging
import re
import select
import socket
import ssl
import sys
from typing import Any, Callable, Iterable
from urllib.parse import unquote_to_bytes

from pulsar.util.logsafe import printable, target
from pulsar.web.httpio import BodyInput, ChunkedInput, ContentLengthInput, Pace, SocketReader
from pulsar.web.responses import status_line
from pulsar.web.writer import FileWrapper, ResponseWriter, response_head

log = logging.getLogger("pulsar.web")

MAX_HEADER_LINE = 64 * 1024
MAX_HEADERS = 100
#: A header block buffered whole within this many bytes is parsed in one step.
HEADER_BLOCK_LIMIT = 64 * 1024
#: Longest header section (all header lines and the blank line after the request line): the
#: acceptor buffers at most this much (plus the request line) per connection.
HEADER_SECTION_LIMIT = 256 * 1024
#: A lingering close (see `Connection.drain`) swallows input for at most this long and this much.
LINGER_SECONDS = 5.0
LINGER_BYTES = 64 * 1024 * 1024

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: What `Connection.advance` found: wait for more input, a head is ready, or the peer is gone.
WAIT, READY, CLOSED = 0, 1, 2
#: What a worker does with a connection after `serve`: close it, hand it back to the acceptor
#: (idle, or the next head begun), hand it back for a lingering close, or hand it back until
#: the client reads (a pipelined request is waiting but the answers already sent are not read).
DROP, KEEP, LINGER, BLOCKED = 10, 11, 12, 13

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")
_BAD_TARGET_CHAR = re.compile(r"[\x00-\x20\x7f]")
_DIGITS = re.compile(r"[0-9]{1,18}")


class Reject(Exception):
    """A request the server answers itself and then closes the connection.  `detail` goes
    into a log line and the JSON answer as it is: client text in it must already have
    passed `pulsar.util.logsafe`."""

    def __init__(self, status: int, error: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


class Connection:
    def __init__(self, sock: socket.socket, address: Any, app: WsgiApp, *, server_name: str,
                 server_port: int, max_request_line: int, is_tls: bool, io_timeout: float | None = None,
                 scratch: memoryview | None = None, min_body_rate: int = 0, body_grace: float = 0.0):
        self.sock = sock
        self.address = address
        self.app = app
        self.reader = SocketReader(sock, scratch=scratch)
        self.server_name = server_name
        self.server_port = server_port
        self.max_request_line = max_request_line
        self.is_tls = is_tls
        self.io_timeout = io_timeout
        self.min_body_rate = min_body_rate  # bytes/s once body_grace has passed; 0: no minimum
        self.body_grace = body_grace
        self.handshaken = not is_tls
        #: When the acceptor gives up on this connection (idle or head deadline).
        self.deadline = 0.0
        #: Held by the acceptor until writable (see BLOCKED), not until readable.
        self.blocked = False
        self._pipelined = False
        self._drained = 0  # bytes swallowed by a lingering close
        self._line_limit = max_request_line + 2
        self._poller: select.poll | None = None
        self._out_poller: select.poll | None = None
        self._base_environ = self._make_base_environ()

    # --- lifecycle ---------------------------------------------------------------------

    def advance(self, scratch: memoryview | None = None) -> int:
        """Make progress without ever waiting (acceptor side): finish the TLS handshake, then
        receive until a request head is complete.  READY: a worker can `serve` now; WAIT:
        call again when the socket is readable; CLOSED: the peer left or failed (close it).

        A TLS socket must be non-blocking here (see `for_acceptor`); a plain one stays
        blocking and is read with MSG_DONTWAIT.  `scratch`: the calling thread's receive
        buffer (default: the reader's, i.e. the serving worker's)."""
        try:
            if not self.handshaken:
                assert isinstance(self.sock, ssl.SSLSocket)
                self.sock.do_handshake()
                self.handshaken = True
            while not self.head_ready():
                if self.reader.fill_nowait(scratch) == 0:
                    return CLOSED
            return READY
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return WAIT
        except (OSError, ValueError) as exc:
            log.debug("%s: connection failed before a request: %s", self._peer(), printable(exc))
            return CLOSED

    def head_ready(self) -> bool:
        return self.reader.head_complete(self._line_limit, HEADER_SECTION_LIMIT)

    def head_started(self) -> bool:
        """True once part of a request (or of a TLS handshake) has arrived."""
        return bool(self.reader.buffered()) or (self.is_tls and not self.handshaken)

    def for_acceptor(self) -> None:
        """TLS sockets are non-blocking while the acceptor owns them (SSL takes no MSG_DONTWAIT)."""
        if self.is_tls:
            self.sock.setblocking(False)

    def for_worker(self) -> None:
        if self.is_tls:
            self.sock.settimeout(self.io_timeout)

    def serve(self, stopping: Callable[[], bool], may_linger: Callable[[], bool] | None = None,
              linger: float = 0.0, scratch: memoryview | None = None) -> int:
        """Serve requests whose heads are buffered; KEEP to hand the connection back to the
        acceptor (idle, or part of the next head received), LINGER to hand it back for a
        lingering close, DROP to close it.

        Called only when `advance` returned READY.  After a response, if `may_linger()`
        agrees (the server has spare workers), wait up to `linger` seconds for the client's
        next request on this thread instead of handing the connection back: a client that
        sends requests back to back then costs no park/unpark round trip through the
        acceptor per request.  A head that is not complete by then goes back to the
        acceptor, never read by blocking on this thread.  `scratch`: this worker's receive
        buffer, lent to the connection while it is served."""
        if scratch is not None:
            self.reader.scratch = scratch
        while True:
            verdict = self.handle_one(stopping)
            if verdict != KEEP:
                return verdict
            if stopping():
                return DROP
            state = self._next_head(may_linger, linger)
            if state != READY:
                return KEEP if state == WAIT else DROP
            if stopping():
                return DROP
            if self._pipelined and not self._writable():
                return BLOCKED

    def _next_head(self, may_linger: Callable[[], bool] | None, linger: float) -> int:
        if self.is_tls:
            self.sock.setblocking(False)
        self._pipelined = True  # sent before the client could have read the last answer
        if self.head_ready():
            state = READY
        elif self.is_tls or self.reader.buffered():
            state = self.advance()  # TLS may hold decrypted bytes the selector cannot see
        else:
            state = WAIT
            self._pipelined = False
        if state == WAIT and may_linger is not None and linger > 0 and may_linger() and self._wait_readable(linger):
            state = self.advance()
        if state == READY:
            self.for_worker()
        return state

    def _writable(self) -> bool:
        """True if the socket can take more output now.  Checked only before answering a
        pipelined request (one poll): a client that sends requests and never reads the
        answers would otherwise hold this worker in a blocked send for request_timeout."""
        if self._out_poller is None:
            self._out_poller = select.poll()
            self._out_poller.register(self.sock.fileno(), select.POLLOUT)
        try:
            return bool(self._out_poller.poll(0))
        except (OSError, ValueError):
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

    def start_lingering(self) -> bool:
        """Half-close after a final answer (acceptor side); False if the peer is already gone.
        The client still sending its request then reads the answer instead of a reset, while
        `drain` swallows what it sends: in the acceptor, so a client that trickles costs no
        worker."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        self.for_acceptor()
        self._drained = 0
        return True

    def drain(self, scratch: memoryview | None = None) -> bool:
        """Discard input without waiting; True once the lingering close is over (EOF, an
        error, or LINGER_BYTES swallowed)."""
        try:
            while self._drained < LINGER_BYTES:
                self.reader.clear()
                received = self.reader.fill_nowait(scratch)
                if not received:
                    return True
                self._drained += received
            return True
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except (OSError, ValueError):
            return True

    # --- one request --------------------------------------------------------------------

    def handle_one(self, stopping: Callable[[], bool]) -> int:
        """Read and answer one request: KEEP if the connection may carry another, LINGER if
        request bytes may still be coming after a final answer, DROP to close at once.

        An unread request body is skipped only when it is already buffered whole: waiting
        for the rest on this thread would let a client that trickles it (no token needed:
        the app answers 401 without reading) hold the worker."""
        try:
            environ, body, keep_alive, expect_continue = self._read_request()
        except Reject as reject:
            # Client text in a detail is escaped where the detail is made (see `Reject`).
            log.warning("%s: rejected request: %d %s: %s", self._peer(), reject.status, reject.error, reject.detail)
            self._send_reject(reject)
            return LINGER
        except (OSError, ValueError, _Closed):
            return DROP
        response = ResponseWriter(self.sock, self.is_tls, environ["REQUEST_METHOD"], environ["SERVER_PROTOCOL"],
                                  keep_alive, stopping, self.io_timeout, body.settled)
        result: Iterable[bytes] | None = None
        try:
            result = self.app(environ, response.start_response)
            response.send_result(result)
        except OSError as exc:
            log.debug("connection to %s lost while responding: %s", self._peer(), printable(exc))
            return DROP
        except Exception:
            log.exception("WSGI application failed on %s %s", environ["REQUEST_METHOD"], target(environ["PATH_INFO"]))
            if response.headers_sent:
                return DROP
            response.send_fallback_error()
            response.keep_alive = False
        finally:
            self.reader.pace = None
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing the response body failed")
        if body.broken:
            return DROP
        if not body.finished:
            if expect_continue and not body.started:
                return DROP  # the client waits for a 100 Continue that will not come
            if not body.skip_buffered():
                return LINGER
        return KEEP if response.keep_alive and not response.incomplete else DROP

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
        raw = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        parts = raw.decode("latin-1").split(" ")
        if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1] or _BAD_TARGET_CHAR.search(parts[1]):
            raise Reject(400, "bad_request", f"malformed request line: {target(raw, 100)}")
        method, request_target, version = parts
        if version != "HTTP/1.1" and version != "HTTP/1.0":
            if not _VERSION.fullmatch(version):
                raise Reject(400, "bad_request", f"malformed HTTP version: {printable(version, 20)}")
            raise Reject(505, "http_version_not_supported", f"unsupported protocol {version}")
        headers = self._read_headers()
        environ = self._environ(method, request_target, version, headers)
        keep_alive = _wants_keep_alive(version, headers.get("connection", ""))

        transfer_encoding = headers.get("transfer-encoding")
        content_length = headers.get("content-length")
        expect = headers.get("expect", "").strip().lower()
        expect_continue = expect == "100-continue" and version == "HTTP/1.1"
        if expect and not expect_continue:
            raise Reject(417, "expectation_failed", f"unsupported expectation: {printable(expect, 40)}")
        send_continue = self._send_continue if expect_continue else None
        body: BodyInput
        if transfer_encoding is not None:
            if content_length is not None:
                raise Reject(400, "bad_request", "both Transfer-Encoding and Content-Length given")
            codings = [coding.strip().lower() for coding in transfer_encoding.split(",")]
            if codings[-1] != "chunked":  # RFC 9112 6.3: the body length is unknowable
                raise Reject(400, "bad_request", f"Transfer-Encoding {printable(transfer_encoding, 40)} "
                             "does not end with chunked")
            if len(codings) > 1:
                raise Reject(501, "not_implemented",
                             f"unsupported Transfer-Encoding {printable(transfer_encoding, 40)}")
            body = ChunkedInput(self.reader, send_continue, self._pace())
            environ["wsgi.input_terminated"] = True
        else:
            length = 0
            if content_length is not None:
                text = content_length.strip()
                if not _DIGITS.fullmatch(text):
                    raise Reject(400, "bad_request", f"invalid Content-Length: {printable(text, 40)}")
                length = int(text)
                environ["CONTENT_LENGTH"] = text
            body = ContentLengthInput(self.reader, length, send_continue, self._pace() if length else None)
        environ["wsgi.input"] = body
        return environ, body, keep_alive, expect_continue

    def _pace(self) -> Pace | None:
        return Pace(self.min_body_rate, self.body_grace) if self.min_body_rate else None

    def _read_headers(self) -> dict[str, str]:
        """The header fields after the request line.  Everything read here is already
        buffered (see `head_ready`): the section limit is checked before each line so that
        an over-long section is rejected without receiving more."""
        headers: dict[str, str] = {}
        block = self.reader.take_header_block(HEADER_BLOCK_LIMIT)
        if block is not None:  # the usual case: the whole block is buffered, CRLF line ends
            if b"\0" in block or block.count(b"\r") != block.count(b"\r\n"):
                raise Reject(400, "bad_request", "NUL or bare CR in the header section")
            lines = block.decode("latin-1").split("\r\n")[:-2]
            for text in lines[: MAX_HEADERS + 1]:
                if len(text) > MAX_HEADER_LINE:
                    raise Reject(431, "header_too_large", f"a header line is longer than {MAX_HEADER_LINE} bytes")
                name, colon, value = text.partition(":")
                key = name.lower()
                if not colon or key in headers or not _TOKEN.fullmatch(name):
                    _add_header(headers, text)  # rejects malformed lines, joins repeated fields
                else:
                    headers[key] = value.strip(" \t")
            if len(lines) > MAX_HEADERS:
                raise Reject(431, "header_too_large", f"more than {MAX_HEADERS} header lines")
            return headers
        budget = HEADER_SECTION_LIMIT
        for _ in range(MAX_HEADERS + 1):
            limit = min(MAX_HEADER_LINE + 2, budget + 1)
            line = self.reader.readline(limit)
            budget -= len(line)
            if line in (b"\r\n", b"\n"):
                return headers
            if not line.endswith(b"\n"):
                if len(line) >= limit:
                    raise Reject(431, "header_too_large", f"a header line is longer than {MAX_HEADER_LINE} bytes, "
                                 f"or the header section longer than {HEADER_SECTION_LIMIT}")
                raise _Closed()
            field = line[:-2] if line.endswith(b"\r\n") else line[:-1]
            if b"\0" in field or b"\r" in field:
                raise Reject(400, "bad_request", "NUL or bare CR in a header line")
            _add_header(headers, field.decode("latin-1"))
        raise Reject(431, "header_too_large", f"more than {MAX_HEADERS} header lines")

    def _environ(self, method: str, request_target: str, version: str, headers: dict[str, str]) -> dict[str, Any]:
        if request_target.startswith(("http://", "https://")):
            request_target = "/" + request_target.split("://", 1)[1].partition("/")[2]
        path, _, query = request_target.partition("?")
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
    """Add one header line (without its line end); repeated fields are joined with ", ".
    The name must be a token (no whitespace before the colon, no obs-fold)."""
    name, colon, value = text.partition(":")
    if not colon or not _TOKEN.fullmatch(name):
        raise Reject(400, "bad_request", "malformed header line")
    key = name.lower()
    value = value.strip(" \t")
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


