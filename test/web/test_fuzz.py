"""A seeded, time-bounded fuzz of the real server and the real application, with a token.

Random malformed requests (request lines, header blocks, chunk framing, short and long
bodies, targets with %00/%0A and `..`, long names, deep and huge JSON parameters) go to a
`pulsar.core.PulsarApp` behind our server, one connection each.  Each must be answered with
a 2xx-4xx (or the 501/505 RFC 9112 prescribes), never a 5xx fault; a request with a complete
head is never dropped unanswered, a cut one may be closed cleanly.  Nothing may appear
outside the staging and persistence roots, and the server must answer normally at the end.

Reproduce a failure with the seed it prints: `PULSAR_FUZZ_SEED=<seed> pytest test/web/test_fuzz.py`
(`PULSAR_FUZZ_SECONDS` changes the budget, default 20).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Iterator

import pytest

from pulsar.core import PulsarApp
from pulsar.web.server import Server
from pulsar.web.wsgi import build_wsgi_app
from test.web.support import running_server

TOKEN = "fuzz-t0ken"
SEED = int(os.environ.get("PULSAR_FUZZ_SEED", "20261204"))
SECONDS = float(os.environ.get("PULSAR_FUZZ_SECONDS", "20"))
STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ")
#: The two 5xx answers RFC 9112 prescribes for requests that are well-formed but ask for what
#: the server does not implement (a transfer coding other than chunked, an HTTP version other
#: than 1.x): not server faults.
PROTOCOL_5XX = (501, 505)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the staging root that the fuzz names by relative and absolute paths."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret").write_text("not for clients\n")
    return directory


@pytest.fixture
def pulsar_app(tmp_path: Path, outside: Path) -> Iterator[PulsarApp]:
    app = PulsarApp(staging_directory=str(tmp_path / "staging"), persistence_directory=str(tmp_path / "persisted"),
                    private_token=TOKEN)
    try:
        yield app
    finally:
        app.shutdown()


@pytest.fixture
def server(pulsar_app: PulsarApp) -> Iterator[Server]:
    with running_server(build_wsgi_app(pulsar_app), threads=4, header_timeout=2.0, request_timeout=2.0) as running:
        yield running


class Generator:
    """Builds one request (bytes) per call from a seeded random source."""

    def __init__(self, rng: random.Random, outside: Path):
        self.rng = rng
        self.names = ["a.txt", "..", ".", "../outside/secret", "../../outside/x", f"{outside}/evil", "%2e%2e%2fx",
                      "a%00b", "a\nb", "a/../../b", "x" * 256, "y" * 4096, "\u00e9t\u00e9", "", " ", ".part",
                      f".a.{os.getpid()}.1.part", "con", "a;b", "a?b", "a#b"]
        self.job_ids = ["1", "2", "job-x", "..", ".", "a%2Fb", "%00", "x" * 300, "%0Aforged", "-", "1 2", ""]

    def pick(self, items: list[str]) -> str:
        return self.rng.choice(items)

    def junk(self, size: int) -> bytes:
        return bytes(self.rng.getrandbits(8) for _ in range(size))

    def json_value(self) -> str:
        kind = self.rng.randrange(7)
        if kind == 0:
            depth = self.rng.choice([50, 1000, 100_000])
            return "[" * depth + "]" * depth
        if kind == 1:
            return json.dumps({"k" * 10: "v" * self.rng.choice([10, 100_000, 400_000])})
        if kind == 2:
            return '{"a": '
        if kind == 3:
            return json.dumps([{"name": "FUZZ", "value": "1"}])
        if kind == 4:
            return "NaN"
        if kind == 5:
            return json.dumps({"setup": self.rng.random() < 0.5, "action_mapper": {"default_action": "none"}})
        return self.junk(8).decode("latin-1")

    def target(self) -> tuple[str, str]:
        """A route's method and a hostile target for it."""
        job = self.pick(self.job_ids) if self.rng.random() < 0.4 else self.rng.choice(["1", "2"])
        manager = self.rng.choice(["", "", "", "", "/managers/_default_", "/managers/nope", "/managers/%00"])
        token = self.rng.choice([TOKEN] * 8 + ["", "wrong"])
        params: dict[str, str] = {"private_token": token} if token else {}
        route = self.rng.randrange(9)
        if route == 0:
            method, path = "POST", "/jobs"
            params.update(job_id=job, tool_id=self.pick(["cat", "", "x" * 5000]), tool_version="1")
        elif route == 1:
            method, path = self.rng.choice(["POST", "GET"]), f"/jobs/{job}/files"
            name = self.pick(self.names) if self.rng.random() < 0.6 else self.rng.choice(["a.txt", "b", "c.dat"])
            params.update(name=name, type=self.pick(["input", "output", "tool", "bogus", ""]))
        elif route == 2:
            method, path = "GET", f"/jobs/{job}/files/path"
            params.update(name=self.pick(self.names), type=self.pick(["input", "output", "unstructured"]))
        elif route == 3:
            method, path = "POST", f"/jobs/{job}/submit"
            # the command stays harmless: the fuzz is about the request, not about jobs
            params.update(command_line=self.pick(["true", "", "x" * 2000]))
            for key in self.rng.sample(["setup_params", "remote_staging", "env", "dependencies_description",
                                        "submit_extras", "env_overrides"], self.rng.randrange(3)):
                params[key] = self.json_value()
        elif route == 4:
            method, path = "GET", f"/jobs/{job}/status"
        elif route == 5:
            method, path = "PUT", f"/jobs/{job}/cancel"
        elif route == 6:
            method, path = "DELETE", f"/jobs/{job}"
        elif route == 7:
            method, path = "GET", "/healthz"
        else:
            method, path = "GET", "/" + self.pick(["", "%00", "%0A%0D", "..", "jobs/", "jobs//status", "x" * 3000, "%ff%fe"])
        query = urllib.parse.urlencode(params)
        if self.rng.random() < 0.2:  # raw bytes in the query, as a hostile client would send them
            query += "&" + self.pick(["a=%00", "b=%0Ax", "c=%", "d=%zz", "e", "=f", "&&", "name=a%00b"])
        return method, manager + path + ("?" + query if query else "")

    def request(self) -> tuple[bytes, bool]:
        """Mostly well-framed requests carrying hostile targets, parameters and bodies (to
        reach the application), a third broken at the protocol level in one place.  Also
        whether the request's head is complete, so that it must get an answer (a cut or
        CR-only head may end in a clean close without one)."""
        rng = self.rng
        broken = rng.choice(["", "", "", "", "line", "headers", "framing", "cut", "line ends"])
        method, text = self.target()
        target = text.encode("utf-8", "surrogateescape")
        if rng.random() < 0.1:
            method = rng.choice(["GET", "POST", "PUT", "DELETE", "HEAD"])
        if broken == "line":
            method = rng.choice([method, "G ET", "GET\x00", "", "ge t", "OPTIONS", "PATCH", "M-SEARCH"])
        version = b"HTTP/1.1" if rng.random() < 0.9 else b"HTTP/1.0"
        if broken == "line":
            if rng.random() < 0.3:
                target = target.replace(b"%0A", b"\n", 1).replace(b"%00", b"\x00", 1)
            version = rng.choice([version, b"HTTP/2.0", b"HTTP/1.x", b"HTTP/1", b"http/1.1", b""])
        line = method.encode("latin-1") + b" " + target + b" " + version
        if broken == "line" and rng.random() < 0.3:
            line = line.replace(b" ", rng.choice([b"  ", b"\t", b""]), 1)
        headers = [b"Host: fuzz"]
        kind = rng.randrange(3)
        if kind == 0:
            body = self.junk(rng.choice([0, 10, 5000, 100_000]))
            declared = len(body) + (rng.choice([-5, 5, 100]) if broken == "framing" else 0)
            headers.append(b"Content-Length: %d" % max(declared, 0))
        elif kind == 1:
            headers.append(b"Transfer-Encoding: chunked")
            body = self.chunked(broken == "framing")
        else:
            body = b""
        if broken == "framing" and rng.random() < 0.4:
            headers.append(rng.choice([b"Content-Length: 5, 5", b"Content-Length: -1", b"Content-Length: \xb2",
                                       b"Content-Length: 99999999999999999999", b"Transfer-Encoding: gzip",
                                       b"Transfer-Encoding: gzip, chunked", b"Content-Length: 3",
                                       b"Expect: 100-continue", b"Expect: nothing"]))
        if broken == "headers":
            headers.append(rng.choice([b"X-A: b\x00c", b"X-A: b\rc", b" folded: x", b"No colon", b"X A: b",
                                       b"X-Big: " + b"z" * 70_000, b"X-N: 1\r\n" * 120, b":", b"\x7f: x",
                                       b"Connection: \x01", b"X-Huge: " + b"h" * 300_000]))
        elif rng.random() < 0.2:
            headers.append(b"Connection: " + rng.choice([b"close", b"keep-alive", b"upgrade"]))
        end = rng.choice([b"\n", b"\r"]) if broken == "line ends" else b"\r\n"
        data = line + end + end.join(headers) + end + end + body
        complete = True
        if broken == "cut":
            data = data[: rng.randrange(len(data) + 1)]
            complete = False
        elif end == b"\r":
            complete = False
        return data, complete

    def chunked(self, broken: bool) -> bytes:
        rng = self.rng
        pieces = []
        for _ in range(rng.randrange(4)):
            data = self.junk(rng.randrange(1, 40))
            sizes = ["%x" % len(data), "%x;ext=1" % len(data), "%X ;a" % len(data), "%04x" % len(data)]
            if broken:
                sizes += ["\x1c5", "5\xa0", "1_0", " 5", "-1", "0x5", "fffffffffffffffff"]
            ends = [b"\r\n", b"\r\n", b"", b"XX", b"\n"] if broken else [b"\r\n"]
            pieces.append(rng.choice(sizes).encode("latin-1") + b"\r\n" + data + rng.choice(ends))
        finals = [b"0\r\n\r\n", b"0\r\nT: x\r\n\r\n"] + ([b"", b"0\r\n", b"5\r\nab"] if broken else [])
        pieces.append(rng.choice(finals))
        return b"".join(pieces)
def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before taking everything: read the answer
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass  # a reset after the answer (unread request bytes) is still a clean end
    return b"".join(chunks)


def snapshot(root: Path, skip: Callable[[Path], bool]) -> dict[str, tuple[int, int]]:
    found = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not skip(Path(directory) / d)]
        for name in files:
            path = Path(directory) / name
            info = path.lstat()
            found[str(path)] = (info.st_size, info.st_mtime_ns)
    return found


def test_fuzzed_requests_get_4xx_or_a_clean_close(server: Server, tmp_path: Path, outside: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    inside = {tmp_path / "staging", tmp_path / "persisted"}
    before = snapshot(tmp_path, lambda path: path in inside)
    for job_id in ("1", "2"):  # jobs that exist, so uploads and downloads reach the files
        answer = exchange(server.port, b"POST /jobs?job_id=%s&private_token=%s HTTP/1.1\r\nHost: x\r\n"
                                       b"Content-Length: 0\r\n\r\n" % (job_id.encode(), TOKEN.encode()))
        assert answer.startswith(b"HTTP/1.1 200 "), answer
    generator = Generator(random.Random(SEED), outside)
    deadline = time.monotonic() + SECONDS
    sent = answered = 0
    failures: list[str] = []
    while time.monotonic() < deadline and len(failures) < 5:
        data, complete = generator.request()
        answer = exchange(server.port, data)
        sent += 1
        statuses = [int(code) for code in STATUS_LINE.findall(answer)]
        if complete and not answer:
            failures.append(f"closed without an answer: {data[:300]!r}")
        elif answer and not answer.startswith(b"HTTP/1.1 "):
            failures.append(f"not HTTP: {answer[:80]!r} for {data[:300]!r}")
        elif statuses:
            answered += 1
            if any(code >= 500 and code not in PROTOCOL_5XX for code in statuses):
                failures.append(f"{statuses} for {data[:300]!r}: {answer[:300]!r}")
    assert not failures, f"seed {SEED}, {sent} requests:\n" + "\n".join(failures)
    assert answered > sent * 3 // 4  # most requests were complete enough to be answered

    # The server is alive and serves normally.
    status_line = exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 200 OK"
    # Nothing appeared or changed outside the staging and persistence roots.
    assert snapshot(tmp_path, lambda path: path in inside) == before
    assert (outside / "secret").read_text() == "not for clients\n"
    assert not [r for r in caplog.records if r.exc_info], f"seed {SEED}: a traceback was logged"
