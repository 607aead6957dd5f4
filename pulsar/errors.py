"""Errors the job layer raises, each carrying the HTTP status the web layer answers with.

Domain code raises these; `pulsar.web` turns them into `{"error": ..., "detail": ...}`
responses.  Anything else that escapes a handler is a server fault (500, logged with a
traceback).
"""

from __future__ import annotations


class PulsarError(Exception):
    """Base class. `http_status` is what a client sees; `error` is a short stable code."""

    http_status = 500
    error = "server_error"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class InvalidArgument(PulsarError):
    """A request argument is missing, malformed, or names something outside its directory."""

    http_status = 400
    error = "invalid_argument"


class NotFound(PulsarError):
    """The named file, job or manager does not exist."""

    http_status = 404
    error = "not_found"


class Conflict(PulsarError):
    """The request does not fit the job's current state (e.g. a directory where a file is expected)."""

    http_status = 409
    error = "conflict"


class Forbidden(PulsarError):
    """The server will not do this for the client (a permission or policy says no)."""

    http_status = 403
    error = "forbidden"


class Refused(Forbidden):
    """The server's job policy refuses the job: its tool is not in the allow-list
    (`tool_config_files`), its command line or tool files do not fit the tool, or
    `user_auth` does not let its user run jobs.  `detail` is the reason, for the client."""

    error = "refused"


class ConfigurationError(Exception):
    """The configuration cannot be used; the message names the key and the file."""


class IncompleteBody(PulsarError):
    """The request body ended before it was complete: the client closed the connection or
    went silent mid-body, or a chunked body stopped before its last chunk.  Raised by the
    server's `wsgi.input`, so an upload reading to EOF fails instead of committing a
    truncated file."""

    http_status = 400
    error = "incomplete_body"
