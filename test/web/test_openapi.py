"""The OpenAPI description (`pulsar.web.openapi`) and the route table agree: every route is
described, bare and under a manager, and nothing else is; every argument a handler reads
is a described parameter; every status a request can get is a described response whose
JSON body fits its schema.  The server serves the description at `/openapi.json` without
a token.  (test_schemathesis.py holds a live server to it with generated requests.)"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import jsonschema_rs
import pytest

from pulsar.core import PulsarApp
from pulsar.errors import PulsarError
from pulsar.web import openapi
from pulsar.web.args import Args
from pulsar.web.routes import ROUTES
from pulsar.web.wsgi import build_wsgi_app
from test.web.support import WsgiResult, call

TOKEN = "t0ken"
DOCUMENT = openapi.document()


def described(method: str, pattern: str) -> dict[str, Any]:
    return DOCUMENT["paths"][pattern][method.lower()]


def test_every_route_is_described_once() -> None:
    assert {(route.method, route.pattern) for route in ROUTES} == set(openapi.OPERATIONS)


def test_every_route_is_described_bare_and_under_a_manager_and_nothing_else() -> None:
    expected = {
        (prefix + route.pattern, verb)
        for route in ROUTES for prefix in ("", openapi.MANAGER_PREFIX) for verb in openapi.methods_of(route.method)
    }
    actual = {(path, verb) for path, item in DOCUMENT["paths"].items() for verb in item}
    assert actual == expected


def test_operation_ids_are_unique_and_links_name_real_operations() -> None:
    operations = [op for item in DOCUMENT["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    for op in operations:
        for response in op["responses"].values():
            for link in response.get("links", {}).values():
                assert link["operationId"] in ids


def test_path_variables_are_described_parameters() -> None:
    for path, item in DOCUMENT["paths"].items():
        variables = {segment[1:-1] for segment in path.split("/") if segment.startswith("{")}
        for op in item.values():
            assert {p["name"] for p in op["parameters"] if p["in"] == "path"} == variables, path


def test_every_error_class_has_a_described_status() -> None:
    import pulsar.jobs.jobfs  # noqa: F401  (error classes defined outside pulsar.errors)
    import pulsar.web.request  # noqa: F401

    def subclasses(cls: type) -> Iterator[type]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    statuses = {int(code) for item in DOCUMENT["paths"].values() for op in item.values() for code in op["responses"]}
    assert {cls.http_status for cls in subclasses(PulsarError)} <= statuses


# -- a real app, every route called: what handlers read, what they answer ---------------


@pytest.fixture
def wsgi(tmp_path: Path) -> Iterator[Any]:
    app = PulsarApp(staging_directory=str(tmp_path / "staging"), persistence_directory=str(tmp_path / "persisted"),
                    private_token=TOKEN, file_cache_dir=str(tmp_path / "cache"))
    try:
        yield build_wsgi_app(app)
    finally:
        app.shutdown()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argument name a handler (or the service it calls) asks `Args` for."""
    names: list[str] = []
    required, optional, getitem = Args.required, Args.optional, Args.__getitem__

    def record_required(self: Args, name: str) -> str:
        names.append(name)
        return required(self, name)

    def record_optional(self: Args, name: str, default: str | None = None) -> str | None:
        names.append(name)
        return optional(self, name, default)

    def record_getitem(self: Args, key: str) -> str:
        names.append(key)
        return getitem(self, key)

    monkeypatch.setattr(Args, "required", record_required)
    monkeypatch.setattr(Args, "optional", record_optional)
    monkeypatch.setattr(Args, "__getitem__", record_getitem)
    return names


SUBMIT_ARGS = {
    "command_line": "true", "params": "{}", "dependencies_description": "null", "setup_params": "{}",
    "remote_staging": "{}", "env": "[]", "submit_extras": '{"touch_outputs": ["out.txt"]}',
    "dynamic_file_sources": "[]", "token_endpoint": "null",
}

#: (method, route pattern, path, query, body, headers): a request for every route, in job order.
CALLS: list[tuple[str, str, str, dict[str, str], bytes, dict[str, str]]] = [
    ("POST", "/jobs", "/jobs", {"job_id": "7", "tool_id": "cat1", "tool_version": "1.0"}, b"", {}),
    ("POST", "/jobs/{job_id}/files", "/jobs/7/files", {"name": "in.txt", "type": "input"}, b"data", {}),
    ("GET", "/jobs/{job_id}/files/path", "/jobs/7/files/path", {"name": "out.txt", "type": "output"}, b"", {}),
    ("POST", "/jobs/{job_id}/submit", "/jobs/7/submit", SUBMIT_ARGS, b"", {}),
    (None, "/jobs/{job_id}/status", "/jobs/7/status", {}, b"", {}),  # type: ignore[list-item]
    ("GET", "/jobs/{job_id}/files", "/jobs/7/files", {"name": "out.txt", "type": "output"}, b"",
     {"Want-Repr-Digest": "sha-256=1"}),
    ("PUT", "/jobs/{job_id}/cancel", "/jobs/7/cancel", {}, b"", {}),
    ("DELETE", "/jobs/{job_id}", "/jobs/7", {}, b"", {}),
    ("GET", "/healthz", "/healthz", {}, b"", {}),
    ("GET", "/openapi.json", "/openapi.json", {}, b"", {}),
    ("PUT", "/cache", "/cache", {"path": "/data/f", "size": "4", "mtime": "1"}, b"", {}),
    ("POST", "/cache", "/cache", {"path": "/data/f", "size": "4", "mtime": "1"}, b"data", {}),
    ("GET", "/cache/status", "/cache/status", {"path": "/data/f", "size": "4", "mtime": "1"}, b"", {}),
    ("GET", "/metrics", "/metrics", {}, b"", {}),
]


def test_the_calls_cover_every_route() -> None:
    assert {(method, pattern) for method, pattern, *_ in CALLS} == set(openapi.OPERATIONS)


def request(wsgi: Any, method: str, path: str, query: dict[str, str], body: bytes = b"",
            headers: dict[str, str] | None = None, token: str | None = TOKEN) -> WsgiResult:
    full = dict(query, private_token=token) if token is not None else dict(query)
    return call(wsgi, method, path, urllib.parse.urlencode(full), body, headers or {})


def test_every_argument_a_handler_reads_is_described(wsgi: Any, reads: list[str]) -> None:
    for method, pattern, path, query, body, headers in CALLS:
        for prefix in ("", "/managers/_default_"):
            reads.clear()
            result = request(wsgi, method or "GET", prefix + path, query, body, headers)
            assert result.status < 300, (method, path, result.body)
            op = described(method or "GET", (openapi.MANAGER_PREFIX if prefix else "") + pattern)
            names = {p["name"] for p in op["parameters"]}
            assert set(reads) <= names, (method, pattern, set(reads) - names)


def conforms(method: str, pattern: str, result: WsgiResult) -> None:
    """`result` is a described response of the operation, and its JSON body fits the schema."""
    op = described(method, pattern)
    assert str(result.status) in op["responses"], (method, pattern, result.status, result.body)
    response = op["responses"][str(result.status)]
    if "$ref" in response:
        response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    content = response.get("content", {})
    media_type = result.headers.get("content-type", "").split(";")[0]
    if not result.body and not content:
        return
    assert media_type in content, (method, pattern, result.status, media_type)
    if media_type == "application/json":
        schema = dict(content[media_type]["schema"], components=DOCUMENT["components"])
        jsonschema_rs.validator_for(schema).validate(json.loads(result.body))


def test_every_call_of_a_job_conforms(wsgi: Any) -> None:
    for method, pattern, path, query, body, headers in CALLS:
        conforms(method or "GET", pattern, request(wsgi, method or "GET", path, query, body, headers))


#: (method, pattern, path, query, headers, token, expected status): the errors each route can answer.
ERRORS: list[tuple[str, str, str, dict[str, str], dict[str, str], str | None, int]] = [
    ("POST", "/jobs", "/jobs", {}, {}, TOKEN, 400),
    ("POST", "/jobs", "/jobs", {"job_id": "1"}, {}, None, 401),
    ("POST", "/jobs", "/jobs", {"job_id": "1"}, {}, "wrong", 401),
    ("POST", "/jobs", "/jobs", {"job_id": ".."}, {}, TOKEN, 400),
    ("POST", "/jobs/{job_id}/files", "/jobs/1/files", {"name": "a", "type": "nope"}, {}, TOKEN, 400),
    ("POST", "/jobs/{job_id}/files", "/jobs/1/files", {"name": "../a", "type": "input"}, {}, TOKEN, 400),
    ("POST", "/jobs/{job_id}/files", "/jobs/1/files", {"name": "a" * 300, "type": "input"}, {}, TOKEN, 400),
    ("GET", "/jobs/{job_id}/files/path", "/jobs/1/files/path", {"name": "a"}, {}, TOKEN, 400),
    ("POST", "/jobs/{job_id}/submit", "/jobs/1/submit", {"command_line": "true"}, {}, TOKEN, 404),
    ("POST", "/jobs/{job_id}/submit", "/jobs/1/submit", {"command_line": " "}, {}, TOKEN, 400),
    ("POST", "/jobs/{job_id}/submit", "/jobs/1/submit", {"command_line": "true", "env": "{"}, {}, TOKEN, 400),
    ("POST", "/jobs/{job_id}/submit", "/jobs/1/submit", {"command_line": "true", "remote_staging": '{"setup": [{}]}'},
     {}, TOKEN, 400),
    ("GET", "/jobs/{job_id}/status", "/jobs/1/status", {}, {}, TOKEN, 200),  # unknown: lost
    ("GET", "/jobs/{job_id}/files", "/jobs/1/files", {"name": "nope"}, {}, TOKEN, 404),
    ("GET", "/jobs/{job_id}/files", "/jobs/1/files", {"name": "nope", "type": "bad"}, {}, TOKEN, 400),
    ("PUT", "/jobs/{job_id}/cancel", "/jobs/1/cancel", {}, {}, None, 401),
    ("DELETE", "/jobs/{job_id}", "/jobs/..", {}, {}, TOKEN, 400),
    ("GET", "/healthz", "/healthz", {}, {}, None, 200),
    ("GET", "/openapi.json", "/openapi.json", {}, {}, None, 200),
    ("GET", "/cache/status", "/cache/status", {}, {}, TOKEN, 400),
    ("POST", "/cache", "/cache", {"path": "/f", "sha256": "0" * 64}, {}, TOKEN, 400),
    ("GET", "/metrics", "/metrics", {}, {}, None, 401),
]


@pytest.mark.parametrize("method, pattern, path, query, headers, token, status", ERRORS)
def test_errors_are_described(wsgi: Any, method: str, pattern: str, path: str, query: dict[str, str],
                              headers: dict[str, str], token: str | None, status: int) -> None:
    result = request(wsgi, method, path, query, headers=headers, token=token)
    assert result.status == status, result.body
    conforms(method, pattern, result)
    managed = request(wsgi, method, "/managers/nope" + path, query, headers=headers, token=token)
    conforms(method, openapi.MANAGER_PREFIX + pattern, managed)


def test_download_answers_are_described(wsgi: Any) -> None:
    assert request(wsgi, "POST", "/jobs", {"job_id": "9"}).status == 200
    assert request(wsgi, "POST", "/jobs/9/files", {"name": "o", "type": "output"}, b"0123456789").status == 200
    pattern = "/jobs/{job_id}/files"
    whole = request(wsgi, "GET", "/jobs/9/files", {"name": "o"})
    conforms("GET", pattern, whole)
    for headers, status in [({"Range": "bytes=2-4"}, 206), ({"Range": "bytes=20-"}, 416),
                            ({"If-None-Match": whole.headers["etag"]}, 304)]:
        result = request(wsgi, "GET", "/jobs/9/files", {"name": "o"}, headers=headers)
        assert result.status == status
        conforms("GET", pattern, result)


def test_upload_without_a_length_is_described(wsgi: Any) -> None:
    result = call(wsgi, "POST", "/jobs/1/files", f"name=a&type=input&private_token={TOKEN}", b"x",
                  content_length=False, HTTP_TRANSFER_ENCODING="chunked")
    assert result.status == 411
    conforms("POST", "/jobs/{job_id}/files", result)


def test_the_server_serves_the_description_without_a_token(wsgi: Any) -> None:
    for path in ("/openapi.json", "/managers/any/openapi.json"):
        result = request(wsgi, "GET", path, {}, token=None)
        assert result.status == 200
        assert result.json() == DOCUMENT


def test_the_description_is_valid_openapi_3_1() -> None:
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR  # type: ignore[attr-defined]

    OPENAPI_31_VALIDATOR.validate(DOCUMENT)
