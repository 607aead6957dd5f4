"""Transport and HttpApi behaviour against a small WSGI app that can misbehave on purpose.

Each test runs three ways: `requests` and `urllib` over real HTTP on loopback (the app is
served by wsgiref in a thread), and the in-process WSGI transport.  The app plays faults
the real server never produces (truncated bodies, wrong digests, 503 storms).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import wsgiref.simple_server
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs

import pytest

from pulsar.client.exceptions import IntegrityError, OutputNotFound, PulsarClientTransportError
from pulsar.client.http_api import HttpApi, RetryPolicy
from pulsar.client.transport import HttpClientTransport, UrllibTransport, WsgiTransport, get_transport
from pulsar.client.transport.requests_transport import RequestsTransport

FAST_RETRY = RetryPolicy(max_retries=3, interval_start=0.01, interval_step=0.01, interval_max=0.02)


#: Several pipeline blocks and not a multiple of any block size.
BIG = bytes(range(256)) * (20 * 1024 + 3)


class MisbehavingApp:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seen: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        path = environ["PATH_INFO"]
        query = {k: v[-1] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
        self.calls[path] += 1
        self.seen.append({"path": path, "query": query, "content_length": environ.get("CONTENT_LENGTH"),
                          "chunked": "HTTP_TRANSFER_ENCODING" in environ})

        def reply(status: str, body: bytes, headers: list[tuple[str, str]] | None = None,
                  length: int | None = None) -> Iterator[bytes]:
            start_response(status, [("Content-Length", str(len(body) if length is None else length))] + (headers or []))
            return iter([body])

        if path == "/jobs/1/files" and environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            digest, size = hashlib.sha256(), 0
            while size < length:
                block = environ["wsgi.input"].read(min(65536, length - size))
                if not block:
                    break
                digest.update(block)
                size += len(block)
            sha = "0" * 64 if query.get("name") == "corrupt" else digest.hexdigest()
            return reply("200 OK", json.dumps({"path": "/srv/" + query["name"], "size": size, "sha256": sha}).encode())
        if path == "/jobs/1/files":
            name = query["name"]
            if name == "missing":
                return reply("404 Not Found", b'{"error": "not_found", "detail": "output file missing does not exist"}')
            if name == "truncated":
                return reply("200 OK", b"x" * 10, length=1000)
            data = BIG if name == "big" else (name * 1000).encode()
            sha = hashlib.sha256(data).hexdigest() if name != "baddigest" else "1" * 64
            return reply("200 OK", data, [("sha256", sha)])
        if path == "/flaky":
            if self.calls[path] <= int(query["fail"]):
                return reply("503 Service Unavailable", b"<html>busy</html>")
            return reply("200 OK", b'{"ok": true}')
        if path == "/forbidden":
            return reply("403 Forbidden", b'{"error": "forbidden", "detail": "token mismatch"}')
        return reply("404 Not Found", b"")


@pytest.fixture(scope="module")
def app() -> MisbehavingApp:
    return MisbehavingApp()


class _Quiet(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(app: MisbehavingApp) -> Iterator[str]:
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["http", "requests", "urllib", "wsgi"])
def api(request: pytest.FixtureRequest, app: MisbehavingApp, served: str) -> HttpApi:
    if request.param == "wsgi":
        return HttpApi("http://in-process/", WsgiTransport(app), private_token="tok", retry=FAST_RETRY)
    return HttpApi(served, get_transport(request.param, timeout=10), private_token="tok", retry=FAST_RETRY)


def test_upload_streams_with_content_length_and_token(api: HttpApi, app: MisbehavingApp, tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    reply = api.upload("jobs/1/files", {"name": "data.bin", "type": "input"}, file_path=str(source))
    assert reply["size"] == source.stat().st_size
    seen = app.seen[-1]
    assert seen["content_length"] == str(source.stat().st_size) and not seen["chunked"]
    assert seen["query"]["private_token"] == "tok"


def test_empty_upload(api: HttpApi, app: MisbehavingApp, tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.write_bytes(b"")
    assert api.upload("jobs/1/files", {"name": "empty", "type": "input"}, file_path=str(source))["size"] == 0
    assert app.seen[-1]["content_length"] == "0" and not app.seen[-1]["chunked"]


def test_upload_digest_mismatch_is_an_integrity_error(api: HttpApi, tmp_path: Path) -> None:
    source = tmp_path / "corrupt"
    source.write_bytes(b"abc")
    with pytest.raises(IntegrityError):
        api.upload("jobs/1/files", {"name": "corrupt", "type": "input"}, file_path=str(source))


def test_download_verifies_and_renames(api: HttpApi, tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.dat"
    result = api.download("jobs/1/files", {"name": "good"}, str(target))
    assert target.read_bytes() == b"good" * 1000
    assert result.size == 4000
    assert os.listdir(target.parent) == ["out.dat"]


def test_big_download_is_complete_and_the_next_call_works(api: HttpApi, tmp_path: Path) -> None:
    for attempt in range(2):
        target = tmp_path / f"big{attempt}.dat"
        result = api.download("jobs/1/files", {"name": "big"}, str(target))
        assert result.size == len(BIG) and target.read_bytes() == BIG
    assert api.call_json("GET", "flaky", {"fail": "0"}) == {"ok": True}


@pytest.mark.parametrize("name, error", [("truncated", PulsarClientTransportError), ("baddigest", IntegrityError)])
def test_bad_download_leaves_nothing(api: HttpApi, tmp_path: Path, name: str, error: type[Exception]) -> None:
    target = tmp_path / "out.dat"
    target.write_bytes(b"previous")
    with pytest.raises(error):
        api.download("jobs/1/files", {"name": name}, str(target))
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["out.dat"]


def test_missing_output_is_404_with_detail_and_not_retried(api: HttpApi, app: MisbehavingApp, tmp_path: Path) -> None:
    before = app.calls["/jobs/1/files"]
    with pytest.raises(OutputNotFound) as info:
        api.download("jobs/1/files", {"name": "missing"}, str(tmp_path / "m"))
    assert info.value.transport_code == 404
    assert "output file missing does not exist" in str(info.value)
    assert app.calls["/jobs/1/files"] == before + 1
    assert not (tmp_path / "m").exists()


def test_transient_errors_are_retried(api: HttpApi, app: MisbehavingApp) -> None:
    app.calls["/flaky"] = 0
    assert api.call_json("GET", "flaky", {"fail": 2}) == {"ok": True}
    assert app.calls["/flaky"] == 3
    app.calls["/flaky"] = 0
    with pytest.raises(PulsarClientTransportError) as info:
        api.call_json("GET", "flaky", {"fail": 100})
    assert info.value.transport_code == 503 and info.value.transient
    assert app.calls["/flaky"] == 4  # 1 + max_retries


def test_permanent_error_fails_at_once(api: HttpApi, app: MisbehavingApp) -> None:
    before = app.calls["/forbidden"]
    with pytest.raises(PulsarClientTransportError) as info:
        api.call("GET", "forbidden")
    assert info.value.code == PulsarClientTransportError.NOT_200
    assert "token mismatch" in str(info.value) and not info.value.transient
    assert app.calls["/forbidden"] == before + 1


@pytest.mark.parametrize("name", ["http", "requests", "urllib"])
def test_connection_refused(name: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = HttpApi(f"http://127.0.0.1:{port}/", get_transport(name, timeout=5), retry=RetryPolicy(max_retries=0))
    with pytest.raises(PulsarClientTransportError) as info:
        api.call("GET", "anything")
    assert info.value.code == PulsarClientTransportError.CONNECTION_REFUSED


def test_get_transport_names() -> None:
    assert isinstance(get_transport(None), HttpClientTransport)
    assert isinstance(get_transport("http"), HttpClientTransport)
    assert isinstance(get_transport("requests"), RequestsTransport)
    assert isinstance(get_transport("curl"), RequestsTransport)
    assert isinstance(get_transport("urllib", timeout="5"), UrllibTransport)
    with pytest.raises(ValueError):
        get_transport("carrier-pigeon")


def test_curl_transport_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Galaxy passes transport=None unless configured; the reference then reads
    PULSAR_CURL_TRANSPORT.  Ours serves "curl" with requests."""
    from pulsar.client.transport.requests_transport import RequestsTransport

    monkeypatch.delenv("PULSAR_CURL_TRANSPORT", raising=False)
    assert isinstance(get_transport(None), HttpClientTransport)
    monkeypatch.setenv("PULSAR_CURL_TRANSPORT", "1")
    assert isinstance(get_transport(None), RequestsTransport)
    assert isinstance(get_transport("http"), HttpClientTransport)  # a configured name wins
    monkeypatch.setenv("PULSAR_CURL_TRANSPORT", "0")
    assert isinstance(get_transport(None), HttpClientTransport)
