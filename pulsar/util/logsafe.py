"""Text from the network made safe for one log line.

A request target, a file name or a header value is chosen by whoever sent it: written raw,
a CR/LF forges log lines, an escape sequence rewrites the admin's terminal, and a
`private_token=` in a query string hands the secret to anyone who can read the logs.
Every log line that carries such text passes it through `printable` (or `target`).
"""

from __future__ import annotations

import re

#: Longest piece of client text copied into one log line.
DEFAULT_LIMIT = 300

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")
_SECRET_PARAMETER = re.compile(r"((?:^|[?&;])(?:private_token|token|api_key|key)=)[^&;#\s]*", re.IGNORECASE)


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return "\\\\" if char == "\\" else f"\\x{ord(char):02x}"


def printable(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """`text` with control characters (C0, DEL, C1) and backslashes escaped, cut to about
    `limit` characters (with "..." when cut).  Bytes are decoded as latin-1 first, so every
    byte shows up as itself or as an escape."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("latin-1")
    elif not isinstance(text, str):
        text = str(text)
    cut = len(text) > limit
    escaped = _UNPRINTABLE.sub(_escape, text[:limit] if cut else text)
    return escaped + "..." if cut else escaped


def redact(text: str) -> str:
    """`text` with the value of every token-like query parameter replaced by `***`."""
    return _SECRET_PARAMETER.sub(r"\1***", text)


def target(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """A request target (path and query) for a log line: secrets redacted, then escaped."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("latin-1")
    return printable(redact(str(text)), limit)
