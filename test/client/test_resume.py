"""Interrupted transfers between our client and our real server, broken by a loopback proxy.

* A download cut part way is resumed with `Range` + `If-Range`: the retry fetches only the
  rest, and the file is whole and matches the server's `Repr-Digest`.
* If the file changed between the attempts, `If-Range` fails and the whole new file comes.
* An upload cut part way leaves the previous target untouched and no temp file; the retry
  sends it again from the start (uploads restart, they do not resume).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from pulsar.client.exceptions import PulsarClientTransportError
from pulsar.client.http_api import HttpApi, RetryPolicy
from pulsar.client.transport import get_transport
from test.support.cutting_proxy import Cut, CuttingProxy
from test.support.http import Api
from test.support.server import DEFAULT_TOKEN, PulsarServer, start_server

FAST_RETRY = RetryPolicy(max_retries=3, interval_start=0.01, interval_step=0.01, interval_max=0.02)
SIZE = 12 * 1024 * 1024 + 12345
CUT_AFTER = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulsarServer]:
    running = start_server(tmp_path_factory.mktemp("resume-server"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(params=["http", "requests", "urllib"])
def transport_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client_through(proxy: CuttingProxy, transport_name: str) -> HttpApi:
    return HttpApi(proxy.url, get_transport(transport_name, timeout=30), private_token=DEFAULT_TOKEN, retry=FAST_RETRY)


def header_of(head: str, name: str) -> str | None:
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """The server notices a cut connection on its own thread, a moment after the client."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def staged_output(server: PulsarServer, job_id: str, data: bytes) -> Api:
    api = Api(server.url, DEFAULT_TOKEN)
    api.setup(job_id)
    api.upload(job_id, "result.dat", data, type="output")
    return api


def test_broken_download_resumes_from_where_it_stopped(server: PulsarServer, transport_name: str,
                                                       tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    job_id = f"resume-{transport_name}"
    staged_output(server, job_id, data)
    destination = tmp_path / "result.dat"
    with CuttingProxy(server.port, [Cut(downstream=CUT_AFTER)]) as proxy:
        result = client_through(proxy, transport_name).download(
            f"jobs/{job_id}/files", {"name": "result.dat", "type": "output"}, str(destination))
        heads = proxy.request_heads()
        served = proxy.downstream_bytes
    assert destination.read_bytes() == data
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["result.dat"]  # no temp file left
    assert len(heads) == 2
    assert header_of(heads[0], "Range") is None
    assert header_of(heads[0], "Want-Repr-Digest") == "sha-256=9"
    resumed_from = int(header_of(heads[1], "Range").removeprefix("bytes=").rstrip("-"))  # type: ignore[union-attr]
    assert 0 < resumed_from <= CUT_AFTER
    assert header_of(heads[1], "If-Range", ).startswith('"')  # type: ignore[union-attr]
    # only the rest crossed the wire the second time (plus one response head)
    assert SIZE - resumed_from <= served[1] < SIZE - resumed_from + 4096


def test_file_changed_between_attempts_is_fetched_whole(server: PulsarServer, tmp_path: Path) -> None:
    job_id = "resume-changed"
    api = staged_output(server, job_id, os.urandom(SIZE))
    replacement = os.urandom(SIZE)
    destination = tmp_path / "result.dat"

    class ReplaceOnSecondConnection(CuttingProxy):
        """Rewrites the file before the retry's request reaches the server."""

        def _relay(self, source, sink, budget, record, both, count_slot):  # type: ignore[no-untyped-def]
            if record is not None and len(self.requests_seen) == 2 and record is self.requests_seen[1]:
                api.upload(job_id, "result.dat", replacement, type="output")
            return super()._relay(source, sink, budget, record, both, count_slot)

    with ReplaceOnSecondConnection(server.port, [Cut(downstream=CUT_AFTER)]) as proxy:
        result = client_through(proxy, "requests").download(
            f"jobs/{job_id}/files", {"name": "result.dat", "type": "output"}, str(destination))
        served = proxy.downstream_bytes
    assert destination.read_bytes() == replacement
    assert result.sha256 == hashlib.sha256(replacement).hexdigest()
    assert served[1] >= SIZE  # the whole new file, not a splice


def test_broken_upload_leaves_target_intact_and_is_sent_again(server: PulsarServer, transport_name: str,
                                                              tmp_path: Path) -> None:
    job_id = f"upload-cut-{transport_name}"
    api = Api(server.url, DEFAULT_TOKEN)
    api.setup(job_id)
    api.upload(job_id, "input.dat", b"previous version")
    source = tmp_path / "input.dat"
    data = os.urandom(SIZE)
    source.write_bytes(data)
    with CuttingProxy(server.port, [Cut(upstream=CUT_AFTER)]) as proxy:
        client = client_through(proxy, transport_name)
        client.retry = RetryPolicy(max_retries=0)
        with pytest.raises(PulsarClientTransportError):
            client.upload(f"jobs/{job_id}/files", {"name": "input.dat", "type": "input"}, file_path=str(source))
    # the cut upload changed nothing on the server (same machine: read the job directory)
    target = Path(api.request("GET", f"jobs/{job_id}/files/path", name="input.dat", type="input").json()["path"])
    assert eventually(lambda: sorted(p.name for p in target.parent.iterdir()) == ["input.dat"])  # temp file gone
    assert target.read_bytes() == b"previous version"
    with CuttingProxy(server.port, [Cut(upstream=CUT_AFTER)]) as proxy:
        reply = client_through(proxy, transport_name).upload(
            f"jobs/{job_id}/files", {"name": "input.dat", "type": "input"}, file_path=str(source))
        heads = proxy.request_heads()
    assert reply["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(heads) == 2  # sent again from the start
    assert target.read_bytes() == data
