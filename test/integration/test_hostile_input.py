"""Hostile input over HTTP: each gets its 4xx with a JSON error body, and nothing outside the
staging root changes (checked by a snapshot of the surrounding file system)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from test.support.http import Api, raw_request
from test.support.server import start_server


def snapshot(root: Path, skip: tuple[Path, ...]) -> dict[str, tuple[int, str]]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        for name in filenames:
            path = Path(dirpath, name)
            if path in skip or path.suffix in (".log", ".pid"):
                continue
            if path.is_symlink():
                found[str(path)] = (-1, os.readlink(path))
            else:
                found[str(path)] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not touch")
    (root / "sibling.txt").write_text("neighbour")
    config_dir = root / "server"
    server = start_server(config_dir)
    skip = (config_dir / "staging", config_dir / "persisted")
    before = snapshot(root, skip)
    yield server, Api(server.url, server.token), outside
    server.stop()
    assert snapshot(root, skip) == before, "something outside the staging root changed"


def _error(response_body: bytes) -> dict:
    document = json.loads(response_body)
    assert set(document) >= {"error", "detail"}, document
    return document


def _check(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    return _error(response.content)


@pytest.mark.parametrize("job_id", ["..", ".", ".hidden", "a\\b", "x" * 200, "\x01", "a b"])
def test_bad_job_ids_are_rejected_on_every_route(hostile, job_id):
    _, api, _ = hostile
    quoted = job_id.replace("\\", "%5C").replace("\x01", "%01").replace(" ", "%20")
    _check(api.request("POST", "jobs", job_id=job_id), 400)
    for method, path in (
        ("POST", f"jobs/{quoted}/files"),
        ("GET", f"jobs/{quoted}/status"),
        ("PUT", f"jobs/{quoted}/cancel"),
        ("DELETE", f"jobs/{quoted}"),
        ("GET", f"jobs/{quoted}/files"),
    ):
        status, _, body = raw_request(api.url, method, f"/{path}?name=x&private_token={api.token}", body=b"")
        assert status in (400, 404), (method, path, status, body[:200])
        _error(body)


def test_dot_dot_job_directory_cannot_be_deleted(hostile):
    server, api, outside = hostile
    status, _, body = raw_request(api.url, "DELETE", f"/jobs/..?private_token={api.token}")
    assert status in (400, 404)
    status, _, body = raw_request(api.url, "DELETE", f"/jobs/%2E%2E?private_token={api.token}")
    assert status in (400, 404)
    assert (outside / "secret.txt").exists()


@pytest.mark.parametrize(
    "name",
    ["../../outside/x", "../x", "a/../../x", "x\x00y", "n" * 100_000],
)
def test_hostile_file_names(hostile, name):
    server, api, _ = hostile
    api.setup("names")
    job_dir = str(Path(server.config_dir) / "staging" / "names") + "/"
    for type_ in ("input", "config", "tool", "unstructured", "metadata", "jobdir"):
        response = api.request("POST", "jobs/names/files", body=b"payload", name=name, type=type_)
        if response.status_code == 414:
            continue  # a 100 KB name may exceed the request-line limit: also a clean refusal
        if type_ in ("config", "jobdir") and response.status_code == 200:
            # flat types keep only the last component, as the protocol says: still inside
            assert response.json()["path"].startswith(job_dir), response.text
            continue
        assert response.status_code == 400, (type_, name[:40], response.status_code, response.text[:200])
        _error(response.content)
    response = api.request("GET", "jobs/names/files", name=name, type="output")
    assert response.status_code in (400, 404, 414)


def test_absolute_names_stay_inside(hostile):
    server, api, _ = hostile
    api.setup("abs")
    path = api.upload("abs", "/etc/passwd", b"mine")["path"]
    assert path.startswith(str(Path(server.config_dir) / "staging" / "abs" / "inputs"))


def test_symlinks_planted_by_a_job(hostile):
    _, api, outside = hostile
    api.setup("links")
    api.submit(
        "links",
        f"ln -s {outside}/secret.txt link.txt; ln -s {outside} ../outputs/escape; "
        f"ln -s {outside} ../inputs/escape; echo ok > plain.txt",
    )
    status = api.poll_until_terminal("links")
    assert status["status"] == "complete"
    assert "link.txt" not in status["working_directory_contents"]
    for name, type_ in (("link.txt", "output_workdir"), ("escape/secret.txt", "output")):
        response = api.request("GET", "jobs/links/files", name=name, type=type_)
        assert response.status_code in (400, 404), (name, response.status_code)
        _error(response.content)
    response = api.request("POST", "jobs/links/files", body=b"overwrite", name="escape/secret.txt", type="input")
    _check(response, 400)
    assert api.download("links", "plain.txt", "output_workdir") == b"ok\n"
    assert api.request("DELETE", "jobs/links").status_code == 200
    assert (outside / "secret.txt").read_text() == "do not touch"


def test_invalid_submit_parameters(hostile):
    _, api, _ = hostile
    api.setup("params")
    for key in ("env", "remote_staging", "params", "dependencies_description", "submit_extras"):
        response = api.request("POST", "jobs/params/submit", command_line="true", **{key: "{broken"})
        assert _check(response, 400)["detail"]
    _check(api.request("POST", "jobs/params/submit"), 400)  # no command_line


def test_missing_arguments(hostile):
    _, api, _ = hostile
    _check(api.request("POST", "jobs"), 400)
    api.setup("missing")
    _check(api.request("GET", "jobs/missing/files"), 400)
    _check(api.request("GET", "jobs/missing/files", name="nothing.dat"), 404)
    _check(api.request("POST", "jobs/missing/files", body=b"x", type="nonsense", name="a"), 400)


def test_wrong_token(hostile):
    server, api, _ = hostile
    wrong = Api(server.url, "not-the-token")
    _check(wrong.request("POST", "jobs", job_id="t"), 401)
    _check(Api(server.url, None).request("GET", "jobs/t/status"), 401)
    assert not (Path(server.config_dir) / "staging" / "t").exists()


def test_unknown_route_and_manager(hostile):
    _, api, _ = hostile
    _check(api.request("GET", "nowhere"), 404)
    _check(api.request("POST", "managers/nope/jobs", job_id="1"), 404)


# --- issue 11 item 4: bad input is a 4xx with a JSON reason, never a 500 with a traceback ---


def test_upload_without_type_is_refused(hostile):
    server, api, _ = hostile
    api.setup("notype")
    document = _check(api.request("POST", "jobs/notype/files", body=b"payload", name="a.txt"), 400)
    assert "'type'" in document["detail"]
    assert not (Path(server.config_dir) / "staging" / "notype" / "inputs" / "a.txt").exists()


@pytest.mark.parametrize("name", ["n" * 256, "a/" + "n" * 300, "/".join(["d" * 250] * 20), "é" * 200])
def test_names_too_long_for_the_file_system(hostile, name):
    """Components over NAME_MAX (255 bytes; "é" is two), paths over PATH_MAX: 400/414 on
    every route that takes a name, never a 500."""
    server, api, _ = hostile
    api.setup("longnames")
    for type_ in ("input", "config", "tool", "unstructured", "metadata", "jobdir", "workdir"):
        response = api.request("POST", "jobs/longnames/files", body=b"x", name=name, type=type_)
        assert response.status_code in (400, 414), (type_, response.status_code, response.text[:200])
        _error(response.content)
    for type_ in ("output", "output_workdir", "output_metadata", "output_jobdir"):
        response = api.request("GET", "jobs/longnames/files", name=name, type=type_)
        assert response.status_code in (400, 404, 414), (type_, response.status_code)
        _error(response.content)
    response = api.request("GET", "jobs/longnames/files/path", name=name, type="input")
    assert response.status_code in (400, 414)
    _error(response.content)


@pytest.mark.parametrize("key,value", [("env", "[" * 100_000), ("params", '{"a":' * 50_000),
                                       ("submit_extras", '{"x":[' * 50_000), ("remote_staging", "[" * 1001)])
def test_deep_json_parameters(hostile, key, value):
    _, api, _ = hostile
    api.setup("deepjson")
    document = _check(api.request("POST", "jobs/deepjson/submit", command_line="true", **{key: value}), 400)
    assert key in document["detail"]
    assert api.status("deepjson")["status"] != "running"


def test_huge_json_parameter(hostile):
    """A JSON argument travels in the request target: beyond max_request_line it is 414
    (URI too long), with the JSON body, before anything is decoded."""
    _, api, _ = hostile
    api.setup("hugejson")
    huge = json.dumps({"blob": "x" * 2_000_000})
    response = api.request("POST", "jobs/hugejson/submit", command_line="true", params=huge)
    assert response.status_code in (413, 414)
    _error(response.content)


@pytest.mark.parametrize("key,value", [("params", "[1]"), ("env", '[{"name": "A B", "value": "x"}]'),
                                       ("env", '[{"name": "A", "value": {"nested": 1}}]'), ("params", "nul\x00l")])
def test_invalid_values(hostile, key, value):
    _, api, _ = hostile
    api.setup("invalid")
    _check(api.request("POST", "jobs/invalid/submit", command_line="true", **{key: value}), 400)


def test_forged_log_lines_and_no_tracebacks(hostile):
    """Client text in the log is escaped (a %0A in a path or a name cannot start a line of
    its own), and nothing above -- long names, deep or huge JSON -- logged a traceback."""
    server, api, _ = hostile
    raw_request(api.url, "GET", f"/jobs/x%0A2026-01-01%20FORGED%20entry/status?private_token={api.token}")
    api.request("POST", "jobs/x/files", body=b"x", name="a\nFORGED name line", type="nonsense")
    text = server.log_text()
    assert not [line for line in text.splitlines() if line.startswith(("2026-01-01", "FORGED"))], "a line was forged"
    assert "FORGED" in text  # the requests were logged, escaped
    assert "Traceback" not in text
    assert api.token not in text
