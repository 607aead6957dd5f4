"""The default transport (http.client, kept-alive connections) against our own HTTP server:
connection reuse, a connection the server closed while idle, proxies from the environment."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pulsar.client.http_api import HttpApi, RetryPolicy
from pulsar.client.transport import HttpClientTransport
from pulsar.client.transport.base import FileBody, HttpRequest
from pulsar.web.server import Server
from test.support.polling import wait_for
from test.web.support import running_server


class Recorder:
    """Answers every request with what it saw: the client's port (one per connection) and
    the sha256 of the body."""

    def __init__(self) -> None:
        self.client_ports: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.client_ports.append(str(environ.get("REMOTE_PORT")))
        digest = hashlib.sha256()
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
        while remaining:
            block = environ["wsgi.input"].read(min(remaining, 1 << 20))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
        body = digest.hexdigest().encode()
        start_response("200 OK", [("Content-Length", str(len(body))), ("Content-Type", "text/plain")])
        return [body]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder) -> Iterator[Server]:
    with running_server(recorder, threads=2, keepalive_timeout=0.3) as running:
        yield running


def url(server: Server, path: str = "x") -> str:
    return f"http://127.0.0.1:{server.port}/{path}"


def test_requests_share_one_connection(server: Server, recorder: Recorder) -> None:
    transport = HttpClientTransport(timeout=10)
    for _ in range(20):
        response = transport.send(HttpRequest("GET", url(server)))
        assert response.status == 200
        response.read()
        response.close()
    assert len(recorder.client_ports) == 20
    assert len(set(recorder.client_ports)) == 1


def test_unread_response_does_not_poison_the_next_request(server: Server, recorder: Recorder) -> None:
    transport = HttpClientTransport(timeout=10)
    first = transport.send(HttpRequest("GET", url(server)))
    second = transport.send(HttpRequest("GET", url(server)))  # first still open: another connection
    assert second.read() == hashlib.sha256(b"").hexdigest().encode()
    first.close()  # closed unread: that connection is dropped, not reused
    third = transport.send(HttpRequest("POST", url(server), body=b"abc"))
    assert third.read() == hashlib.sha256(b"abc").hexdigest().encode()
    assert len(set(recorder.client_ports)) == 2
    assert recorder.client_ports[2] == recorder.client_ports[1]


def test_connection_closed_by_the_server_while_idle_is_replaced(server: Server, recorder: Recorder,
                                                                 tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pulsar.web.server")
    transport = HttpClientTransport(timeout=10)
    api = HttpApi(url(server, ""), transport, retry=RetryPolicy(max_retries=0))  # no retry above the transport
    api.call("GET", "x")
    # Wait for the server's own word that it closed the idle connection, not for a guess
    # at how long that takes.
    wait_for(lambda: "idle for keepalive_timeout" in caplog.text, timeout=10, what="the idle connection to close")
    data = os.urandom(3 * 1024 * 1024)
    source = tmp_path / "body"
    source.write_bytes(data)
    body = FileBody(str(source))
    response = transport.send(HttpRequest("POST", url(server), body=body))
    assert response.read() == hashlib.sha256(data).hexdigest().encode()
    assert body.sha256 == hashlib.sha256(data).hexdigest()
    assert len(set(recorder.client_ports)) == 2


def test_idle_connection_expires_at_the_keep_alive_timeout_not_a_polling_tick(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        idle_since = time.monotonic()
        assert sock.recv(1) == b""
        closed_after = time.monotonic() - idle_since
    assert 0.25 <= closed_after < 2.0  # keepalive_timeout=0.3: the selector sleeps until that deadline


def test_proxied_origins_go_through_the_proxy_capable_transport(server: Server, monkeypatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9/")
    monkeypatch.setenv("no_proxy", "")
    transport = HttpClientTransport(timeout=5)
    sent: list[str] = []

    class Fallback:
        def send(self, request: HttpRequest) -> Any:
            sent.append(request.url)
            raise RuntimeError("would go through the proxy")

    transport._fallback = Fallback()
    with pytest.raises(RuntimeError, match="through the proxy"):
        transport.send(HttpRequest("GET", url(server)))
    assert sent == [url(server)]
