"""Byte ranges (RFC 9110 section 14) for downloads: which `Range` WebOb's conditional
response may serve, and the strong validator that makes resuming a download safe.

WebOb parses `Range`, checks `If-Range` against the `ETag`, narrows the body and writes the
206 with its `Content-Range`.  What it leaves to us, because its parser strays from RFC 9110
there, is deciding which header it may see:

* a header that is not exactly one `bytes=` range (several ranges, another unit, trailing
  junk) is ignored and the whole file served, which RFC 9110 allows -- WebOb would serve
  the first range of `bytes=0-1,3-4` as if it were the only one;
* `bytes=-N` longer than the file means the whole file (WebOb answers 416), `bytes=-0` is
  unsatisfiable (WebOb reads it as `bytes=0-`), and `bytes=-` is ignored (WebOb raises);
* an unsatisfiable range is answered by the handler with our JSON 416, not WebOb's text one.
"""

from __future__ import annotations

import os
import re

from webob import Request, Response
from webob.byterange import Range

#: WebOb's own pattern for one byte range, here anchored at both ends.
_SINGLE_RANGE = re.compile(r"bytes *= *(\d*) *- *(\d*)", re.IGNORECASE)


class RangeNotSatisfiable(Exception):
    """The range is well formed but no byte of it exists (answer 416)."""

    def __init__(self, size: int):
        super().__init__(f"requested range not satisfiable for a file of {size} bytes")
        self.size = size


def byte_range(header: str | None, size: int) -> Range | None:
    """The range to serve of a file of `size` bytes, or None for the whole file.

    Raises `RangeNotSatisfiable` for a single well-formed range no byte of which exists."""
    match = _SINGLE_RANGE.fullmatch(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable(size)
        chosen: Range | None = Range(-min(suffix, size), None)
    else:
        chosen = Range.parse(match.group(0))  # None when last < first: invalid, so ignored
    if chosen is not None and chosen.content_range(size) is None:
        raise RangeNotSatisfiable(size)
    return chosen


def settle_range(request: Request, response: Response) -> None:
    """Leave in `request` the `Range` that `response` (a conditional 200 of a whole file with
    an `ETag` and a Content-Length) may serve when WebOb calls it: none when `If-Range` names
    another version, or when a matching `If-None-Match` makes the answer a 304 anyway.

    Raises `RangeNotSatisfiable` when a range remains that no byte of the file satisfies."""
    header = request.environ.get("HTTP_RANGE")
    if header is None:
        return
    if response not in request.if_range or response.etag in request.if_none_match:
        request.range = None
        return
    size = response.content_length
    assert size is not None, "settle_range needs the response's Content-Length"
    chosen = byte_range(header, size)
    request.range = str(chosen) if chosen is not None else None


def entity_tag(info: os.stat_result) -> str:
    """A strong validator for one version of a file: inode, size and mtime in ns (unquoted,
    as `webob.Response.etag` takes it).

    Any rewrite that changes the size or the mtime changes it; the client's digest check
    covers the rest (a same-size rewrite within one clock tick)."""
    return f"{info.st_ino:x}-{info.st_size:x}-{info.st_mtime_ns:x}"
