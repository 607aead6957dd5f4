from __future__ import annotations

import pytest

from pulsar.web import handlers
from pulsar.web.routes import ROUTES, RouteTable

TABLE = RouteTable()

CASES = [
    ("POST", "/jobs", handlers.setup, {}),
    ("POST", "/jobs/42/files", handlers.upload, {"job_id": "42"}),
    ("GET", "/jobs/42/files/path", handlers.file_path, {"job_id": "42"}),
    ("POST", "/jobs/42/submit", handlers.submit, {"job_id": "42"}),
    ("GET", "/jobs/42/status", handlers.status, {"job_id": "42"}),
    ("GET", "/jobs/42/files", handlers.download, {"job_id": "42"}),
    ("PUT", "/jobs/42/cancel", handlers.cancel, {"job_id": "42"}),
    ("DELETE", "/jobs/42", handlers.clean, {"job_id": "42"}),
    ("GET", "/healthz", handlers.healthz, {}),
    ("GET", "/openapi.json", handlers.openapi_description, {}),
]


@pytest.mark.parametrize("method, path, handler, path_vars", CASES)
def test_bare_routes_use_the_default_manager(method: str, path: str, handler: object, path_vars: dict[str, str]) -> None:
    match = TABLE.match(method, path)
    assert match is not None
    assert match.route.handler is handler
    assert match.manager_name == "_default_"
    assert match.path_vars == path_vars


@pytest.mark.parametrize("method, path, handler, path_vars", CASES)
def test_every_route_exists_under_a_named_manager(method: str, path: str, handler: object,
                                                   path_vars: dict[str, str]) -> None:
    match = TABLE.match(method, "/managers/cluster" + path)
    assert match is not None
    assert match.route.handler is handler
    assert match.manager_name == "cluster"
    assert match.path_vars == path_vars


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"])
def test_status_accepts_any_method(method: str) -> None:
    match = TABLE.match(method, "/jobs/1/status")
    assert match is not None and match.route.handler is handlers.status


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/jobs"),  # wrong method
        ("PUT", "/jobs/1/files"),
        ("POST", "/jobs/1/cancel"),
        ("GET", "/jobs/1"),
        ("HEAD", "/healthz"),
        ("GET", "/jobs//status"),  # empty variable
        ("GET", "/jobs/1/status/"),  # anchored: no trailing slash
        ("GET", "/nope"),
        ("GET", "/managers//jobs/1/status"),
        ("GET", "/managers/x"),
        ("GET", "jobs/1/status"),
        ("POST", "/jobs/a/b/submit"),
    ],
)
def test_no_match(method: str, path: str) -> None:
    assert TABLE.match(method, path) is None


def test_job_ids_are_single_segments_with_any_characters() -> None:
    match = TABLE.match("GET", "/jobs/4711_2/status")
    assert match is not None and match.path_vars == {"job_id": "4711_2"}


def test_table_lists_each_route_once() -> None:
    keys = [(route.method, route.pattern) for route in ROUTES]
    assert len(keys) == len(set(keys))
    assert [route.pattern for route in ROUTES if not route.authenticated] == ["/healthz", "/openapi.json"]
