"""The WSGI callable: route, authenticate, dispatch, and turn every outcome into a response.

Outcomes:
* a handler's `Response` (JSON, `OK`, or a file stream);
* a `pulsar.errors.PulsarError` -> its status with `{"error": ..., "detail": ...}` and one
  log line on `pulsar.web`;
* a truncated upload body -> 400;
* an `OSError` ENAMETOOLONG from any layer -> 400 `name_too_long` (the client chose the name);
* a token-less app built with `loopback_only` reached from elsewhere -> 403;
* anything else -> 500 with a generic JSON body, logged with its traceback.

Client text in log lines (path, method, client address, error details) is escaped with
`pulsar.util.logsafe` and the token is masked wherever it appears.

Every request gets one access-log line on `pulsar.web.access` (query values scrubbed), at
INFO, except successful status polls and health checks, which are at DEBUG (they are most of
the traffic and change nothing); for downloads it is written when the server closes the
body, so duration and bytes cover the whole transfer.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import time
from typing import Any, Callable, Iterable, Mapping

from pulsar.errors import InvalidArgument, PulsarError
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
from pulsar.web.responses import (
    FILE_BLOCK_SIZE,
    Response,
    error_from_exception,
    error_response,
)
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

    def shutdown(self) -> None:
        self.app.shutdown()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        raw_path = str(environ.get("PATH_INFO", "") or "/")
        exchange = _Exchange(environ, method, self._loggable(raw_path))
        try:
            response = self._respond(environ, method, raw_path, exchange)
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
            exchange.log(response, time.monotonic() - started)

        start_response(response.status_line, response.headers)
        if response.file is not None:
            response.file.on_close = finished
            wrapper = environ.get("wsgi.file_wrapper")
            if wrapper is not None:
                wrapped: Iterable[bytes] = wrapper(response.file, FILE_BLOCK_SIZE)
                return wrapped
            return response.file
        finished()
        return [response.body]

    def _loggable(self, text: object) -> str:
        """Client text for a log line: escaped and cut (`logsafe.target`), and the token
        masked wherever the client put it (a path, a name), not only in `private_token=`."""
        token = self.app.private_token
        return target(str(text).replace(token, "***") if token else text)

    def _respond(self, environ: Mapping[str, Any], method: str, raw_path: str, exchange: "_Exchange") -> Response:
        query_string = str(environ.get("QUERY_STRING", "") or "")
        limit = self.app.max_request_line
        if limit and len(raw_path) + len(query_string) > limit:
            raise RequestLineTooLong(f"request line longer than {limit} bytes")
        try:
            path = raw_path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise InvalidArgument("request path is not valid UTF-8") from None
        match = self.routes.match(method, path)
        if match is None:
            raise RouteNotFound(f"no route for {method} {path}")
        query = parse_query(query_string)
        exchange.query = query
        exchange.polled = match.route.polled
        if match.route.authenticated:
            if self.loopback_only and not self.app.private_token and not _is_loopback_client(environ):
                raise LoopbackOnly("this server has no private_token and answers loopback clients only")
            if not is_authorized(self.app.private_token, environ, query):
                raise Unauthorized("missing or wrong private_token")
        request = Request(self.app, environ, method, path, match.manager_name, Args(query, match.path_vars))
        return match.route.handler(request)


class _Exchange:
    """What the access log needs to know about one request."""

    __slots__ = ("client", "method", "path", "query", "polled")

    def __init__(self, environ: Mapping[str, Any], method: str, path: str):
        self.client = printable(environ.get("REMOTE_ADDR", "-"))
        self.method = printable(method)
        self.path = path
        self.query: Mapping[str, str] | None = None
        self.polled = False

    def log(self, response: Response, duration: float) -> None:
        level = logging.DEBUG if self.polled and response.status < 400 else logging.INFO
        if access_log.isEnabledFor(level):
            access_log.log(level, '%s "%s %s%s" %d %d %.3fs', self.client, self.method, self.path,
                           _ScrubbedQuery(self.query), response.status, response.content_length, duration)


class _ScrubbedQuery:
    """Formats as `scrubbed_query(query)`, computed only if a handler emits the record."""

    __slots__ = ("query",)

    def __init__(self, query: Mapping[str, str] | None):
        self.query = query

    def __str__(self) -> str:
        return scrubbed_query(self.query)


def _is_loopback_client(environ: Mapping[str, Any]) -> bool:
    """True if REMOTE_ADDR is a loopback address (no name lookups: it is an address)."""
    address = str(environ.get("REMOTE_ADDR") or "").strip("[]")
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False
