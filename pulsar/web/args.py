"""Request arguments: the query string as WebOb decodes it, plus path variables.

Wire facts (spec 2.2): UTF-8, `+` is a space, blank values are kept, the *last* value of a
repeated key wins, unknown keys are ignored, and path variables beat query values.  WebOb's
`Request.GET` also splits pairs at `;`, as the reference server (WebOb too) does; clients
percent-encode `;` in values.
"""

from __future__ import annotations

from typing import Iterator, Mapping

import webob

from pulsar.errors import InvalidArgument
from pulsar.util.jsondepth import MAX_NESTING, nesting_depth

#: Never handed to a handler: it authenticates the request and is a secret.
TOKEN_PARAMETER = "private_token"


def parse_query(request: webob.Request) -> dict[str, str]:
    """The query of `request` as a dict, the last of repeated values winning.

    Raises `InvalidArgument` if the bytes are not valid UTF-8 once percent-decoded (or the
    server broke PEP 3333 by handing over text that is not latin-1)."""
    try:
        return dict(request.GET.items())
    except (UnicodeError, ValueError) as exc:
        raise InvalidArgument(f"query string is not valid UTF-8 form data: {exc}") from None


class Args(Mapping[str, str]):
    """Read-only mapping of argument name -> value with `required`/`optional` helpers.

    Built from the decoded query and the route's path variables (which win); the token is
    dropped so no handler or service ever sees it."""

    __slots__ = ("_values",)

    def __init__(self, query: Mapping[str, str], path_vars: Mapping[str, str] | None = None):
        values = dict(query)
        values.pop(TOKEN_PARAMETER, None)
        if path_vars:
            values.update(path_vars)
        self._values = values

    @classmethod
    def parse(cls, query_string: str, path_vars: Mapping[str, str] | None = None) -> "Args":
        """From a raw WSGI QUERY_STRING (the latin-1 text of the wire bytes)."""
        return cls(parse_query(webob.Request({"QUERY_STRING": query_string})), path_vars)

    def required(self, name: str) -> str:
        """The value of `name`; `InvalidArgument` (400) if absent.  Blank values count as given."""
        try:
            return self._values[name]
        except KeyError:
            raise InvalidArgument(f"missing required argument {name!r}") from None

    def optional(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name, default)

    def check_nesting(self, limit: int = MAX_NESTING) -> None:
        """`InvalidArgument` (400) if any value nests brackets deeper than `limit`, so a
        JSON argument cannot exhaust the decoder's recursion (checked before decoding)."""
        for name, value in self._values.items():
            if nesting_depth(value) > limit:
                raise InvalidArgument(f"argument {name!r} nests deeper than {limit} levels")

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Args({sorted(self._values)})"
