"""What a handler returns, and how each kind is framed on the wire (spec 2.5).

Every answer is a `webob.Response`; errors are `webob.exc` responses carrying our JSON body
`{"error": ..., "detail": ...}`.  JSON uses Python's default separators (the reference
client parses with `json.loads`, but byte-compatible output costs nothing), so bodies are
encoded here rather than with WebOb's compact `json_body`.

Files are served through `FileBody`, the `app_iter` of a download: WebOb's conditional
response narrows it to a byte range (`app_iter_range`) without reading the bytes it skips,
and `pulsar.web.app` hands it to the server's `wsgi.file_wrapper`, so servers that use
sendfile take `fileno()`/`tell()` plus Content-Length, and servers that read get at most the
range from `read()`.
"""

from __future__ import annotations

import json
import os
from http import HTTPStatus
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from webob import Response
from webob.exc import WSGIHTTPException, status_map

from pulsar.errors import PulsarError

JSON_TYPE = "application/json"
OCTET_TYPE = "application/octet-stream"

#: Block size offered to `wsgi.file_wrapper` and used when iterating a file ourselves.
FILE_BLOCK_SIZE = 1024 * 1024


def status_line(code: int) -> str:
    """`"404 Not Found"` for 404: the status line of answers the server writes itself."""
    line = _STATUS_LINES.get(code)
    if line is not None:
        return line
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


_STATUS_LINES = {int(status): f"{int(status)} {status.phrase}" for status in HTTPStatus}


def json_response(value: Any, status: int = 200) -> Response:
    return Response(body=json.dumps(value).encode("utf-8"), status=status, content_type=JSON_TYPE)


def metrics_response(body: bytes, content_type: str) -> Response:
    """The Prometheus exposition: `content_type` carries its own version and charset."""
    response = Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def ok_response() -> Response:
    """The literal `OK` of submit, cancel and clean."""
    return Response(body=b"OK", content_type="text/plain", charset="utf-8")


def error_response(status: int, error: str, detail: str,
                   extra_headers: Iterable[tuple[str, str]] = ()) -> WSGIHTTPException:
    """The `webob.exc` class for `status`, with our JSON body instead of WebOb's HTML page
    (clients read `error`; a body is what makes WebOb serve it as it is)."""
    body = json.dumps({"error": error, "detail": detail}).encode("utf-8")
    response: WSGIHTTPException = status_map[status](body=body, content_type=JSON_TYPE)
    response.headers.extend(extra_headers)
    return response


def error_from_exception(exc: PulsarError) -> WSGIHTTPException:
    return error_response(exc.http_status, exc.error, exc.detail)


class FileBody:
    """The bytes of an open binary file as a WSGI body; owns and closes the handle.

    Serves [start, stop), the whole file until WebOb's conditional response asks for a
    range through `app_iter_range`.  `on_close` runs once, after the server has finished
    with the body (PEP 3333 calls `close()` on the response iterable, WebOb's empty bodies
    of HEAD and 304 answers pass the call on), which is when a transfer is really over."""

    mode = "rb"

    def __init__(self, handle: BinaryIO, size: int, on_close: Callable[[], None] | None = None):
        self._handle = handle
        self.start = 0
        self.stop = size
        self.on_close = on_close
        self._closed = False
        handle.seek(0)

    def app_iter_range(self, start: int, stop: int) -> "FileBody":
        """Narrow to [start, stop) of the file (WebOb has checked it against the size)."""
        self.start, self.stop = start, stop
        self._handle.seek(start)
        return self

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


def file_response(handle: BinaryIO, size: int, etag: str) -> Response:
    """A 200 for a whole file that WebOb may turn into a 206 (a `Range` that the `If-Range`
    allows) or a 304 (a matching `If-None-Match`) when it is called."""
    response = Response(app_iter=FileBody(handle, size), content_type=OCTET_TYPE,
                        conditional_response=True)
    response.content_length = size
    response.accept_ranges = "bytes"
    response.etag = etag
    return response
