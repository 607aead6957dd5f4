"""The single-range subset of HTTP `Range: bytes=...` (RFC 9110 section 14), with the
strong validator (`ETag`, `If-Range`) that makes resuming a download safe.

Only one range is honoured; anything we do not understand (several ranges, other units,
bad syntax) is ignored and the whole file is served, which RFC 9110 allows.
"""

from __future__ import annotations

import os
import re

_SPEC = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class RangeNotSatisfiable(Exception):
    """The range is well formed but starts beyond the end of the file (answer 416)."""

    def __init__(self, size: int):
        super().__init__(f"requested range not satisfiable for a file of {size} bytes")
        self.size = size


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return (start, stop) with stop exclusive, or None to serve the whole file.

    Raises `RangeNotSatisfiable` for a syntactically valid range no byte of which exists."""
    if not header:
        return None
    match = _SPEC.match(header)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if first == "" and last == "":
        return None
    if first == "":  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - suffix), size
    start = int(first)
    if last != "" and int(last) < start:
        return None  # invalid, so ignored
    if start >= size:
        raise RangeNotSatisfiable(size)
    stop = size if last == "" else min(int(last) + 1, size)
    return start, stop


def content_range(start: int, stop: int, size: int) -> str:
    return f"bytes {start}-{stop - 1}/{size}"


def entity_tag(info: os.stat_result) -> str:
    """A strong validator for one version of a file: inode, size and mtime in ns.

    Any rewrite that changes the size or the mtime changes it; the client's digest check
    covers the rest (a same-size rewrite within one clock tick)."""
    return f'"{info.st_ino:x}-{info.st_size:x}-{info.st_mtime_ns:x}"'


def if_range_holds(header: str | None, etag: str) -> bool:
    """Whether a `Range` may be honoured given `If-Range` (RFC 9110 13.1.5): only if absent or
    the same strong entity tag.  A date or a weak tag means "send the whole file"."""
    if header is None:
        return True
    value = header.strip()
    return not value.startswith("W/") and value == etag
