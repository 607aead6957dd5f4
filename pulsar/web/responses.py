"""What a handler returns, and how each kind is framed on the wire (spec 2.5).

JSON uses Python's default separators (the reference client parses with `json.loads`, but
byte-compatible output costs nothing).  Files are served through `FileRange`, a bounded
view of an open file that any WSGI server's `wsgi.file_wrapper` can stream correctly:
servers that use sendfile take `fileno()`/`tell()` plus Content-Length, servers that read
get at most the range from `read()`.
"""

from __future__ import annotations

import json
import os
from http import HTTPStatus
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from pulsar.errors import PulsarError

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
OCTET_TYPE = "application/octet-stream"

#: Block size offered to `wsgi.file_wrapper` and used when iterating a file ourselves.
FILE_BLOCK_SIZE = 1024 * 1024


class Response:
    """Status, headers and either an in-memory body or a `FileRange` to stream."""

    __slots__ = ("status", "headers", "body", "file")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes = b"",
                 file: "FileRange | None" = None):
        self.status = status
        self.headers = headers
        self.body = body
        self.file = file

    @property
    def status_line(self) -> str:
        return status_line(self.status)

    @property
    def content_length(self) -> int:
        return self.file.length if self.file is not None else len(self.body)


def status_line(code: int) -> str:
    line = _STATUS_LINES.get(code)
    if line is not None:
        return line
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


_STATUS_LINES = {int(status): f"{int(status)} {status.phrase}" for status in HTTPStatus}


def json_response(value: Any, status: int = 200) -> Response:
    body = json.dumps(value).encode("utf-8")
    return Response(status, [("Content-Type", JSON_TYPE), ("Content-Length", str(len(body)))], body)


def ok_response() -> Response:
    """The literal `OK` of submit, cancel and clean."""
    return Response(200, [("Content-Type", TEXT_TYPE), ("Content-Length", "2")], b"OK")


def error_response(status: int, error: str, detail: str,
                   extra_headers: Iterable[tuple[str, str]] = ()) -> Response:
    response = json_response({"error": error, "detail": detail}, status)
    response.headers.extend(extra_headers)
    return response


def error_from_exception(exc: PulsarError) -> Response:
    return error_response(exc.http_status, exc.error, exc.detail)


class FileRange:
    """Bytes [start, stop) of an open binary file; owns and closes the handle.

    `on_close` runs once, after the server has finished with the body (PEP 3333 calls
    `close()` on the response iterable), which is when a transfer is really over."""

    mode = "rb"

    def __init__(self, handle: BinaryIO, start: int, stop: int,
                 on_close: Callable[[], None] | None = None):
        self._handle = handle
        self.start = start
        self.stop = stop
        self.on_close = on_close
        self._closed = False
        handle.seek(start)

    @property
    def length(self) -> int:
        return self.stop - self.start

    def fileno(self) -> int:
        return self._handle.fileno()

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        remaining = self.stop - self._handle.tell()
        if remaining <= 0:
            return b""
        if size is None or size < 0 or size > remaining:
            size = remaining
        return self._handle.read(size)

    def __iter__(self) -> Iterator[bytes]:
        while block := self.read(FILE_BLOCK_SIZE):
            yield block

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._handle.close()
        finally:
            if self.on_close is not None:
                self.on_close()
