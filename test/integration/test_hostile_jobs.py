"""Hostile jobs, tried as an attacker would: a job owns its directory while it runs, so it
plants symlinks and FIFOs where the server reads, lists, downloads and writes, and swaps an
output between a file and a symlink while a client downloads it.  A real server on loopback
runs each job; nothing outside the staging root may be read into an answer or changed, no
request may hang the server, and no answer may be a 5xx.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from test.support.http import Api
from test.support.server import start_server

SECRET = "TOP-SECRET-0123456789"


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Owner, size and sha256 of every file below `root` (links as their target text)."""
    found = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            info = os.lstat(path)
            if path.is_symlink():
                found[str(path)] = (info.st_uid, -1, os.readlink(path))
            else:
                found[str(path)] = (info.st_uid, info.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A server, and an outside directory full of secrets named like the job's own files."""
    root = tmp_path_factory.mktemp("hostile_jobs")
    outside = root / "outside"
    outside.mkdir()
    for name in ("secret.txt", "tool_stdout", "tool_stderr", "job_stdout", "job_stderr", "galaxy.json",
                 "out.dat", "victim", "return_code"):
        (outside / name).write_text(SECRET + "\n")
    server = start_server(root / "server")
    before = snapshot(outside)
    yield server, Api(server.url, server.token), outside
    server.stop()
    assert snapshot(outside) == before, "a file outside the staging root changed"


def _json_error(response: requests.Response, *statuses: int) -> dict:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    document = json.loads(response.content)
    assert set(document) >= {"error", "detail"}, document
    return document


def _no_secret(document: object) -> None:
    assert SECRET not in json.dumps(document), "bytes from outside the job directory reached the client"


def test_symlinked_outputs_streams_and_galaxy_json_are_not_followed(world):
    _, api, outside = world
    api.setup("links")
    api.submit(
        "links",
        f"ln -s {outside}/secret.txt ../outputs/out.dat; ln -s {outside} ../outputs/escape; "
        f"ln -s {outside}/tool_stdout ../tool_stdout; ln -s {outside}/tool_stderr ../tool_stderr; "
        f"ln -s {outside}/galaxy.json galaxy.json; mkdir sub; ln -s {outside}/secret.txt sub/linked; "
        f"echo fine > ../outputs/plain.dat",
        dynamic_file_sources=[{"path": "galaxy.json"}, {"path": "sub/linked"}],
    )
    status = api.poll_until_terminal("links")
    assert status["status"] == "complete", status
    _no_secret(status)
    assert status["outputs_directory_contents"] == ["plain.dat"]
    assert status["working_directory_contents"] == []
    assert status["realized_dynamic_file_sources"] == []
    assert "tool_stdout" not in status["job_directory_contents"]
    for name, type_ in (("out.dat", "output"), ("escape/secret.txt", "output"), ("galaxy.json", "output_workdir"),
                        ("sub/linked", "output_workdir"), ("tool_stdout", "output_jobdir")):
        response = api.request("GET", "jobs/links/files", name=name, type=type_)
        error = _json_error(response, 400)
        assert error["error"] == "not_a_regular_file", error
        assert SECRET not in response.text
    assert api.download("links", "plain.dat") == b"fine\n"


def test_job_that_replaces_its_directories_by_symlinks_gets_nothing_listed_or_read(world):
    _, api, outside = world
    api.setup("dirs")
    api.submit(
        "dirs",
        f"cd .. && rm -rf working outputs metadata && ln -s {outside} working && ln -s {outside} outputs "
        f"&& ln -s {outside} metadata",
        dynamic_file_sources=[{"path": "galaxy.json"}],
    )
    status = api.poll_until_terminal("dirs")
    _no_secret(status)
    assert status["working_directory_contents"] == []
    assert status["outputs_directory_contents"] == []
    assert status["metadata_directory_contents"] == []
    assert status["realized_dynamic_file_sources"] == []
    for name, type_ in (("secret.txt", "output"), ("secret.txt", "output_workdir"), ("job_stdout", "output_metadata")):
        response = api.request("GET", "jobs/dirs/files", name=name, type=type_)
        _json_error(response, 400)
        assert SECRET not in response.text
    # nor can anything be written through them
    response = api.request("POST", "jobs/dirs/files", body=b"overwrite", name="victim", type="output")
    _json_error(response, 400, 404)
    assert api.request("DELETE", "jobs/dirs").status_code == 200


def test_fifos_never_hang_the_server(world):
    """FIFOs where the server reads; many concurrent polls and downloads of them, while
    another client must keep getting answers within 2 s."""
    server, api, _ = world
    api.setup("fifos")
    api.submit(
        "fifos",
        "mkfifo ../outputs/fifo.dat ../metadata/fifo ../tool_stdout ../tool_stderr galaxy.json "
        "&& cd ../metadata && rm -f tool_stdout job_stdout job_stderr && mkfifo tool_stdout job_stdout job_stderr "
        "&& echo fine > ../outputs/plain.dat",
        dynamic_file_sources=[{"path": "galaxy.json"}],
    )
    api.poll_until_terminal("fifos")
    latencies: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        other = Api(server.url, server.token)
        while not stop.is_set():
            started = time.monotonic()
            response = other.request("GET", "healthz")
            assert response.status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)

    def attack(index: int) -> list[int]:
        attacker = Api(server.url, server.token)
        statuses = []
        for _ in range(3):
            statuses.append(attacker.request("GET", "jobs/fifos/status").status_code)
            for name, type_ in (("fifo.dat", "output"), ("fifo", "output_metadata"), ("tool_stdout", "output_jobdir"),
                                ("galaxy.json", "output_workdir")):
                response = attacker.request("GET", "jobs/fifos/files", name=name, type=type_)
                _json_error(response, 400)
                statuses.append(response.status_code)
        return statuses

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            results = [s for statuses in pool.map(attack, range(32)) for s in statuses]
    finally:
        stop.set()
        watcher.join(30)
    assert results.count(200) == 32 * 3  # > 16 status polls, every one answered
    assert len(latencies) >= 3 and max(latencies) < 2.0, latencies
    status = api.status("fifos")
    assert status["outputs_directory_contents"] == ["plain.dat"]
    assert "fifo" not in status["metadata_directory_contents"]
    assert "tool_stdout" not in status["metadata_directory_contents"]
    assert status["stdout"] == "" and status["realized_dynamic_file_sources"] == []
    assert status["job_stdout"] == "" and status["job_stderr"] == ""
    assert api.download("fifos", "plain.dat") == b"fine\n"


def test_swapping_an_output_between_file_and_symlink_during_downloads_never_leaks(world):
    _, api, outside = world
    good = b"GOOD-BYTES-" * 5000
    api.setup("swap")
    api.upload("swap", "good", good, type="workdir")
    api.submit(
        "swap",
        # states: a hard link to `good` (a regular file, always the same bytes), a symlink
        # to the secret, nothing at all; until cancelled (at most a minute)
        f"end=$((SECONDS+60)); while [ $SECONDS -lt $end ]; do "
        f"ln -f good ../outputs/out.dat; ln -sfn {outside}/secret.txt ../outputs/out.dat; done",
    )
    outcomes: dict[int, int] = {}
    downloads = 0
    deadline = time.monotonic() + 120
    while downloads < 200 or (len(outcomes) < 2 and time.monotonic() < deadline and downloads < 2000):
        response = api.request("GET", "jobs/swap/files", name="out.dat", type="output")
        downloads += 1
        assert SECRET.encode() not in response.content, "a download leaked the symlink's target"
        assert response.status_code < 500, (response.status_code, response.text[:300])
        if response.status_code == 200:
            assert response.content == good
        else:
            _json_error(response, 400, 404)
        outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
    assert api.request("PUT", "jobs/swap/cancel").status_code == 200
    assert 200 in outcomes and len(outcomes) >= 2, f"the swap never raced the downloads: {outcomes}"


def test_setup_run_again_does_not_write_through_planted_symlinks(world):
    _, api, outside = world
    api.setup("again")
    api.submit(
        "again",
        f"cd .. && for name in tool_id tool_version command.sh launch_config return_code.x; do "
        f"rm -f $name; ln -s {outside}/victim $name; done; ln -s {outside} inputs/escape",
    )
    api.poll_until_terminal("again")
    api.setup("again")  # a job set up again after it ended starts afresh
    assert (outside / "victim").read_text() == SECRET + "\n"
    response = api.request("POST", "jobs/again/files", body=b"through", name="escape/victim", type="input")
    _json_error(response, 400)
    api.submit("again", "echo second > ../outputs/out.dat")
    assert api.poll_until_terminal("again")["status"] == "complete"
    assert api.download("again", "out.dat") == b"second\n"
    # standard directories replaced by symlinks: setup puts fresh ones in their place
    api.setup("again2")
    api.submit("again2", f"cd .. && rm -rf configs inputs && ln -s {outside} configs && ln -s {outside} inputs")
    api.poll_until_terminal("again2")
    api.setup("again2")
    path = api.upload("again2", "victim", b"mine")["path"]
    assert Path(path).read_bytes() == b"mine" and not Path(path).parent.is_symlink()
    api.upload("again2", "victim", b"config", type="config")


def test_names_longer_than_the_file_system_allows_are_400(world):
    _, api, _ = world
    api.setup("long")
    for name in ("a" * 256, "d" * 300 + "/x", "é" * 128):
        for method in ("POST", "GET"):
            response = api.request(method, "jobs/long/files", body=b"x" if method == "POST" else None,
                                   name=name, type="input" if method == "POST" else "output")
            error = _json_error(response, 400)
            assert "255" in error["detail"] or "long" in error["detail"], error
    assert api.upload("long", "b" * 255, b"fits")["size"] == 4


def test_upload_cut_by_a_crash_leaves_no_temp_file_after_restart(tmp_path):
    config_dir = tmp_path / "server"
    server = start_server(config_dir)
    try:
        api = Api(server.url, server.token)
        api.setup("crash")
        inputs = config_dir / "staging" / "crash" / "inputs"
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(
                f"POST /jobs/crash/files?name=big.dat&type=input&private_token={server.token} HTTP/1.1\r\n"
                f"Host: x\r\nContent-Length: 10000000\r\n\r\n".encode() + b"x" * 100_000
            )
            deadline = time.monotonic() + 30
            while not [p for p in inputs.iterdir() if p.name.endswith(".part")] and time.monotonic() < deadline:
                time.sleep(0.05)
            parts = [p for p in inputs.iterdir() if p.name.endswith(".part")]
            assert parts, "the upload never started"
            server.kill_tree()  # kill -9 mid-upload
        assert [p for p in inputs.iterdir() if p.name.endswith(".part")] == parts
        server.start()
        assert not [p for p in inputs.iterdir() if p.name.endswith(".part")]
        assert not (inputs / "big.dat").exists()
        api.submit("crash", "ls -a ../inputs > ../outputs/seen")
        status = api.poll_until_terminal("crash")
        assert status["status"] == "complete"
        assert ".part" not in api.download("crash", "seen").decode()
    finally:
        server.stop()
