"""The HTTP/1.1 server on 127.0.0.1, with the real WSGI app over the fake service."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

import pytest

from pulsar.web.app import PulsarWsgiApp
from pulsar.web.server import Server
from test.web.fakes import FakeApp
from test.web.support import running_server


@pytest.fixture
def server(wsgi: PulsarWsgiApp) -> Iterator[Server]:
    with running_server(wsgi, threads=4) as server:
        yield server


def connect(server: Server) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)


def request(server: Server, method: str, url: str, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = connect(server)
    try:
        headers = headers or {}
        chunked = headers.get("Transfer-Encoding") == "chunked"
        connection.request(method, url, body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def raw_exchange(server: Server, data: bytes) -> bytes:
    """Send raw bytes, half-close, and read everything the server answers."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def read_response(sock_file: Any) -> tuple[int, dict[str, str], bytes]:
    """Read one Content-Length framed response from a socket's file object."""
    status_line = sock_file.readline()
    status = int(status_line.split()[1])
    headers = {}
    while (line := sock_file.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = sock_file.read(int(headers.get("content-length", "0")))
    return status, headers, body


def output_path(fake_app: FakeApp, name: str) -> Path:
    path = fake_app.services["_default_"].root / "1" / "output" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_keep_alive_reuses_the_connection(server: Server) -> None:
    connection = connect(server)
    connection.request("GET", "/healthz")
    assert connection.getresponse().read() == b'{"version": "0.17.0.dev0"}'
    first_socket = connection.sock
    connection.request("POST", "/jobs?job_id=1")
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["job_id"] == "1"
    assert connection.sock is first_socket
    connection.close()


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    data = raw_exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /jobs/1/status HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.index(b'"version"') < data.index(b'"status"')


def test_request_line_of_500_kib_is_served(server: Server) -> None:
    status, _, body = request(server, "POST", "/jobs/1/submit?command_line=" + "x" * (500 * 1024))
    assert (status, body) == (200, b"OK")


def test_request_line_of_2_mib_is_414_json(server: Server) -> None:
    status, headers, body = request(server, "POST", "/jobs/1/submit?command_line=" + "x" * (2 * 1024 * 1024))
    assert status == 414
    assert headers["connection"] == "close"
    assert json.loads(body)["error"] == "request_line_too_long"
    assert request(server, "GET", "/healthz")[0] == 200  # server still fine


def test_oversized_header_is_431(server: Server) -> None:
    status, _, body = request(server, "GET", "/healthz", headers={"X-Big": "y" * (70 * 1024)})
    assert status == 431
    assert json.loads(body)["error"] == "header_too_large"


@pytest.mark.parametrize(
    "line, status",
    [(b"GARBAGE\r\n", 400), (b"GET /healthz HTTP/2.0\r\n", 505), (b"GET healthz HTTP/1.1\r\n", 400)],
)
def test_malformed_request_lines(server: Server, line: bytes, status: int) -> None:
    data = raw_exchange(server, line + b"Host: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 %d " % status)
    assert b'"error"' in data


def test_upload_and_download_large_file(server: Server, fake_app: FakeApp, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    block = os.urandom(1024 * 1024)
    with open(source, "wb") as handle:
        for _ in range(24):
            handle.write(block)
    size = source.stat().st_size
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    with open(source, "rb") as handle:
        status, _, body = request(server, "POST", "/jobs/1/files?name=big.bin&type=output", body=handle,
                                  headers={"Content-Length": str(size)})
    assert status == 200
    assert json.loads(body)["sha256"] == digest
    status, headers, body = request(server, "GET", "/jobs/1/files?name=big.bin&type=output")
    assert status == 200
    assert headers["content-length"] == str(size)
    assert hashlib.sha256(body).hexdigest() == digest


def test_download_range_over_sendfile(server: Server, fake_app: FakeApp) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    output_path(fake_app, "r.bin").write_bytes(data)
    url = "/jobs/1/files?name=r.bin"
    status, headers, body = request(server, "GET", url, headers={"Range": "bytes=1000-2000999"})
    assert status == 206
    assert headers["content-range"] == f"bytes 1000-2000999/{len(data)}"
    assert body == data[1000:2001000]
    status, headers, body = request(server, "GET", url, headers={"Range": "bytes=-17"})
    assert (status, body) == (206, data[-17:])
    status, headers, body = request(server, "GET", url, headers={"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(data)}"


def test_bodiless_answers_keep_the_connection_in_step(server: Server, fake_app: FakeApp) -> None:
    """WebOb's 304 (matching If-None-Match) and HEAD answers carry no body: the next request
    on the same keep-alive connection is answered normally."""
    output_path(fake_app, "n.bin").write_bytes(b"0123456789")
    connection = connect(server)
    try:
        connection.request("GET", "/jobs/1/files?name=n.bin")
        first = connection.getresponse()
        assert (first.status, first.read()) == (200, b"0123456789")
        sock = connection.sock
        connection.request("GET", "/jobs/1/files?name=n.bin", headers={"If-None-Match": first.headers["ETag"]})
        not_modified = connection.getresponse()
        assert (not_modified.status, not_modified.read()) == (304, b"")
        connection.request("HEAD", "/jobs/1/status")
        head = connection.getresponse()
        assert (head.status, head.read()) == (200, b"")
        connection.request("GET", "/jobs/1/status")
        status = connection.getresponse()
        assert status.status == 200 and json.loads(status.read())["job_id"] == "1"
        assert connection.sock is sock, "the server closed the connection"
    finally:
        connection.close()


def test_missing_download_is_404_not_200(server: Server) -> None:
    status, _, body = request(server, "GET", "/jobs/1/files?name=none")
    assert status == 404 and json.loads(body)["error"] == "not_found"


def test_chunked_upload_is_decoded(server: Server, fake_app: FakeApp) -> None:
    pieces = [b"hello ", b"chunked ", os.urandom(100_000), b"world"]
    status, _, body = request(server, "POST", "/jobs/1/files?name=chunked.bin&type=input", body=iter(pieces),
                              headers={"Transfer-Encoding": "chunked"})
    assert status == 200
    assert Path(json.loads(body)["path"]).read_bytes() == b"".join(pieces)


def test_chunked_upload_with_extensions_and_trailers(server: Server) -> None:
    data = raw_exchange(server, b"POST /jobs/1/files?name=t&type=input HTTP/1.1\r\nHost: x\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n"
                                b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b'"size": 5' in data


def test_malformed_chunked_upload_is_400(server: Server) -> None:
    data = raw_exchange(server, b"POST /jobs/1/files?name=bad&type=input HTTP/1.1\r\nHost: x\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 ")


def test_upload_without_length_or_chunking_is_411(server: Server) -> None:
    data = raw_exchange(server, b"POST /jobs/1/files?name=x&type=input HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 411 ")
    assert b'"length_required"' in data


def test_empty_upload_with_content_length_0(server: Server) -> None:
    status, _, body = request(server, "POST", "/jobs/1/files?name=empty&type=input", body=b"",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200
    assert Path(json.loads(body)["path"]).read_bytes() == b""


def test_expect_100_continue(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /jobs/1/files?name=c&type=input HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        stream = sock.makefile("rb")
        assert stream.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert stream.readline() == b"\r\n"
        sock.sendall(b"data")
        status, _, body = read_response(stream)
    assert status == 200 and json.loads(body)["size"] == 4


def test_expect_100_continue_rejected_without_reading_body(secured: PulsarWsgiApp) -> None:
    with running_server(secured, threads=2) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /jobs/1/files?name=c&type=input HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            status, headers, _ = read_response(sock.makefile("rb"))
    assert status == 401  # answered at once: no 100 Continue, no waiting for the body
    assert headers["connection"] == "close"  # the body never came: this connection carries no more


def test_answer_before_the_body_arrives_says_connection_close(secured: PulsarWsgiApp) -> None:
    """The app answers 401 without reading; the body is not there yet, so the server will
    close after the answer -- and the answer says so, or the client's next request on this
    connection would meet a close it was not told about."""
    with running_server(secured, threads=2) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /jobs/1/files?name=c&type=input HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
            stream = sock.makefile("rb")
            status, headers, _ = read_response(stream)
            assert status == 401 and headers["connection"] == "close"
            sock.sendall(b"data")
            assert stream.read() == b""


def test_answer_to_an_unread_body_that_arrived_keeps_the_connection(secured: PulsarWsgiApp) -> None:
    with running_server(secured, threads=2) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /jobs/1/files?name=c&type=input HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ndata")
            stream = sock.makefile("rb")
            status, headers, _ = read_response(stream)
            assert status == 401 and "connection" not in headers
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body = read_response(stream)
    assert status == 200 and b"version" in body


def test_head_sends_no_body(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"HEAD /jobs/1/status HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        stream = sock.makefile("rb")
        assert stream.readline().startswith(b"HTTP/1.1 200")
        while stream.readline() != b"\r\n":
            pass
        status, _, body = read_response(stream)  # next response follows directly: no body bytes in between
    assert status == 200 and b"version" in body


def streaming_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"part1-", b"", b"part2"])


def test_unknown_length_response_is_chunked_for_http11_and_closed_for_http10() -> None:
    with running_server(streaming_app, threads=1) as server:
        status, headers, body = request(server, "GET", "/")
        assert (status, body) == (200, b"part1-part2")
        assert headers["transfer-encoding"] == "chunked"
        data = raw_exchange(server, b"GET / HTTP/1.0\r\n\r\n")
        assert b"Connection: close" in data and data.endswith(b"\r\n\r\npart1-part2")


def test_crashing_app_gets_500_json() -> None:
    def broken(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise RuntimeError("boom")

    with running_server(broken, threads=1) as server:
        status, _, body = request(server, "GET", "/")
    assert status == 500 and json.loads(body)["error"] == "server_error"


def test_idle_keep_alive_connections_do_not_hold_workers(wsgi: PulsarWsgiApp) -> None:
    with running_server(wsgi, threads=1) as server:
        idle = []
        for _ in range(3):
            connection = connect(server)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            idle.append(connection)
        assert request(server, "GET", "/jobs/1/status")[0] == 200
        for connection in idle:  # the parked connections still work
            connection.request("GET", "/healthz")
            assert connection.getresponse().status == 200
            connection.close()


def test_slow_upload_does_not_block_status_polls(wsgi: PulsarWsgiApp) -> None:
    with running_server(wsgi, threads=2) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /jobs/1/files?name=slow&type=input HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf")
            for _ in range(3):
                assert request(server, "GET", "/jobs/1/status")[0] == 200
            sock.sendall(b"-done")
            sock.sendall(b"!")
            status, _, body = read_response(sock.makefile("rb"))
    assert status == 200 and json.loads(body)["size"] == 10


def test_shutdown_lets_in_flight_requests_finish(wsgi: PulsarWsgiApp) -> None:
    server_cm = running_server(wsgi, threads=2)
    server = server_cm.__enter__()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(b"POST /jobs/1/files?name=late&type=input HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
    request(server, "GET", "/healthz")  # the upload is being served by now
    stopper = threading.Thread(target=server_cm.__exit__, args=(None, None, None))
    stopper.start()
    try:
        sock.sendall(b"def")
        status, headers, body = read_response(sock.makefile("rb"))
        assert status == 200 and json.loads(body)["size"] == 6
        assert headers["connection"] == "close"
    finally:
        sock.close()
        stopper.join(timeout=30)
    assert not stopper.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


@pytest.fixture(scope="module")
def self_signed_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not available")
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    pem = directory / "server.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return pem


def test_tls(wsgi: PulsarWsgiApp, fake_app: FakeApp, self_signed_pem: Path) -> None:
    data = os.urandom(2 * 1024 * 1024 + 3)
    output_path(fake_app, "tls.bin").write_bytes(data)
    context = ssl.create_default_context(cafile=str(self_signed_pem))
    with running_server(wsgi, threads=2, ssl_pem=str(self_signed_pem)) as server:
        assert server.url.startswith("https://")
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=30)
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() == b'{"version": "0.17.0.dev0"}'
        connection.request("GET", "/jobs/1/files?name=tls.bin", headers={"Range": "bytes=5-"})
        response = connection.getresponse()
        assert response.status == 206 and response.read() == data[5:]
        connection.request("POST", "/jobs/1/files?name=up.bin&type=input", body=data[:1000])
        assert json.loads(connection.getresponse().read())["size"] == 1000
        connection.close()
        try:
            plain = raw_exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            plain = b""
        assert b"version" not in plain  # no plaintext service on the TLS port


@pytest.mark.parametrize("path", [b"/jobs/caf%C3%A9/status", "/jobs/café/status".encode("utf-8")])
def test_paths_are_percent_decoded_utf8(server: Server, fake_app: FakeApp, path: bytes) -> None:
    data = raw_exchange(server, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ")
    assert fake_app.services["_default_"].calls == [("status", "café")]


def test_shutdown_right_after_start_does_not_hang(wsgi: PulsarWsgiApp) -> None:
    for _ in range(5):
        with running_server(wsgi, threads=1):
            pass


def test_unusable_ssl_pem_is_a_configuration_error(wsgi: PulsarWsgiApp, tmp_path: Path) -> None:
    from pulsar.errors import ConfigurationError
    from pulsar.web.server import make_server

    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    for path in (str(bad), str(tmp_path / "missing.pem")):
        with pytest.raises(ConfigurationError, match="ssl_pem"):
            make_server(wsgi, "127.0.0.1", 0, ssl_pem=path)


@pytest.mark.integration
def test_large_transfers_keep_memory_flat(server: Server, fake_app: FakeApp) -> None:
    import resource

    size = 512 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(b"POST /jobs/1/files?name=huge&type=output HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: %d\r\n\r\n" % size)
        for _ in range(size // len(block)):
            sock.sendall(block)
        stream = sock.makefile("rb")
        status, _, body = read_response(stream)
        assert status == 200 and json.loads(body)["size"] == size
        sock.sendall(b"GET /jobs/1/files?name=huge HTTP/1.1\r\nHost: x\r\n\r\n")
        assert stream.readline().startswith(b"HTTP/1.1 200")
        while stream.readline() != b"\r\n":
            pass
        received = 0
        while received < size:
            chunk = stream.read(min(4 * 1024 * 1024, size - received))
            assert chunk
            received += len(chunk)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < 128 * 1024 * 1024


def test_server_ini_passes_the_slow_client_limits_to_pulsar_main(tmp_path: Path) -> None:
    from pulsar.main import _server_parser, resolve_settings
    from pulsar.web.server import make_server

    (tmp_path / "server.ini").write_text("[server:main]\nheader_timeout = 7.5\nmax_pending_heads = 12\n"
                                         "min_body_rate = 100\n\n[app:main]\n")
    (tmp_path / "app.yml").write_text("private_token: t\n")
    settings = resolve_settings(_server_parser().parse_args(["-c", str(tmp_path)]), tmp_path)
    assert settings.server_timings == {"header_timeout": 7.5, "max_pending_heads": 12, "min_body_rate": 100}
    server = make_server(streaming_app, "127.0.0.1", 0, **settings.server_timings)
    try:
        assert (server.header_timeout, server.max_pending_heads, server.min_body_rate) == (7.5, 12, 100)
    finally:
        server.server_close()


def test_server_runner_stops_on_a_sigterm_that_another_thread_received(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel may hand a process-directed SIGTERM to any thread; `server_runner` (what
    `paster serve` calls, in the main thread) must stop on it all the same, not only when the
    main thread happens to be the one that received it."""
    import signal
    import time

    from pulsar.web import server as server_module

    made: list[Server] = []
    real_make_server = server_module.make_server

    def recording_make_server(*args: Any, **kwargs: Any) -> Server:
        made.append(real_make_server(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(server_module, "make_server", recording_make_server)
    app = PulsarWsgiApp(FakeApp(tmp_path))
    returned = threading.Event()
    hung: list[bool] = []

    def signal_from_another_thread() -> None:
        deadline = time.monotonic() + 30
        while not made and time.monotonic() < deadline:
            time.sleep(0.01)
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", made[0].port), timeout=5).close()
                break
            except OSError:
                time.sleep(0.01)
        time.sleep(0.5)  # the probe's traffic over: the acceptor is back in select, idle
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # this thread, not the main one
        if not returned.wait(10):
            hung.append(True)
            made[0].request_stop()

    previous = signal.getsignal(signal.SIGTERM)
    helper = threading.Thread(target=signal_from_another_thread, daemon=True)
    helper.start()
    try:
        server_module.server_runner(app, {}, host="127.0.0.1", port="0")
        returned.set()
    finally:
        signal.signal(signal.SIGTERM, previous)
        helper.join(timeout=30)
    assert not hung, "the SIGTERM was lost: the server kept serving"
    assert getattr(app.app, "shut_down", False)
