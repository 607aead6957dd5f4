"""The WSGI callable: route, authenticate, dispatch, and turn every outcome into a response.

Requests are WebOb's `Request` and answers WebOb's `Response` (errors its `webob.exc`
classes); routing stays our explicit `RouteTable`.  Outcomes:
* a handler's response (JSON, `OK`, or a file WebOb may serve as 206 or 304);
* a `pulsar.errors.PulsarError` -> its status with `{"error": ..., "detail": ...}` and one
  log line on `pulsar.web`;
* a truncated upload body -> 400;
* an `OSError` ENAMETOOLONG from any layer -> 400 `name_too_long` (the client chose the name);
* a token-less app built with `loopback_only` reached from elsewhere -> 403;
* anything else -> 500 with a generic JSON body, logged with its traceback.

`GET /metrics` needs the token like every route except `/healthz`, unless the app sets
`metrics_public`: then loopback clients read it without (the launchers refuse
`metrics_public` on a non-loopback bind; the client check covers a server whose bind they
cannot see, gunicorn's `--bind`).  Every request is counted in the app's metrics once its
response is done (`pulsar.telemetry`), labelled with the route's pattern.

Client text in log lines (path, method, client address, error details) is escaped with
`pulsar.util.logsafe` and the token is masked wherever it appears.

Every request gets one access-log line on `pulsar.web.access` (query values scrubbed), at
INFO, except successful status polls and health checks, which are at DEBUG (they are most of
the traffic and change nothing).  It gives the status and Content-Length that went out (a
download may leave as 206 or 304); for downloads it is written when the server closes the
body, so duration and bytes cover the whole transfer.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import time
from typing import Any, Callable, Iterable, Mapping

import webob

from pulsar.errors import InvalidArgument, PulsarError
from pulsar.telemetry import UNMATCHED_ROUTE
from pulsar.util.fileio import TruncatedStream
from pulsar.util.logsafe import printable, target
from pulsar.web.args import Args, parse_query
from pulsar.web.auth import is_authorized, scrubbed_query
from pulsar.web.request import (
    LoopbackOnly,
    PulsarAppLike,
    Request,
    RequestLineTooLong,
    RouteNotFound,
    Unauthorized,
)
from pulsar.web.responses import FILE_BLOCK_SIZE, FileBody, error_from_exception, error_response
from pulsar.web.routes import RouteTable

log = logging.getLogger("pulsar.web")
access_log = logging.getLogger("pulsar.web.access")

StartResponse = Callable[..., Any]


class PulsarWsgiApp:
    """WSGI application over a `PulsarAppLike` (normally `pulsar.core.PulsarApp`).

    `loopback_only`: when the app has no token, authenticated routes answer only clients
    on a loopback address (403 otherwise).  The launchers refuse a public bind without a
    token; this is the same rule where the bind address cannot be known (a WSGI server
    configured outside Pulsar, e.g. gunicorn's `--bind`)."""

    def __init__(self, app: PulsarAppLike, routes: RouteTable | None = None, *, loopback_only: bool = False):
        self.app = app
        self.routes = routes if routes is not None else RouteTable()
        self.loopback_only = loopback_only

    # What a server hosting this app needs to know of it (pulsar.web.server.server_runner),
    # so no launcher reaches into the application object.
    @property
    def max_request_line(self) -> int:
        return int(self.app.max_request_line)

    @property
    def has_token(self) -> bool:
        return bool(self.app.private_token)

    @property
    def metrics_public(self) -> bool:
        return bool(self.app.metrics_public)

    def shutdown(self) -> None:
        self.app.shutdown()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        http = webob.Request(environ)
        method = http.method.upper()
        raw_path = str(environ.get("PATH_INFO", "") or "/")
        exchange = _Exchange(environ, method, self._loggable(raw_path))
        try:
            response = self._respond(http, method, raw_path, exchange)
        except PulsarError as exc:
            response = error_from_exception(exc)
            log.warning("%s %s -> %d %s: %s", exchange.method, exchange.path, exc.http_status, exc.error,
                        self._loggable(exc.detail))
        except TruncatedStream as exc:
            response = error_response(400, "incomplete_body", str(exc))
            log.warning("%s %s -> 400 incomplete_body: %s", exchange.method, exchange.path, self._loggable(exc))
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                log.exception("unhandled error serving %s %s", exchange.method, exchange.path)
                response = error_response(500, "server_error", "internal server error; see the server log")
            else:
                # The client chose a name the file system cannot hold (a component over
                # NAME_MAX, a path over PATH_MAX): its mistake, whichever layer noticed.
                response = error_response(400, "name_too_long", "a name in the request is too long for the file system")
                log.warning("%s %s -> 400 name_too_long", exchange.method, exchange.path)
        except Exception:
            log.exception("unhandled error serving %s %s", exchange.method, exchange.path)
            response = error_response(500, "server_error", "internal server error; see the server log")

        def finished() -> None:
            duration = time.monotonic() - started
            exchange.log(duration)
            metrics = self.app.metrics
            metrics.request_done(exchange.route, method, exchange.status, duration)
            if file_body is not None and method == "GET" and exchange.status in (200, 206):
                metrics.transferred(exchange.manager, "out", "http", exchange.length, duration)

        file_body = response.app_iter if isinstance(response.app_iter, FileBody) else None
        if file_body is not None:
            file_body.on_close = finished  # whatever WebOb makes of it (206, 304) closes it
        try:
            body: Iterable[bytes] = response(environ, exchange.recording(start_response))
        except BaseException:
            if file_body is not None:
                file_body.close()
            raise
        if file_body is None:
            finished()
        elif body is file_body:
            wrapper = environ.get("wsgi.file_wrapper")
            if wrapper is not None:
                wrapped: Iterable[bytes] = wrapper(file_body, FILE_BLOCK_SIZE)
                return wrapped
        return body

    def _loggable(self, text: object) -> str:
        """Client text for a log line: escaped and cut (`logsafe.target`), and the token
        masked wherever the client put it (a path, a name), not only in `private_token=`."""
        token = self.app.private_token
        return target(str(text).replace(token, "***") if token else text)

    def _respond(self, http: webob.Request, method: str, raw_path: str, exchange: "_Exchange") -> webob.Response:
        query_string = str(http.environ.get("QUERY_STRING", "") or "")
        limit = self.app.max_request_line
        if limit and len(raw_path) + len(query_string) > limit:
            raise RequestLineTooLong(f"request line longer than {limit} bytes")
        try:
            path = http.path_info
        except UnicodeError:
            raise InvalidArgument("request path is not valid UTF-8") from None
        match = self.routes.match(method, path or "/")
        if match is None:
            raise RouteNotFound(f"no route for {method} {path}")
        query = parse_query(http)
        exchange.query = query
        exchange.polled = match.route.polled
        exchange.route, exchange.manager = match.route.pattern, match.manager_name
        public = match.route.public_metrics and self.app.metrics_public and _is_loopback(http.remote_addr)
        if match.route.authenticated and not public:
            if self.loopback_only and not self.app.private_token and not _is_loopback(http.remote_addr):
                raise LoopbackOnly("this server has no private_token and answers loopback clients only")
            if not is_authorized(self.app.private_token, http, query):
                raise Unauthorized("missing or wrong private_token")
        return match.route.handler(Request(self.app, http, match.manager_name, Args(query, match.path_vars)))


class _Exchange:
    """What the access log needs to know about one request, and what went out."""

    __slots__ = ("client", "method", "path", "query", "polled", "status", "length", "route", "manager")

    def __init__(self, environ: Mapping[str, Any], method: str, path: str):
        self.client = printable(environ.get("REMOTE_ADDR", "-"))
        self.method = printable(method)
        self.path = path
        self.query: Mapping[str, str] | None = None
        self.polled = False
        self.status = 0
        self.length = 0
        self.route = UNMATCHED_ROUTE  # the route's pattern once matched: a bounded metrics label
        self.manager = ""

    def recording(self, start_response: StartResponse) -> StartResponse:
        """`start_response`, noting the status and Content-Length WebOb chose."""

        def record(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            self.status = int(status[:3])
            for name, value in headers:
                if name.lower() == "content-length":
                    self.length = int(value)
            return start_response(status, headers, *exc_info)

        return record

    def log(self, duration: float) -> None:
        level = logging.DEBUG if self.polled and self.status < 400 else logging.INFO
        if access_log.isEnabledFor(level):
            access_log.log(level, '%s "%s %s%s" %d %d %.3fs', self.client, self.method, self.path,
                           _ScrubbedQuery(self.query), self.status, self.length, duration)


class _ScrubbedQuery:
    """Formats as `scrubbed_query(query)`, computed only if a handler emits the record."""

    __slots__ = ("query",)

    def __init__(self, query: Mapping[str, str] | None):
        self.query = query

    def __str__(self) -> str:
        return scrubbed_query(self.query)


def _is_loopback(address: str | None) -> bool:
    """True if the client address (REMOTE_ADDR, never `X-Forwarded-For`, which any client
    can write) is a loopback address; no name lookups: it is an address."""
    try:
        return ipaddress.ip_address(str(address or "").strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False
