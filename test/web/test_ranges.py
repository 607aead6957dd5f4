from __future__ import annotations

import pytest

from pulsar.web.ranges import RangeNotSatisfiable, byte_range


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, None),
        ("", None),
        ("bytes=0-9", (0, 10)),
        ("bytes=5-", (5, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=-1000", (0, 100)),  # longer than the file: all of it (WebOb would say 416)
        ("bytes=90-1000", (90, 100)),
        ("BYTES = 1 - 2", (1, 3)),
        ("bytes=5-1", None),  # invalid: ignored
        ("bytes=0-1,5-6", None),  # several ranges: ignored, whole file (WebOb would serve the first)
        ("bytes=0-1junk", None),
        ("items=0-1", None),
        ("bytes=-", None),  # WebOb's parser raises ValueError on it
    ],
)
def test_byte_range(header: str | None, expected: tuple[int, int] | None) -> None:
    chosen = byte_range(header, 100)
    assert (chosen.range_for_length(100) if chosen is not None else None) == expected


@pytest.mark.parametrize("header, size", [("bytes=100-", 100), ("bytes=200-300", 100), ("bytes=-0", 100),
                                          ("bytes=0-", 0), ("bytes=-5", 0)])
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, size)
