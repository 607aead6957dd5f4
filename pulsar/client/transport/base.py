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
from typing import IO, Callable, Iterable, Iterator, Mapping, Protocol

from pulsar.util.fileio import BLOCK_SIZE

UPLOAD_BLOCK_SIZE = 1024 * 1024


class FileBody:
    """An upload body read from a file in blocks, hashing as it goes.

    Iterable (transports that send iterables), readable (`read(n)`, for WSGI), and
    `len()` is the file size so the request carries Content-Length, never chunked encoding.
    HTTP transports send `sized_blocks()`, not the body itself: given anything with `read`,
    urllib3 and http.client pull it in 16 KiB / 8 KiB blocks (one Python round of read,
    hash and send per block), which halves upload speed.  `on_progress`, when set, gets the
    running count of bytes read for sending after each block (progress lines of big uploads).
    """

    def __init__(self, path: str, block_size: int = UPLOAD_BLOCK_SIZE):
        self.path = path
        self.block_size = block_size
        self.size = os.path.getsize(path)
        self.sent = 0
        self._digest = hashlib.sha256()
        self._handle: IO[bytes] | None = None
        self.on_progress: Callable[[int], None] | None = None

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
        if self.on_progress is not None:
            self.on_progress(self.sent)
        return block

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self.read(self.block_size)
            if not block:
                return
            yield block

    def blocks(self) -> Iterator[memoryview]:
        """The rest of the file in `block_size` blocks read into one reused buffer.

        Each block is valid only until the next one is requested (senders pass it to
        `sendall` at once).  Memory stays at one block whatever the file size.
        """
        buffer = bytearray(min(self.block_size, max(self.size - self.sent, 1)))
        with open(self.path, "rb", buffering=0) as handle:
            handle.seek(self.sent)
            while self.sent < self.size:
                view = memoryview(buffer)[: min(len(buffer), self.size - self.sent)]
                count = handle.readinto(view)
                if not count:
                    return  # the file shrank: the server sees a short body, as with read()
                block = view[:count]
                self._digest.update(block)
                self.sent += count
                if self.on_progress is not None:
                    self.on_progress(self.sent)
                yield block

    def rewind(self) -> None:
        """Start again from the first byte (a request resent on a fresh connection)."""
        self.close()
        self.sent = 0
        self._digest = hashlib.sha256()

    def sized_blocks(self) -> SizedBlocks:
        """`blocks()` behind an object with only `__iter__` and `__len__` (see the class doc)."""
        return SizedBlocks(self)

    @property
    def sha256(self) -> str | None:
        """The digest of what was sent, once all of it was sent."""
        return self._digest.hexdigest() if self.sent == self.size else None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class SizedBlocks:
    """An iterable upload body of known length, without `read`.

    requests takes the Content-Length from `len()` (and the transports also set it
    explicitly), so the body is never sent chunked; urllib3 and http.client send each
    block as it comes, in the body's large blocks.
    """

    def __init__(self, body: FileBody):
        self._body = body

    def __len__(self) -> int:
        return self._body.size

    def __iter__(self) -> Iterator[memoryview]:
        return self._body.blocks()


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


__all__ = ["BLOCK_SIZE", "FileBody", "SizedBlocks", "HttpRequest", "HttpResponse", "Transport", "lower_headers"]
