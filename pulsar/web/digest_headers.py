"""RFC 9530 integrity fields for downloads: `Want-Repr-Digest` in, `Repr-Digest` out.

Only sha-256 is offered.  A preference of 0 means "not acceptable" (RFC 9530 section 4).
"""

from __future__ import annotations

import base64


def wants_sha256(header: str | None) -> bool:
    """Whether `Want-Repr-Digest` asks for sha-256 with a non-zero preference."""
    if not header:
        return False
    for item in header.split(","):
        algorithm, _, preference = item.strip().partition("=")
        if algorithm.strip().lower() != "sha-256":
            continue
        try:
            return int(preference.strip() or "1") > 0
        except ValueError:
            return False
    return False


def repr_digest(sha256_hex: str) -> str:
    """The `Repr-Digest` value for a sha256 given in hex: `sha-256=:<base64>:`."""
    return "sha-256=:" + base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii") + ":"
