"""Token check and log scrubbing.

The token may arrive as the `private_token` query parameter (what the reference client
sends) or as `Authorization: Bearer <token>` (keeps it out of URLs and proxy logs).
Comparison is constant-time.
"""

from __future__ import annotations

import hmac
from typing import Mapping
from urllib.parse import quote

import webob

from pulsar.web.args import TOKEN_PARAMETER

#: Query values short and harmless enough to appear in the access log; everything else
#: (command lines, staging descriptions with SSH keys, the token) is replaced by `***`.
LOGGED_VALUES = frozenset({"job_id", "name", "type", "tool_id", "tool_version", "use_metadata"})
MAX_LOGGED_VALUE = 200


def is_authorized(expected: str | None, request: webob.Request, query: Mapping[str, str]) -> bool:
    """True if no token is configured, or if either presented token equals it."""
    if not expected:
        return True
    wanted = expected.encode("utf-8")
    presented = [query.get(TOKEN_PARAMETER), bearer_token(request)]
    matched = False
    for token in presented:
        if token is not None and hmac.compare_digest(token.encode("utf-8", "surrogateescape"), wanted):
            matched = True
    return matched


def bearer_token(request: webob.Request) -> str | None:
    """The credentials of `Authorization: Bearer ...` (scheme in any case), as WebOb splits
    the header; None for another scheme or none."""
    authorization = request.authorization
    if authorization is None or authorization.authtype.lower() != "bearer":
        return None
    credentials = authorization.params
    if not isinstance(credentials, str) or not credentials.strip():
        return None
    return credentials.strip()


def scrubbed_query(query: Mapping[str, str] | None) -> str:
    """A query string for the access log: keys kept, secret-bearing values masked."""
    if not query:
        return ""
    parts = []
    for key, value in query.items():
        if key in LOGGED_VALUES:
            shown = quote(value[:MAX_LOGGED_VALUE], safe="/")
        else:
            shown = "***"
        parts.append(f"{quote(key[:MAX_LOGGED_VALUE], safe='')}={shown}")
    return "?" + "&".join(parts)
