"""Byte-level HTTP/1.1 reading for `pulsar.web.server`: a buffered socket reader and the
two request-body streams (Content-Length and chunked) exposed as `wsgi.input`.

A body stream whose connection ends or goes silent (the receive timeout) before the body
is complete raises `pulsar.errors.IncompleteBody` (400) and sets `broken`: an application
reading to EOF (a chunked upload) must fail, not commit what it got as if it were whole.
A malformed chunked body raises `pulsar.errors.InvalidArgument` (400).  Chunk sizes follow
RFC 9112 7.1 strictly: 1 to 16 hex digits, optional whitespace and `;extensions`, nothing
else (no signs, `0x`, underscores, or characters `int()` would also accept).

The request head (request line and header lines) is read by the server's acceptor with
`fill_nowait` until `head_complete` says a worker can parse it from the buffer alone, so a
client that sends its head slowly never holds a worker thread.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import time
from typing import Callable, Iterator, NoReturn

from pulsar.errors import IncompleteBody, InvalidArgument

RECV_SIZE = 256 * 1024
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = 64
#: chunk = chunk-size [ chunk-ext ] CRLF (RFC 9112 7.1); a bare LF is tolerated as elsewhere.
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[\t\x20-\x7e\x80-\xff]*)?\r?\n")


def set_blocking_timeout(sock: socket.socket, seconds: float) -> None:
    """Make `sock` blocking with kernel send/receive timeouts (SO_SNDTIMEO/SO_RCVTIMEO).

    Same limit as `settimeout(seconds)` for each receive, but Python no longer polls the
    socket before every recv/send (two system calls fewer per request).  A timeout then
    surfaces as `BlockingIOError`, an `OSError` like `TimeoutError`.  Plain sockets only:
    TLS keeps `settimeout`.  `socket.sendfile` needs a real `settimeout` (it would wait
    without a limit on a blocking socket), see `pulsar.web.writer`."""
    sock.settimeout(None)
    whole = int(seconds)
    timeval = struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


class TooSlow(TimeoutError):
    """A request body fell below its minimum rate (see `Pace`)."""


class Pace:
    """A minimum average rate for a request body, so that a client trickling an upload
    cannot keep a worker for much longer than `grace` seconds: checked after every receive
    (a clock read, no system call), it raises `TooSlow` once more than `grace`
    seconds have passed since `begin` and fewer than `min_rate` bytes per second arrived on
    average.  A body that went fast at first has credit for a later stall."""

    __slots__ = ("min_rate", "grace", "started", "received")

    def __init__(self, min_rate: int, grace: float):
        self.min_rate = min_rate
        self.grace = grace
        self.started = time.monotonic()
        self.received = 0

    def begin(self) -> None:
        self.started = time.monotonic()
        self.received = 0

    def check(self, count: int) -> None:
        self.received += count
        elapsed = time.monotonic() - self.started
        if elapsed > self.grace and self.received < self.min_rate * elapsed:
            raise TooSlow(f"request body slower than {self.min_rate} bytes/s "
                               f"({self.received} bytes in {elapsed:.0f} s)")


#: The most of an unread body the server receives (without waiting) to keep a connection
#: alive after answering without reading it; a larger rest means `Connection: close`.
SETTLE_LIMIT = 64 * 1024


class SocketReader:
    """Buffered reads from a socket: lines with a hard length limit, and large bodies read
    straight into their destination buffer."""

    def __init__(self, sock: socket.socket, recv_size: int = RECV_SIZE, scratch: memoryview | None = None):
        self._sock = sock
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._buf = bytearray()
        self._pos = 0
        #: Where receives land before they are appended to the buffer.  recv() would
        #: allocate (and, at this size, mmap and unmap) a fresh buffer per call; one reused
        #: buffer costs a small copy instead.  The server lends each thread's own buffer to
        #: the connection it is serving (see `Connection.serve`), so an idle or slow
        #: connection holds only what it has buffered, not a quarter MiB of scratch.
        self.scratch = scratch if scratch is not None else memoryview(bytearray(recv_size))
        #: The minimum rate of the body being read, if any (see `BodyInput`).
        self.pace: Pace | None = None
        # How far `head_complete` has searched, so each call scans only the new bytes:
        # (_pos it is valid for, start of the request line, line searched up to, section
        # searched up to), offsets relative to _pos.  A head arriving a byte at a time
        # would otherwise cost the acceptor a scan of the whole buffer per byte.
        self._scan: tuple[int, int, int, int] | None = None

    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def _fill(self, flags: int = 0, scratch: memoryview | None = None) -> int:
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
            self._scan = None
        into = self.scratch if scratch is None else scratch
        received = self._sock.recv_into(into, 0, flags) if flags else self._sock.recv_into(into)
        self._buf += into[:received]
        if self.pace is not None:
            self.pace.check(received)
        return received

    def fill_nowait(self, scratch: memoryview | None = None) -> int:
        """One receive that never waits, through `scratch` (default: `self.scratch`): the
        byte count, 0 at EOF.  Raises `BlockingIOError` when nothing is waiting on a plain
        socket (MSG_DONTWAIT: no mode switch, the socket stays blocking for the worker) and
        `ssl.SSLWantReadError`/`SSLWantWriteError` on a TLS socket, which the caller must
        have made non-blocking (SSL sockets take no flags)."""
        return self._fill(0 if self._tls else socket.MSG_DONTWAIT, scratch)

    def receive_waiting(self, wanted: int) -> None:
        """Buffer up to `wanted` bytes of what the kernel already holds for a plain socket,
        never waiting (a TLS socket on a worker is blocking: nothing is received); errors
        are left for the next read to meet."""
        if self._tls:
            return
        try:
            while self.buffered() < wanted and self.fill_nowait():
                pass
        except OSError:
            pass

    def head_complete(self, line_limit: int, section_limit: int) -> bool:
        """True when a request head can be parsed from the buffer without receiving more:
        the request line (within `line_limit` bytes, newline included) and the header
        section up to its blank line (within `section_limit` bytes) are buffered, or
        enough is buffered to prove one of them over its limit (the parser then rejects
        without reading on).  Up to four blank lines before a request are skipped, as the
        parser does."""
        buf, pos, end = self._buf, self._pos, len(self._buf)
        start = pos
        for _ in range(4):
            if buf.startswith(b"\r\n", start):
                start += 2
            elif buf.startswith(b"\n", start):
                start += 1
            else:
                break
        scan = self._scan
        if scan is not None and scan[0] == pos and scan[1] == start - pos:
            line_from, section_from = pos + scan[2], (pos + scan[3] if scan[3] >= 0 else -1)
        else:
            line_from, section_from = start, -1
        newline = buf.find(b"\n", line_from, start + line_limit)
        if newline < 0:
            self._scan = (pos, start - pos, end - pos, -1)
            return end - start >= line_limit
        # The blank line ending the section shows as LF LF or LF CR LF, its first LF ending
        # the line before (the request line itself when there are no headers).  A pattern
        # may straddle the bytes already searched: start two bytes back.
        stop = newline + 1 + section_limit
        search = newline if section_from < 0 else max(newline, section_from - 2)
        if buf.find(b"\n\r\n", search, stop) >= 0 or buf.find(b"\n\n", search, stop) >= 0:
            return True
        self._scan = (pos, start - pos, newline - pos, end - pos)
        return end - (newline + 1) > section_limit

    def take_header_block(self, limit: int) -> bytes | None:
        """The already-buffered header block (the bytes up to and including the blank line,
        or b"" when the blank line comes first) if it lies within `limit` bytes and all its
        line ends are CRLF; None otherwise, with nothing consumed or received.  Lets the
        caller parse a request's headers in one step in the common case and fall back to
        `readline` for anything unusual (bare LF line ends, partial or huge blocks)."""
        buf, pos = self._buf, self._pos
        if buf.startswith(b"\r\n", pos):
            self._pos = pos + 2
            return b""
        index = buf.find(b"\r\n\r\n", pos, pos + limit)
        if index < 0:
            return None
        end = index + 4
        if buf.count(b"\n", pos, end) != buf.count(b"\r\n", pos, end):
            return None  # a bare LF ends a line earlier than the CRLF CRLF found
        return self._take(end - pos)

    def readline(self, limit: int) -> bytes:
        """Up to and including the next b"\\n", or `limit` bytes without one, or what was
        left at EOF.  Callers detect an over-long line by the missing newline."""
        scanned = 0  # bytes after self._pos already known to hold no newline
        while True:
            stop = min(len(self._buf), self._pos + limit)
            index = self._buf.find(b"\n", self._pos + scanned, stop)
            if index >= 0:
                return self._take(index + 1 - self._pos)
            if len(self._buf) - self._pos >= limit:
                return self._take(limit)
            scanned = len(self._buf) - self._pos
            if not self._fill():
                return self._take(self.buffered())

    def _take(self, count: int) -> bytes:
        start = self._pos
        self._pos = start + count
        if count < 16384:
            return bytes(self._buf[start : start + count])
        with memoryview(self._buf) as view:  # one copy instead of two for big blocks
            return view[start : start + count].tobytes()

    def read(self, size: int) -> bytes:
        """Exactly `size` bytes unless EOF comes first (then fewer)."""
        have = self.buffered()
        if size <= have:
            return self._take(size)
        out = bytearray(size)
        view = memoryview(out)
        view[:have] = self._buf[self._pos :]
        self._pos = len(self._buf)
        filled = have
        while filled < size:
            received = self._sock.recv_into(view[filled:], size - filled)
            if received == 0:
                break
            filled += received
            if self.pace is not None:
                self.pace.check(received)
        view.release()
        if filled < size:
            del out[filled:]
        return bytes(out)

    def readinto(self, buffer: memoryview) -> int:
        """Fill `buffer` (fewer bytes only at EOF); large bodies go straight from the socket
        into the caller's buffer, with no intermediate copy."""
        size = len(buffer)
        have = min(self.buffered(), size)
        if have:
            buffer[:have] = self._buf[self._pos : self._pos + have]
            self._pos += have
        filled = have
        while filled < size:
            received = self._sock.recv_into(buffer[filled:], size - filled)
            if received == 0:
                break
            filled += received
            if self.pace is not None:
                self.pace.check(received)
        return filled

    def skip(self, count: int) -> None:
        """Drop `count` buffered bytes (at most `buffered()`)."""
        self._pos += min(count, self.buffered())

    def clear(self) -> None:
        """Drop everything buffered (a lingering close discarding input)."""
        self._buf.clear()
        self._pos = 0
        self._scan = None


class BodyInput:
    """Base of the `wsgi.input` streams: read/readline/readlines/iteration (PEP 3333)."""

    def __init__(self, reader: SocketReader, before_first_read: Callable[[], None] | None = None,
                 pace: Pace | None = None):
        self._reader = reader
        self._before_first_read = before_first_read
        self._pace = pace
        self.broken = False
        self.finished = False

    @property
    def started(self) -> bool:
        """True once the application has read (so a 100 Continue, if due, has been sent)."""
        return self._before_first_read is None

    def _start(self) -> None:
        if self._before_first_read is not None:
            callback, self._before_first_read = self._before_first_read, None
            callback()
        if self._pace is not None:  # the clock starts when the application starts reading
            self._pace.begin()
            self._reader.pace, self._pace = self._pace, None

    def read(self, size: int = -1) -> bytes:
        raise NotImplementedError

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def readline(self, size: int = -1) -> bytes:
        # Bodies here are files, never line-oriented; a byte-wise scan is adequate.
        line = bytearray()
        while size < 0 or len(line) < size:
            byte = self.read(1)
            if not byte:
                break
            line += byte
            if byte == b"\n":
                break
        return bytes(line)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 <= hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def skip_buffered(self) -> bool:
        """Drop the rest of the body if it is already buffered whole (never receives); True
        if the body is now finished."""
        return self.finished

    def settled(self) -> bool:
        """True if no more of the body has to be received: read to its end, or the rest
        buffered (after one receive that never waits).  Asked when the response head goes
        out: an unsettled body means the connection cannot carry another request without
        waiting for the client, so the answer says `Connection: close`."""
        return self.finished

    def _incomplete(self, why: str) -> IncompleteBody:
        self.broken = True
        return IncompleteBody(f"request body incomplete: {why}")


class ContentLengthInput(BodyInput):
    """A body of exactly `length` bytes; reading past a connection that ends (or stays
    silent for the receive timeout) before then raises `IncompleteBody`."""

    def __init__(self, reader: SocketReader, length: int,
                 before_first_read: Callable[[], None] | None = None, pace: Pace | None = None):
        super().__init__(reader, before_first_read, pace)
        self.length = length
        self.remaining = length
        self.finished = length == 0

    def read(self, size: int = -1) -> bytes:
        if self.broken:
            raise self._short()
        if self.remaining <= 0:
            return b""
        self._start()
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        try:
            data = self._reader.read(size)
        except OSError as exc:
            raise self._short(exc) from None
        self.remaining -= len(data)
        if len(data) < size:
            raise self._short()
        self.finished = self.remaining == 0
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        if self.broken:
            raise self._short()
        if self.remaining <= 0:
            return 0
        self._start()
        view = memoryview(buffer)[: min(len(buffer), self.remaining)]
        try:
            count = self._reader.readinto(view)
        except OSError as exc:
            raise self._short(exc) from None
        self.remaining -= count
        if count < len(view):
            raise self._short()
        self.finished = self.remaining == 0
        return count

    def settled(self) -> bool:
        if self.finished or self.broken:
            return self.finished
        if self._reader.buffered() < self.remaining <= SETTLE_LIMIT:
            self._reader.receive_waiting(self.remaining)
        return self.remaining <= self._reader.buffered()

    def skip_buffered(self) -> bool:
        if not self.broken and 0 < self.remaining <= self._reader.buffered():
            self._reader.skip(self.remaining)
            self.remaining = 0
            self.finished = True
        return self.finished

    def _short(self, cause: OSError | None = None) -> IncompleteBody:
        received = self.length - self.remaining
        return self._incomplete(f"at most {received} of {self.length} bytes received: {_why(cause)}")


class ChunkedInput(BodyInput):
    """A `Transfer-Encoding: chunked` body, de-chunked; EOF only after the last (zero-size)
    chunk.  A connection that ends or times out before it raises `IncompleteBody`."""

    def __init__(self, reader: SocketReader, before_first_read: Callable[[], None] | None = None,
                 pace: Pace | None = None):
        super().__init__(reader, before_first_read, pace)
        self._chunk_left = 0

    def read(self, size: int = -1) -> bytes:
        if self.broken:
            raise self._incomplete("the chunked body was cut off before its last chunk")
        if self.finished:
            return b""
        self._start()
        parts: list[bytes] = []
        wanted = size if size is not None and size >= 0 else -1
        got = 0
        try:
            while wanted < 0 or got < wanted:
                if self._chunk_left == 0 and not self._next_chunk():
                    break
                take = self._chunk_left if wanted < 0 else min(self._chunk_left, wanted - got)
                data = self._reader.read(take)
                if len(data) < take:
                    raise EOFError
                parts.append(data)
                got += len(data)
                self._chunk_left -= len(data)
                if self._chunk_left == 0:
                    self._expect_crlf()
        except (OSError, EOFError) as exc:
            raise self._incomplete("the chunked body was cut off before its last chunk: "
                                   + _why(exc if isinstance(exc, OSError) else None)) from None
        return b"".join(parts)

    def _next_chunk(self) -> bool:
        line = self._reader.readline(MAX_CHUNK_LINE)
        if not line.endswith(b"\n"):
            if len(line) >= MAX_CHUNK_LINE:
                self._malformed("chunk-size line too long")
            raise EOFError
        match = _CHUNK_LINE.fullmatch(line)
        if match is None:
            self._malformed(f"bad chunk-size line {line[:40]!r}")
        size = int(match.group(1), 16)
        if size == 0:
            self._read_trailers()
            self.finished = True
            return False
        self._chunk_left = size
        return True

    def _expect_crlf(self) -> None:
        line = self._reader.readline(2)
        if line in (b"\r\n", b"\n"):
            return
        if not line or line == b"\r":
            raise EOFError
        self._malformed("chunk data not followed by CRLF")

    def _read_trailers(self) -> None:
        for _ in range(MAX_TRAILERS):
            line = self._reader.readline(MAX_CHUNK_LINE)
            if line in (b"\r\n", b"\n"):
                return
            if not line.endswith(b"\n"):
                if len(line) >= MAX_CHUNK_LINE:
                    self._malformed("trailer line too long")
                raise EOFError
        self._malformed("too many trailer lines")

    def _malformed(self, why: str) -> NoReturn:
        self.broken = True
        raise InvalidArgument(f"malformed chunked request body: {why}")


def _why(cause: OSError | None) -> str:
    """Why a body ended early, for the client's 400 and the log line."""
    if cause is None:
        return "the connection closed"
    if isinstance(cause, TooSlow):
        return str(cause)
    if isinstance(cause, (BlockingIOError, TimeoutError)):  # SO_RCVTIMEO or settimeout
        return "nothing received for request_timeout"
    return f"the connection failed ({cause.strerror or cause})"
