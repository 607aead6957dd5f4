"""Byte-level HTTP/1.1 reading for `pulsar.web.server`: a buffered socket reader and the
two request-body streams (Content-Length and chunked) exposed as `wsgi.input`.

Body streams never raise on a broken or short connection: they return b"" and set
`broken`, so the application sees a truncated stream (its own contract turns that into a
400) and the server knows the connection cannot be reused.  A malformed chunked body
raises `pulsar.errors.InvalidArgument` (400).
"""

from __future__ import annotations

import socket
import struct
from typing import Callable, Iterator

from pulsar.errors import InvalidArgument

RECV_SIZE = 256 * 1024
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = 64


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


class SocketReader:
    """Buffered reads from a socket: lines with a hard length limit, and large bodies read
    straight into their destination buffer."""

    def __init__(self, sock: socket.socket, recv_size: int = RECV_SIZE):
        self._sock = sock
        self._buf = bytearray()
        self._pos = 0
        # recv() would allocate (and, at this size, mmap and unmap) a fresh buffer per call;
        # receiving into one reused scratch buffer costs a small copy instead.
        self._scratch = memoryview(bytearray(recv_size))

    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def _fill(self) -> int:
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        received = self._sock.recv_into(self._scratch)
        self._buf += self._scratch[:received]
        return received

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
        return filled

    def read_some(self, size: int) -> bytes:
        """At least one byte (b"" only at EOF), at most `size`; for discarding input."""
        if not self.buffered() and not self._fill():
            return b""
        return self._take(min(size, self.buffered()))


class BodyInput:
    """Base of the `wsgi.input` streams: read/readline/readlines/iteration (PEP 3333)."""

    def __init__(self, reader: SocketReader, before_first_read: Callable[[], None] | None = None):
        self._reader = reader
        self._before_first_read = before_first_read
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

    def discard(self, limit: int) -> bool:
        """Read and drop the rest of the body, up to `limit` bytes; True if it all went."""
        dropped = 0
        while not self.finished and not self.broken and dropped <= limit:
            block = self.read(min(1024 * 1024, limit + 1 - dropped) or 1)
            if not block:
                break
            dropped += len(block)
        return self.finished and not self.broken


class ContentLengthInput(BodyInput):
    def __init__(self, reader: SocketReader, length: int,
                 before_first_read: Callable[[], None] | None = None):
        super().__init__(reader, before_first_read)
        self.remaining = length
        self.finished = length == 0

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0 or self.broken:
            return b""
        self._start()
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        try:
            data = self._reader.read(size)
        except OSError:
            data = b""
        if len(data) < size:
            self.broken = True
        self.remaining -= len(data)
        self.finished = self.remaining == 0
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        if self.remaining <= 0 or self.broken:
            return 0
        self._start()
        view = memoryview(buffer)[: min(len(buffer), self.remaining)]
        try:
            count = self._reader.readinto(view)
        except OSError:
            count = 0
        if count < len(view):
            self.broken = True
        self.remaining -= count
        self.finished = self.remaining == 0
        return count


class ChunkedInput(BodyInput):
    """A `Transfer-Encoding: chunked` body, de-chunked; EOF after the last chunk."""

    def __init__(self, reader: SocketReader, before_first_read: Callable[[], None] | None = None):
        super().__init__(reader, before_first_read)
        self._chunk_left = 0

    def read(self, size: int = -1) -> bytes:
        if self.finished or self.broken:
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
                    self.broken = True
                    parts.append(data)
                    break
                parts.append(data)
                got += len(data)
                self._chunk_left -= len(data)
                if self._chunk_left == 0:
                    self._expect_crlf()
        except OSError:
            self.broken = True
        return b"".join(parts)

    def _next_chunk(self) -> bool:
        line = self._reader.readline(MAX_CHUNK_LINE)
        if not line.endswith(b"\n"):
            if len(line) >= MAX_CHUNK_LINE:
                self._malformed("chunk-size line too long")
            self.broken = True
            return False
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            size = -1
        if size < 0 or not size_text or size_text.startswith((b"+", b"-", b"0x", b"0X")):
            self._malformed(f"bad chunk size {size_text[:40]!r}")
        if size == 0:
            self._read_trailers()
            self.finished = True
            return False
        self._chunk_left = size
        return True

    def _expect_crlf(self) -> None:
        line = self._reader.readline(2)
        if line not in (b"\r\n", b"\n"):
            if not line:
                self.broken = True
                return
            self._malformed("chunk data not followed by CRLF")

    def _read_trailers(self) -> None:
        for _ in range(MAX_TRAILERS):
            line = self._reader.readline(MAX_CHUNK_LINE)
            if line in (b"\r\n", b"\n"):
                return
            if not line.endswith(b"\n"):
                self.broken = True
                return
        self._malformed("too many trailer lines")

    def _malformed(self, why: str) -> None:
        self.broken = True
        raise InvalidArgument(f"malformed chunked request body: {why}")
