"""The one-method transport interface and the request/response shapes it uses.

A transport sends one HTTP request and returns the response with its body unread; it never
interprets the status.  It raises `PulsarClientTransportError` only when no response was
obtained (timeout, refused connection, broken connection).  Everything above it
(`pulsar.client.http_api`) checks statuses, parses JSON, streams files and retries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import IO, Iterable, Iterator, Mapping, Protocol

from pulsar.util.fileio import BLOCK_SIZE

UPLOAD_BLOCK_SIZE = 1024 * 1024


class FileBody:
    """An upload body read from a file in blocks, hashing as it goes.

    Iterable (transports that send iterables), readable (`read(n)`, for WSGI), and
    `len()` is the file size so the request carries Content-Length, never chunked encoding.
    """

    def __init__(self, path: str, block_size: int = UPLOAD_BLOCK_SIZE):
        self.path = path
        self.block_size = block_size
        self.size = os.path.getsize(path)
        self.sent = 0
        self._digest = hashlib.sha256()
        self._handle: IO[bytes] | None = None

    def _file(self) -> IO[bytes]:
        if self._handle is None:
            self._handle = open(self.path, "rb")
        return self._handle

    def __len__(self) -> int:
        return self.size

    def read(self, size: int = -1) -> bytes:
        remaining = self.size - self.sent
        if size is None or size < 0 or size > remaining:
            size = remaining
        block = self._file().read(size) if size > 0 else b""
        self._digest.update(block)
        self.sent += len(block)
        return block

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self.read(self.block_size)
            if not block:
                return
            yield block

    @property
    def sha256(self) -> str | None:
        """The digest of what was sent, once all of it was sent."""
        return self._digest.hexdigest() if self.sent == self.size else None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@dataclasses.dataclass
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    #: None, bytes, or a `FileBody` (streamed, `len()` known).
    body: bytes | FileBody | None = None

    @property
    def content_length(self) -> int:
        return 0 if self.body is None else len(self.body)


class HttpResponse(Protocol):
    """A response whose body has not been read yet."""

    status: int
    headers: Mapping[str, str]  # case-insensitive lookups via `header()`

    def header(self, name: str) -> str | None: ...

    def read(self, size: int = -1) -> bytes: ...

    def close(self) -> None: ...


class Transport(Protocol):
    def send(self, request: HttpRequest) -> HttpResponse:
        """Send `request`; raise `PulsarClientTransportError` if no response arrived."""
        ...


def lower_headers(items: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    pairs = items.items() if isinstance(items, Mapping) else items
    return {str(k).lower(): str(v) for k, v in pairs}


__all__ = ["BLOCK_SIZE", "FileBody", "HttpRequest", "HttpResponse", "Transport", "lower_headers"]
