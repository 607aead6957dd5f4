"""Clients that try to starve the server, as an attacker would: many connections sending
their headers one byte per second, TLS connections that never handshake, a header trickle
that tries to outlive the deadline.  Meanwhile a normal client must get every answer within
2 s, and the server must hold no worker thread for any of them."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pulsar.web.app import PulsarWsgiApp
from pulsar.web.server import Server
from test.support.polling import wait_for
from test.support.server import DEFAULT_TOKEN, PulsarServer, free_port, wait_until_healthy, write_app_config
from test.web.support import running_server

ANSWER_WITHIN = 2.0
ATTACK_SECONDS = 5.0


class Trickle:
    """`count` connections, each sending `opening` at once and then the start of a request
    one byte per `interval` seconds from one thread, until stopped.  Connections the server
    closes are counted."""

    REQUEST = b"GET /jobs/1/status HTTP/1.1\r\nHost: slow\r\nX-Padding: " + b"p" * 4096

    def __init__(self, port: int, count: int, interval: float = 1.0, opening: bytes = b""):
        self.sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        for sock in self.sockets:
            sock.sendall(opening)
        self.interval = interval
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        position = 0
        while not self._stop.is_set() and self.sockets:
            byte = self.REQUEST[position % len(self.REQUEST): position % len(self.REQUEST) + 1]
            for sock in list(self.sockets):
                try:
                    sock.send(byte)
                except OSError:
                    self.sockets.remove(sock)
                    sock.close()
                    self.closed_by_server += 1
            position += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Trickle:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()


def normal_client_for(seconds: float, request: Callable[[], int]) -> list[float]:
    """Run `request` (a fresh connection each time) for `seconds`; every answer must be a 200
    within ANSWER_WITHIN.  Returns the durations."""
    durations = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        assert request() == 200
        durations.append(time.monotonic() - started)
        assert durations[-1] < ANSWER_WITHIN, f"answer took {durations[-1]:.2f} s"
        time.sleep(0.05)
    return durations


def plain_status(server: Server) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=ANSWER_WITHIN)
    try:
        connection.request("GET", "/jobs/1/status")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_64_slow_header_senders_do_not_lock_out_a_normal_client(wsgi: PulsarWsgiApp) -> None:
    with running_server(wsgi, threads=4) as server:
        with Trickle(server.port, 64) as trickle:
            durations = normal_client_for(ATTACK_SECONDS, lambda: plain_status(server))
            assert len(trickle.sockets) == 64  # all still connected: under the cap, within the deadline
        assert len(durations) > 10


def test_over_the_head_cap_the_oldest_slow_sender_is_dropped_and_new_clients_get_in(wsgi: PulsarWsgiApp) -> None:
    with running_server(wsgi, threads=2, max_pending_heads=16) as server:
        with Trickle(server.port, 64, interval=0.2) as trickle:
            normal_client_for(ATTACK_SECONDS, lambda: plain_status(server))
            # 48 made room for the later slow senders, then each normal connection took the
            # slot of the longest-waiting one
            wait_for(lambda: trickle.closed_by_server >= 48, timeout=10, what="the evictions")


def test_header_deadline_is_for_the_whole_head_not_per_byte(wsgi: PulsarWsgiApp) -> None:
    with running_server(wsgi, threads=1, header_timeout=1.0) as server:
        with Trickle(server.port, 4, interval=0.1) as trickle:
            started = time.monotonic()
            while trickle.sockets and time.monotonic() - started < 10:
                time.sleep(0.05)
            assert trickle.closed_by_server == 4  # bytes kept coming; the deadline ended them anyway
            assert time.monotonic() - started < 5
        assert plain_status(server) == 200


def test_keep_alive_connection_with_a_trickled_next_request_is_held_by_no_worker(wsgi: PulsarWsgiApp) -> None:
    with running_server(wsgi, threads=1, header_timeout=1.0) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET /jobs/1/sta")  # the next request starts and stalls
            assert plain_status(server) == 200  # the only worker is free
            started = time.monotonic()
            assert sock.recv(65536) == b""  # closed at the head deadline, not the idle one
            assert time.monotonic() - started < 5


def test_silent_connections_are_closed_at_the_header_deadline(wsgi: PulsarWsgiApp) -> None:
    with running_server(wsgi, threads=1, header_timeout=0.5) as server:
        silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(8)]
        try:
            assert plain_status(server) == 200
            for sock in silent:
                assert sock.recv(1) == b""
        finally:
            for sock in silent:
                sock.close()


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


@pytest.fixture
def tls_server(wsgi: PulsarWsgiApp, self_signed_pem: Path) -> Iterator[Server]:
    with running_server(wsgi, threads=2, ssl_pem=str(self_signed_pem), header_timeout=3.0) as server:
        yield server


def tls_status(server: Server, context: ssl.SSLContext) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=ANSWER_WITHIN)
    try:
        connection.request("GET", "/jobs/1/status")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_idle_tls_connections_do_not_lock_out_a_normal_client(tls_server: Server, self_signed_pem: Path) -> None:
    context = ssl.create_default_context(cafile=str(self_signed_pem))
    idle = [socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) for _ in range(32)]
    # half of them start a handshake and stop in the middle of their ClientHello
    for sock in idle[:16]:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    try:
        normal_client_for(2.0, lambda: tls_status(tls_server, context))
        for sock in idle:  # all closed at the header deadline (3 s), none answered
            assert sock.recv(1) == b""
        assert tls_status(tls_server, context) == 200
    finally:
        for sock in idle:
            sock.close()


def test_tls_keep_alive_and_pipelining_still_work(tls_server: Server, self_signed_pem: Path) -> None:
    context = ssl.create_default_context(cafile=str(self_signed_pem))
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            sock.sendall(request * 3)  # pipelined: decrypted bytes wait inside the TLS layer
            data = b""
            while data.count(b"HTTP/1.1 200") < 3:
                chunk = sock.recv(65536)
                assert chunk
                data += chunk
            time.sleep(0.1)  # parked idle now
            sock.sendall(request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")


class FdLimitedServer(PulsarServer):
    """`pulsar.main` in a process whose descriptor limit is `nofile` (set before it starts)."""

    def __init__(self, *args: Any, nofile: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.nofile = nofile

    def command(self) -> list[str]:
        code = ("import resource, runpy, sys; "
                f"resource.setrlimit(resource.RLIMIT_NOFILE, ({self.nofile}, {self.nofile})); "
                "sys.argv[0] = 'pulsar'; runpy.run_module('pulsar.main', run_name='__main__', alter_sys=True)")
        return [sys.executable, "-c", code, "-c", str(self.config_dir), "--port", str(self.port)]


def open_connections(port: int, count: int) -> list[socket.socket]:
    """Connect `count` times; connections the kernel backlog cannot take time out and are skipped."""
    opened = []
    for _ in range(count):
        try:
            opened.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
        except OSError:
            pass
    return opened


def test_near_the_fd_limit_the_log_stays_small_and_the_server_recovers(tmp_path: Path) -> None:
    config_dir = tmp_path / "limited"
    config_dir.mkdir()
    write_app_config(config_dir, {"private_token": DEFAULT_TOKEN, "staging_directory": str(config_dir / "staging"),
                                  "persistence_directory": str(config_dir / "persisted")})
    server = FdLimitedServer(config_dir, free_port(), DEFAULT_TOKEN, nofile=40)
    server.start()
    held: list[socket.socket] = []
    try:
        log_before = server.log_path.stat().st_size
        # Kept-alive connections the server cannot simply time out (60 s), then a crowd of
        # silent ones, far more than the 40 descriptors the server has.
        for sock in open_connections(server.port, 30):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            held.append(sock)
        held += open_connections(server.port, 120)
        time.sleep(3.0)  # the old accept loop wrote tens of MB of log in this time
        grown = server.log_path.stat().st_size - log_before
        text = server.log_text()
        assert grown < 16 * 1024, f"log grew by {grown} bytes under descriptor exhaustion"
        assert 1 <= text.count("cannot accept connections") <= 2
        assert "Traceback" not in text
    finally:
        for sock in held:
            sock.close()
    try:
        wait_until_healthy(server.url, DEFAULT_TOKEN, timeout=10)  # recovered once the crowd left
        assert server.get("jobs/fd-probe/status")[0] == 200
    finally:
        assert server.stop() == 0


def test_unauthorized_slow_upload_holds_no_worker_while_its_body_trickles(secured: PulsarWsgiApp) -> None:
    # The app answers 401 without reading the body; the server must not then spend a worker
    # draining a body that arrives a byte at a time (no token needed for this attack).
    upload = b"POST /jobs/1/files?name=x&type=input HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nfirst"
    with running_server(secured, threads=1) as server:
        with Trickle(server.port, 4, interval=0.5, opening=upload) as trickle:
            durations = normal_client_for(ATTACK_SECONDS, lambda: healthz_status(server))
            # the lingering close (5 s, in the acceptor) ends them; nothing held them longer
            wait_for(lambda: trickle.closed_by_server == 4, timeout=15, what="the lingering closes to end")
        assert len(durations) > 10


def healthz_status(server: Server) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=ANSWER_WITHIN)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_pipelining_client_that_never_reads_holds_no_worker(wsgi: PulsarWsgiApp) -> None:
    # Thousands of pipelined requests and no reads: once the answers fill the socket
    # buffers, a worker writing the next one would wait for the client for request_timeout.
    with running_server(wsgi, threads=1) as server:
        hogs = []
        for _ in range(2):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.setblocking(False)
            try:
                for _ in range(200):  # as much as the server takes in
                    sock.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
            except BlockingIOError:
                pass
            hogs.append(sock)
        try:
            durations = normal_client_for(3.0, lambda: healthz_status(server))
            assert len(durations) > 5
        finally:
            for sock in hogs:
                sock.close()


def test_many_idle_connections_cost_little_memory(tmp_path: Path) -> None:
    # An idle or slow connection holds only what it has buffered: the receive buffers
    # (a quarter MiB each) belong to the threads, not to the connections.
    import resource

    import psutil

    count = 600
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 200), hard))
    config_dir = tmp_path / "many"
    config_dir.mkdir()
    write_app_config(config_dir, {"private_token": DEFAULT_TOKEN, "staging_directory": str(config_dir / "staging"),
                                  "persistence_directory": str(config_dir / "persisted")})
    server = FdLimitedServer(config_dir, free_port(), DEFAULT_TOKEN, nofile=count + 100)
    server.start()
    held: list[socket.socket] = []
    try:
        assert server.process is not None
        process = psutil.Process(server.process.pid)
        before = process.memory_info().rss
        for index in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            # half send a whole request and stay kept-alive, half send part of a head
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" if index % 2 else b"GET /healthz HTTP/1.1\r\n")
            held.append(sock)
        for sock in held[1::2]:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        grown = process.memory_info().rss - before
        assert grown < 48 * 1024 * 1024, f"{count} idle connections took {grown / 2**20:.0f} MiB"
        assert server.get("healthz")[0] == 200
    finally:
        for sock in held:
            sock.close()
        assert server.stop() == 0
