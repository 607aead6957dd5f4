"""The per-request object handlers receive, and the app contract the web layer relies on."""

from __future__ import annotations

from typing import Protocol

import webob

from pulsar.errors import InvalidArgument, PulsarError
from pulsar.jobs.file_cache import FileCache
from pulsar.jobs.service import JobService
from pulsar.telemetry import ServerMetrics
from pulsar.util.fileio import Readable
from pulsar.web.args import Args


class PulsarAppLike(Protocol):
    """What the web layer needs from `pulsar.core.PulsarApp` (and nothing more)."""

    private_token: str | None
    version: str
    max_request_line: int
    #: The app's Prometheus metrics (`pulsar.telemetry`), and whether loopback clients may
    #: read them without the token (`metrics_public`).
    metrics: ServerMetrics
    metrics_public: bool
    #: The input file cache; None without `file_cache_dir` (the /cache routes answer 501).
    file_cache: FileCache | None

    def service(self, manager_name: str, /) -> JobService:
        """The job service of a manager; `pulsar.errors.NotFound` for an unknown name."""
        ...

    def shutdown(self) -> None:
        """Stop the managers; called once the server has stopped serving."""
        ...


class LengthRequired(PulsarError):
    """A body-carrying request has neither Content-Length nor a terminated (de-chunked) body."""

    http_status = 411
    error = "length_required"


class RequestLineTooLong(PulsarError):
    http_status = 414
    error = "request_line_too_long"


class Unauthorized(PulsarError):
    http_status = 401
    error = "unauthorized"


class LoopbackOnly(PulsarError):
    """A token-less server was reached from a non-loopback address."""

    http_status = 403
    error = "forbidden"


class RouteNotFound(PulsarError):
    http_status = 404
    error = "not_found"


class Request:
    """One matched request: the app, the manager the URL names, the decoded arguments, and
    WebOb's request over the WSGI environ (`http`) for headers and the body stream."""

    __slots__ = ("app", "http", "manager_name", "args")

    def __init__(self, app: PulsarAppLike, http: webob.Request, manager_name: str, args: Args):
        self.app = app
        self.http = http
        self.manager_name = manager_name
        self.args = args

    def service(self) -> JobService:
        return self.app.service(self.manager_name)

    @property
    def body(self) -> Readable:
        """The server's `wsgi.input` itself, read in blocks by the caller: never WebOb's
        `body` or a seekable copy, so an upload of any size streams with flat memory."""
        stream: Readable = self.http.body_file_raw
        return stream

    def body_length(self) -> int | None:
        """Bytes to read from `body`; None means read to EOF (the server terminated the body).

        Raises `InvalidArgument` for a malformed Content-Length and `LengthRequired` when the
        length is unknown and the server did not promise a terminated stream.  A chunked body
        under a server that does not decode it to a terminated stream is refused too, whatever
        CONTENT_LENGTH says: Paste's httpserver passes such a body with a length of 0, which
        would store an empty file and answer 200."""
        environ = self.http.environ
        terminated = bool(environ.get("wsgi.input_terminated"))
        if not terminated and "chunked" in self.http.headers.get("Transfer-Encoding", "").lower():
            raise LengthRequired("this server cannot pass a chunked upload on; send a Content-Length")
        raw = str(environ.get("CONTENT_LENGTH") or "").strip()
        if raw:
            if not raw.isdigit():  # WebOb would read "x" as no length and "-1" as -1
                raise InvalidArgument(f"invalid Content-Length {raw!r}")
            return self.http.content_length
        if terminated:
            return None
        raise LengthRequired("an upload needs a Content-Length header or a chunked body")
