"""The explicit route table (spec 3.1) and the matcher.

Every route exists bare (manager `_default_`) and under `/managers/{name}/`.  Paths are
matched against the percent-decoded path, anchored at both ends; `{var}` matches exactly
one non-empty segment.  A wrong method is the same 404 as an unknown path (spec 2.6).
`pulsar.web.openapi.OPERATIONS` describes each route (test/web/test_openapi.py checks it).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from webob import Response

from pulsar.protocol import DEFAULT_MANAGER_NAME
from pulsar.web import handlers
from pulsar.web.request import Request

Handler = Callable[[Request], Response]


class Route(NamedTuple):
    method: str | None  # None: any method
    pattern: str
    handler: Handler
    authenticated: bool = True
    #: Polled all the time (Galaxy asks every job's status every few seconds): a success is
    #: logged at DEBUG, not INFO, so the access log shows what changes things.
    polled: bool = False
    #: Answered without the token when the app sets `metrics_public`, to loopback clients.
    public_metrics: bool = False

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.pattern.strip("/").split("/"))


ROUTES: tuple[Route, ...] = (
    Route("POST", "/jobs", handlers.setup),
    Route("POST", "/jobs/{job_id}/files", handlers.upload),
    Route("GET", "/jobs/{job_id}/files/path", handlers.file_path),
    Route("POST", "/jobs/{job_id}/submit", handlers.submit),
    Route(None, "/jobs/{job_id}/status", handlers.status, polled=True),
    Route("GET", "/jobs/{job_id}/files", handlers.download),
    Route("PUT", "/jobs/{job_id}/cancel", handlers.cancel),
    Route("DELETE", "/jobs/{job_id}", handlers.clean),
    Route("GET", "/cache/status", handlers.cache_status),
    Route("PUT", "/cache", handlers.cache_claim),
    Route("POST", "/cache", handlers.cache_insert),
    Route("GET", "/healthz", handlers.healthz, authenticated=False, polled=True),
    Route("GET", "/metrics", handlers.metrics, polled=True, public_metrics=True),
    Route("GET", "/openapi.json", handlers.openapi_description, authenticated=False),
)


class Match(NamedTuple):
    route: Route
    manager_name: str
    path_vars: dict[str, str]


class RouteTable:
    """Resolves (method, decoded path) to a route, its manager and its path variables."""

    def __init__(self, routes: tuple[Route, ...] = ROUTES):
        self._routes = [(route, route.segments) for route in routes]
        # Only routes with as many segments as the path can match: look those up directly
        # (table order is kept within each group, so the first match still wins).
        self._by_length: dict[int, list[tuple[Route, tuple[str, ...]]]] = {}
        for route, pattern in self._routes:
            self._by_length.setdefault(len(pattern), []).append((route, pattern))

    def match(self, method: str, path: str) -> Match | None:
        segments = path.split("/")
        if not segments or segments[0] != "":
            return None
        segments = segments[1:]
        manager_name = DEFAULT_MANAGER_NAME
        if len(segments) > 2 and segments[0] == "managers":
            if segments[1] == "":
                return None
            manager_name = segments[1]
            segments = segments[2:]
        for route, pattern in self._by_length.get(len(segments), ()):
            path_vars = _match_segments(pattern, segments)
            if path_vars is None:
                continue
            if route.method is not None and route.method != method:
                continue
            return Match(route, manager_name, path_vars)
        return None


def _match_segments(pattern: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    path_vars: dict[str, str] = {}
    for expected, actual in zip(pattern, segments, strict=True):
        if expected.startswith("{") and expected.endswith("}"):
            if actual == "":
                return None
            path_vars[expected[1:-1]] = actual
        elif expected != actual:
            return None
    return path_vars
