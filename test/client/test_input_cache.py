"""Our client's input caching (`cache=True` / PULSAR_CACHE_TRANSFERS, as the reference
client switches it) against our server on loopback and against the reference server 0.16.0,
both with a `file_cache_dir`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from pulsar.client import build_client_manager
from pulsar.scripts.check import run_check
from test.client.conftest import running_reference_server
from test.support.server import PulsarServer, start_server

pytestmark = pytest.mark.integration
quiet: Any = lambda message: None  # noqa: E731


@pytest.fixture
def cached_server(tmp_path: Path) -> Iterator[PulsarServer]:
    server = start_server(tmp_path / "server", app_config={"file_cache_dir": str(tmp_path / "cache")})
    try:
        yield server
    finally:
        server.stop()


def count(server_log: str, method: str, route: str) -> int:
    """Successful requests of `method` on `route` in the server's access log."""
    return len(re.findall(rf'"{method} /{route}(\?[^"]*)?" 200 ', server_log))


def client_for(server: PulsarServer, job_id: str, **manager_options: Any) -> Any:
    manager = build_client_manager(**manager_options)
    client = manager.get_client({"url": server.url, "private_token": server.token}, job_id)
    client.setup("tool", "1.0")
    return client


def test_pulsar_check_with_the_cache(cached_server: PulsarServer, tmp_path: Path) -> None:
    """A whole job (inputs, tool files, nested extra files) staged through the cache."""
    assert run_check(cached_server.url, cached_server.token, job_id="cached-check", log=quiet,
                     manager_options={"cache": True}) == []
    log = cached_server.log_text()
    assert count(log, "POST", "cache") >= 1 and "cache_token=" in log


def test_a_shared_input_is_sent_once_and_a_changed_one_again(cached_server: PulsarServer, tmp_path: Path) -> None:
    source = tmp_path / "reference.fa"
    source.write_bytes(b"ACGT" * 100_000)
    first = client_for(cached_server, "shared1", cache=True)
    second = client_for(cached_server, "shared2", cache=True)
    placed = [first.put_file(str(source), "input"), second.put_file(str(source), "input")]
    assert all(Path(p).read_bytes() == source.read_bytes() for p in placed)
    assert count(cached_server.log_text(), "POST", "cache") == 1
    source.write_bytes(b"TTTT" * 100_001)  # new size and mtime at the same path
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    third = client_for(cached_server, "shared3", cache=True)
    assert Path(third.put_file(str(source), "input")).read_bytes() == b"TTTT" * 100_001
    assert count(cached_server.log_text(), "POST", "cache") == 2
    # in-memory contents (config files) bypass the cache, as in the reference
    third.put_file(None, "config", name="conf.txt", contents=b"x=1\n")
    assert count(cached_server.log_text(), "POST", "cache") == 2


def test_the_environment_switches_caching_and_its_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSAR_CACHE_TRANSFERS", "1")
    monkeypatch.setenv("PULSAR_CACHE_THREADS", "3")
    manager = build_client_manager(cache=None)
    assert manager.cacher is not None and manager.cacher.transfer_threads == 3
    manager.shutdown()
    assert build_client_manager(cache=False).cacher is None
    manager = build_client_manager(cache=True, transfer_threads=5)
    assert manager.cacher is not None and manager.cacher.transfer_threads == 5
    manager.shutdown()
    monkeypatch.setenv("PULSAR_CACHE_TRANSFERS", "0")
    assert build_client_manager(cache=None).cacher is None


def test_a_server_without_a_cache_gets_a_plain_upload(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    try:
        source = tmp_path / "input.dat"
        source.write_bytes(b"plain\n")
        client = client_for(server, "nocache1", cache=True)
        assert Path(client.put_file(str(source), "input")).read_bytes() == b"plain\n"
        log = server.log_text()
        assert '"PUT /cache?' in log and "501" in log and "cache_token=" not in log
    finally:
        server.stop()


@pytest.mark.reference
def test_the_reference_server_with_its_cache(tmp_path: Path) -> None:
    """Our caching client makes the reference server's calls: the check passes and the
    reference stores the inputs in its file_cache_dir (which it needs to exist)."""
    (tmp_path / "cache").mkdir()
    with running_reference_server(tmp_path, f"file_cache_dir: {tmp_path / 'cache'}\n") as server:
        assert run_check(server.url, server.token, job_id="ref-cached", log=quiet,
                         manager_options={"cache": True}) == []
    stored = [name for name in os.listdir(tmp_path / "cache") if re.fullmatch("[0-9a-f]{64}", name)]
    assert stored, os.listdir(tmp_path / "cache")
