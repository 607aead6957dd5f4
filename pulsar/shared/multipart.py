"""A streaming multipart/form-data body for one file (Galaxy's job-files POST).

The body is produced block by block from the open file, and its total length is known up
front, so it is sent with Content-Length and never held in memory.
"""

from __future__ import annotations

import os
import uuid
from typing import IO, Callable, Iterator

from pulsar.util.fileio import BLOCK_SIZE


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


class MultipartFileBody:
    """`multipart/form-data` with plain text `fields` followed by the file in `field_name`.

    Iterable (yields bytes blocks), readable (`read(n)`), and `len()` gives the exact byte
    count, which `requests` turns into Content-Length.  Use as a context manager or call
    `close()` to release the file.  `on_progress`, when set, gets the running count of file
    bytes read for sending after each block (progress lines of big transfers).
    """

    def __init__(self, path: str, field_name: str = "file", filename: str | None = None,
                 fields: dict[str, str] | None = None, block_size: int = BLOCK_SIZE):
        self.path = path
        self.boundary = uuid.uuid4().hex
        self.block_size = block_size
        filename = filename or os.path.basename(path)
        head = b""
        for key, value in (fields or {}).items():
            head += self._part_header(f'form-data; name="{_quote(key)}"') + value.encode("utf-8") + b"\r\n"
        head += self._part_header(
            f'form-data; name="{_quote(field_name)}"; filename="{_quote(filename)}"',
            "Content-Type: application/octet-stream\r\n",
        )
        self._head = head
        self._tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")
        self.file_size = os.path.getsize(path)
        self._handle: IO[bytes] | None = None
        self._pending = b""
        self._stage = 0  # 0 head, 1 file, 2 tail, 3 done
        self.file_sent = 0
        self.on_progress: Callable[[int], None] | None = None

    def _part_header(self, disposition: str, extra: str = "") -> bytes:
        return f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n{extra}\r\n".encode("utf-8")

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self._head) + self.file_size + len(self._tail)

    def _next_block(self) -> bytes:
        while True:
            if self._stage == 0:
                self._stage = 1
                self._handle = open(self.path, "rb")
                return self._head
            if self._stage == 1:
                assert self._handle is not None
                block = self._handle.read(self.block_size)
                if block:
                    self.file_sent += len(block)
                    if self.on_progress is not None:
                        self.on_progress(self.file_sent)
                    return block
                self._handle.close()
                self._stage = 2
                continue
            if self._stage == 2:
                self._stage = 3
                return self._tail
            return b""

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self._next_block()
            if not block:
                return
            yield block

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = len(self)
        while len(self._pending) < size:
            block = self._next_block()
            if not block:
                break
            self._pending += block
        result, self._pending = self._pending[:size], self._pending[size:]
        return result

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> "MultipartFileBody":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
