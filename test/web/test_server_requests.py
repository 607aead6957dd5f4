"""Request parsing and connection handling of the server, checked over real sockets:
the one-step header-block parse must agree with the line-by-line parse it short-cuts,
workers that wait for a connection's next request must not hold up other clients, and
socket timeouts still end stalled requests and downloads."""

from __future__ import annotations

import json
import socket
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

import pytest

from pulsar.web.app import PulsarWsgiApp
from pulsar.web.connection import MAX_HEADERS
from pulsar.web.server import Server
from test.web.fakes import FakeApp
from test.web.support import running_server


def echo_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answers with the request as the server decoded it."""
    seen = {key: value for key, value in environ.items()
            if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH", "PATH_INFO", "QUERY_STRING",
                                                  "REQUEST_METHOD", "SERVER_PROTOCOL")}
    seen["body"] = environ["wsgi.input"].read().decode("latin-1")
    body = json.dumps(seen, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def echo() -> Iterator[Server]:
    with running_server(echo_app, threads=2) as server:
        yield server


def exchange(server: Server, *pieces: bytes) -> bytes:
    """Send `pieces` as separate writes (a pause between them), half-close, read all."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        for index, piece in enumerate(pieces):
            if index:
                time.sleep(0.05)  # let the server see a partial request
            sock.sendall(piece)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split Content-Length framed responses."""
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        found.append((int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return found


REQUEST = (b"POST /a%20b/c?x=1&y=%41 HTTP/1.1\r\nHost: example\r\nX-Repeated: one\r\nContent-Type: text/plain\r\n"
           b"x-repeated: two\r\nX-Spaces:   padded value  \r\nX-Empty:\r\nX_Under: dropped\r\nContent-Length: 5\r\n"
           b"\r\nhello")


def test_header_block_parse_agrees_with_line_by_line_parse(echo: Server) -> None:
    whole = responses(exchange(echo, REQUEST))
    bare_lf = responses(exchange(echo, REQUEST.replace(b"\r\n", b"\n")))
    split = responses(exchange(echo, REQUEST[:60], REQUEST[60:]))  # the block arrives in two parts
    assert len(whole) == len(bare_lf) == len(split) == 1
    assert whole[0][0] == 200
    decoded = json.loads(whole[0][2])
    assert decoded == json.loads(bare_lf[0][2]) == json.loads(split[0][2])
    assert decoded["PATH_INFO"] == "/a b/c" and decoded["QUERY_STRING"] == "x=1&y=%41"
    assert decoded["HTTP_X_REPEATED"] == "one, two"
    assert decoded["HTTP_X_SPACES"] == "padded value" and decoded["HTTP_X_EMPTY"] == ""
    assert "HTTP_X_UNDER" not in decoded and decoded["CONTENT_TYPE"] == "text/plain"
    assert decoded["body"] == "hello"


def test_request_without_headers_and_pipelined_requests(echo: Server) -> None:
    found = responses(exchange(echo, b"GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"
                                     b"GET /three HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert [json.loads(body)["PATH_INFO"] for _, _, body in found] == ["/one", "/two", "/three"]


def test_a_bare_lf_ends_the_headers_even_before_a_later_crlf_crlf(echo: Server) -> None:
    # Line-by-line semantics: the empty line "\n" ends the headers; what follows is the
    # next request, not more headers.
    found = responses(exchange(echo, b"GET /first HTTP/1.1\r\nHost: x\n\nGET /second HTTP/1.1\r\nHost: y\r\n\r\n"))
    assert [json.loads(body)["PATH_INFO"] for _, _, body in found] == ["/first", "/second"]


@pytest.mark.parametrize("count, status", [(MAX_HEADERS, 200), (MAX_HEADERS + 1, 431)])
def test_header_count_limit(echo: Server, count: int, status: int) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % index for index in range(count))
    for request in (b"GET / HTTP/1.1\r\n" + headers + b"\r\n",
                    (b"GET / HTTP/1.1\r\n" + headers + b"\r\n").replace(b"\r\n", b"\n")):
        assert exchange(echo, request).startswith(b"HTTP/1.1 %d " % status)


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n Folded: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n: empty name\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nX-Long: " + b"y" * (65 * 1024) + b"\r\n\r\n", 431),
])
def test_malformed_headers_are_rejected(echo: Server, request_bytes: bytes, status: int) -> None:
    data = exchange(echo, request_bytes)
    assert data.startswith(b"HTTP/1.1 %d " % status)
    assert b'"error"' in data


def test_responses_carry_a_current_date(echo: Server) -> None:
    [(status, headers, _)] = responses(exchange(echo, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert status == 200 and headers["server"].startswith("pulsar/")
    assert abs(parsedate_to_datetime(headers["date"]).timestamp() - time.time()) < 120


def test_back_to_back_requests_and_idle_connections_share_few_workers(wsgi: PulsarWsgiApp) -> None:
    # Two workers: one may keep a busy connection; idle connections are handed back.
    with running_server(wsgi, threads=2) as server:
        idle = []
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            for _ in range(3):  # back to back on the same connection
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_one(sock)[0] == 200
            idle.append(sock)
        other = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        other.sendall(b"GET /jobs/1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_one(other)[0] == 200
        for sock in [*idle, other]:  # every parked connection still works
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_one(sock)[0] == 200
            sock.close()


def test_keep_alive_linger_can_be_switched_off(wsgi: PulsarWsgiApp) -> None:
    with running_server(wsgi, threads=2, keepalive_linger=0) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            for _ in range(3):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_one(sock)[0] == 200


def test_stalled_request_head_is_dropped_after_the_header_timeout(wsgi: PulsarWsgiApp) -> None:
    with running_server(wsgi, threads=1, header_timeout=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            assert sock.recv(1024) == b""  # the server gave up and closed
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_one(sock)[0] == 200


def test_download_to_a_client_that_stops_reading_frees_the_worker(wsgi: PulsarWsgiApp, fake_app: FakeApp) -> None:
    path = output_path(fake_app, "big.bin")
    block = b"z" * (1024 * 1024)
    with open(path, "wb") as handle:
        for _ in range(64):  # far more than the socket buffers hold
            handle.write(block)
    with running_server(wsgi, threads=1, request_timeout=0.5) as server:
        stalled = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        try:
            stalled.sendall(b"GET /jobs/1/files?name=big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            # The only worker is stuck in the transfer until the send timeout ends it.
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_one(sock)[0] == 200
        finally:
            stalled.close()


def read_one(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(head.split()[1]), body


def output_path(fake_app: FakeApp, name: str) -> Path:
    path = fake_app.services["_default_"].root / "1" / "output" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_threads_are_not_left_behind(wsgi: PulsarWsgiApp) -> None:
    before = {thread.ident for thread in threading.enumerate()}
    with running_server(wsgi, threads=3) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_one(sock)[0] == 200
    assert {thread.ident for thread in threading.enumerate()} <= before
