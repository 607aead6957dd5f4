"""The input file cache (`file_cache_dir`, the /cache routes) of OUR server, on loopback:
the reference client 0.15.16's caching variant sharing a large input between jobs, the wire
protocol's answers, concurrent inserts, eviction while a job holds an entry, and the 501 of
a server without a cache."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from test.integration.test_reference_clients import reference_env
from test.support.http import Api
from test.support.reference import reference_bin
from test.support.server import PulsarServer, start_server

SCRIPT = Path(__file__).with_name("reference_cache_jobs.py")
MiB = 2**20
#: The issue's size: big enough that a second upload would show, fast to write (mostly holes).
LARGE = 256 * MiB

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def cached_server(tmp_path: Path, **options: Any) -> PulsarServer:
    return start_server(tmp_path / "server", app_config={"file_cache_dir": str(tmp_path / "cache"),
                                                         "fsync_uploads": False, **options})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PulsarServer]:
    running = cached_server(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def large_file(path: Path, size: int = LARGE) -> str:
    """A `size`-byte file, mostly a hole, with random blocks spread through it; its sha256."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset in range(0, size, size // 16):
            handle.seek(offset)
            handle.write(os.urandom(4096))
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def access_lines(server: PulsarServer, method: str, route: str) -> list[str]:
    """Access-log lines of `method` on `route` (a regular expression matched against the path)."""
    pattern = re.compile(rf'"{method} (/managers/[^/]+)?{route}(\?[^" ]*)?" (\d+)')
    return [line for line in server.log_text().splitlines() if pattern.search(line)]


def call(api: Api, method: str, route: str, body: bytes | None = None, **params: Any) -> requests.Response:
    """`Api.request`, for routes whose argument is named `path`."""
    return api.session.request(method, api.url + route, params=api._params(params), data=body, timeout=60)


def entries(tmp_path: Path) -> list[str]:
    return sorted(os.listdir(tmp_path / "cache" / "entries"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


# -- the reference client ----------------------------------------------------------------

@pytest.mark.reference
def test_reference_client_jobs_share_a_large_input_uploaded_once(server: PulsarServer, tmp_path: Path) -> None:
    """Two jobs of the reference client 0.15.16 (cache=True) read one 256 MiB input: it
    crosses the wire once (one POST /cache, no plain upload of it), both jobs see its exact
    bytes, and the second job, which then appends to its copy, leaves the entry unchanged."""
    work = tmp_path / "client"
    work.mkdir()
    input_path = work / "dataset_1.dat"
    expected = large_file(input_path)
    spec = [{"job_id": "refcache1"}, {"job_id": "refcache2", "after": 'echo tampered >> "$INPUT"'}]
    results = run_reference_jobs(server, tmp_path, input_path, spec)
    for job_id in ("refcache1", "refcache2"):
        job = results[job_id]
        assert "error" not in job, f"{job.get('error')}\n{server.log_text()[-3000:]}"
        assert job["status"] == "complete" and job["finish_failures"] == [], job
        assert job["output"] == expected, job
    assert len(access_lines(server, "PUT", "/cache")) == 2
    inserts = access_lines(server, "POST", "/cache")
    assert len(inserts) == 1 and inserts[0].rstrip().split('" ')[1].startswith("200"), inserts
    uploads = access_lines(server, "POST", r"/jobs/refcache\d/files")
    assert len(uploads) == 2 and all("cache_token=" in line for line in uploads), uploads
    assert entries(tmp_path) == [expected]
    assert sha256_of(tmp_path / "cache" / "entries" / expected) == expected  # the job's write stayed its own


@pytest.mark.reference
@pytest.mark.parametrize("client", ["galaxy-lib-0.15.16", "galaxy-lib-0.16.0"])
def test_reference_client_with_a_file_changed_at_the_same_path_gets_the_cached_one(server: PulsarServer,
                                                                                    tmp_path: Path, client: str) -> None:
    """What the README says: the reference client names a file by its path only, so a file
    rewritten in place is served from the cache (as by the reference server); our client
    sends size and mtime and uploads it again (test/client/test_input_cache.py).  Both
    reference client versions use our routes."""
    work = tmp_path / "client"
    work.mkdir()
    input_path = work / "dataset_1.dat"
    input_path.write_bytes(b"first version\n")
    first = hashlib.sha256(input_path.read_bytes()).hexdigest()
    # split in two so the client's path rewriting does not turn it into the job's copy
    rewrite = f"printf 'second version, longer\\n' > '{input_path.parent}/dataset_1''.dat'"
    spec = [{"job_id": "refstale1", "after": rewrite}, {"job_id": "refstale2"}]
    results = run_reference_jobs(server, tmp_path, input_path, spec, client)
    assert input_path.read_bytes() == b"second version, longer\n"  # the first job's tool rewrote it (shared disk)
    assert [results[job]["output"] for job in ("refstale1", "refstale2")] == [first, first]
    assert len(access_lines(server, "POST", "/cache")) == 1


def run_reference_jobs(server: PulsarServer, tmp_path: Path, input_path: Path, spec: list[dict[str, str]],
                       client: str = "galaxy-lib-0.15.16") -> Any:
    """reference_cache_jobs.py under a reference client; its results by job id."""
    result_path = tmp_path / "result.json"
    run = subprocess.run(
        [str(reference_bin(client, "python")), str(SCRIPT), server.url, str(server.token),
         str(input_path.parent), str(result_path), str(input_path), json.dumps(spec)],
        capture_output=True, text=True, cwd=tmp_path, env=reference_env(), timeout=600,
    )
    assert run.returncode == 0 and result_path.exists(), f"{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    return json.loads(result_path.read_text())


# -- the wire protocol -------------------------------------------------------------------

def test_claim_insert_status_and_place(server: PulsarServer, tmp_path: Path) -> None:
    api = Api(server.url, server.token)
    data = b"shared reference genome\n" * 1000
    digest = hashlib.sha256(data).hexdigest()
    not_ready = call(api, "GET", "cache/status", path="/galaxy/ref.fa").json()
    assert not_ready["ready"] is False and re.fullmatch("[0-9a-f]{64}", not_ready["token"])
    assert call(api, "PUT", "cache", path="/galaxy/ref.fa").json() is True
    assert call(api, "PUT", "cache", path="/galaxy/ref.fa").json() is False  # claimed: someone is uploading
    inserted = call(api, "POST", "cache", body=data, path="/galaxy/ref.fa")
    assert inserted.status_code == 200 and inserted.json() is None
    assert call(api, "GET", "cache/status", path="/galaxy/ref.fa").json() == {"token": digest, "ready": True}
    assert call(api, "PUT", "managers/_default_/cache", path="/galaxy/ref.fa").json() is False
    api.setup("place1")
    placed = call(api, "POST", "jobs/place1/files", name="ref.fa", type="input", cache_token=digest.upper())
    assert placed.status_code == 200, placed.text
    assert placed.json()["sha256"] == digest and placed.json()["size"] == len(data)
    target = Path(placed.json()["path"])
    assert target.read_bytes() == data and not target.is_symlink()
    assert target.stat().st_ino != (tmp_path / "cache" / "entries" / digest).stat().st_ino  # a copy, not a link
    # the same path with another size or mtime (what our client sends) is another file
    assert call(api, "GET", "cache/status", path="/galaxy/ref.fa", size="5", mtime="7").json()["ready"] is False


@pytest.mark.parametrize("token", ["../../../etc/passwd", "abc", "g" * 64, "0" * 63, "0" * 65])
def test_a_malformed_cache_token_is_a_400(server: PulsarServer, token: str) -> None:
    api = Api(server.url, server.token)
    api.setup("badtoken")
    response = call(api, "POST", "jobs/badtoken/files", name="x", type="input", cache_token=token)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_argument" and "cache_token" in response.json()["detail"]


def test_an_unknown_cache_token_is_a_404(server: PulsarServer) -> None:
    api = Api(server.url, server.token)
    api.setup("unknowntoken")
    response = call(api, "POST", "jobs/unknowntoken/files", name="x", type="input", cache_token="0" * 64)
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_an_insert_that_does_not_match_its_announced_sha256_is_dropped(server: PulsarServer, tmp_path: Path) -> None:
    api = Api(server.url, server.token)
    response = call(api, "POST", "cache", body=b"abc", path="/p", sha256="0" * 64)
    assert response.status_code == 400 and "sha256" in response.json()["detail"]
    assert entries(tmp_path) == []
    assert call(api, "GET", "cache/status", path="/p").json()["ready"] is False
    assert call(api, "PUT", "cache", path="/p").json() is True  # the failed insert released nothing stale


def test_concurrent_inserts_of_one_file_leave_one_entry(server: PulsarServer, tmp_path: Path) -> None:
    """Eight clients insert the same 8 MiB under two paths at once: every insert succeeds, one
    entry holds the content, no temp file is left, and both paths are ready with it."""
    data = os.urandom(8 * MiB)
    digest = hashlib.sha256(data).hexdigest()
    statuses: list[int] = []

    def insert(number: int) -> None:
        statuses.append(call(Api(server.url, server.token), "POST", "cache", body=data,
                                                              path=f"/data/{number % 2}").status_code)

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    assert entries(tmp_path) == [digest]
    api = Api(server.url, server.token)
    for path in ("/data/0", "/data/1"):
        assert call(api, "GET", "cache/status", path=path).json() == {"token": digest, "ready": True}


def test_eviction_keeps_what_an_active_job_holds(tmp_path: Path) -> None:
    """Limit 3 MiB, entries of 2 MiB: an entry placed into a job that is set up (not ended)
    is never evicted -- the next insert is refused with 507 -- and once the job is cleaned
    the least recently used entry goes to make room."""
    server = cached_server(tmp_path, file_cache_max_size="3M")
    try:
        api = Api(server.url, server.token)
        first, second = os.urandom(2 * MiB), os.urandom(2 * MiB)
        assert call(api, "POST", "cache", body=first, path="/first").status_code == 200
        token = call(api, "GET", "cache/status", path="/first").json()["token"]
        api.setup("holder")
        assert call(api, "POST", "jobs/holder/files", name="in", type="input", cache_token=token).status_code == 200
        assert call(api, "PUT", "cache", path="/second").json() is True
        refused = call(api, "POST", "cache", body=second, path="/second")
        assert refused.status_code == 507 and refused.json()["error"] == "cache_full", refused.text
        assert call(api, "PUT", "cache", path="/second").json() is True  # the refusal released the claim
        assert entries(tmp_path) == [token]
        too_big = call(api, "POST", "cache", body=os.urandom(4 * MiB), path="/big")
        assert too_big.status_code == 507
        assert call(api, "DELETE", "jobs/holder").status_code == 200
        assert call(api, "POST", "cache", body=second, path="/second").status_code == 200
        assert entries(tmp_path) == [hashlib.sha256(second).hexdigest()]
        assert call(api, "GET", "cache/status", path="/first").json()["ready"] is False
        assert call(api, "PUT", "cache", path="/first").json() is True  # evicted: upload it again
    finally:
        server.stop()


def test_a_job_that_writes_into_its_cached_input_leaves_the_entry_alone(server: PulsarServer,
                                                                         tmp_path: Path) -> None:
    api = Api(server.url, server.token)
    data = b"pristine\n" * 100
    digest = hashlib.sha256(data).hexdigest()
    call(api, "POST", "cache", body=data, path="/in")
    api.setup("writer")
    placed = call(api, "POST", "jobs/writer/files", name="in.txt", type="input", cache_token=digest).json()
    api.submit("writer", f'echo changed >> "{placed["path"]}"; printf x | dd of="{placed["path"]}" conv=notrunc')
    assert api.poll_until_terminal("writer")["status"] == "complete"
    assert Path(placed["path"]).read_bytes() != data
    assert sha256_of(tmp_path / "cache" / "entries" / digest) == digest
    api.setup("reader")
    again = call(api, "POST", "jobs/reader/files", name="in.txt", type="input", cache_token=digest).json()
    assert Path(again["path"]).read_bytes() == data


def test_restart_keeps_entries_and_aliases(tmp_path: Path) -> None:
    server = cached_server(tmp_path)
    api = Api(server.url, server.token)
    call(api, "POST", "cache", body=b"kept", path="/kept")
    server.stop()
    server.start()
    try:
        assert call(api, "GET", "cache/status", path="/kept").json() == {
            "token": hashlib.sha256(b"kept").hexdigest(), "ready": True}
    finally:
        server.stop()


# -- without file_cache_dir --------------------------------------------------------------

def test_without_file_cache_dir_the_routes_answer_501(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    try:
        api = Api(server.url, server.token)
        api.setup("nocache")
        for prefix in ("", "managers/_default_/"):
            for method, route, body in (("GET", "cache/status", None), ("PUT", "cache", None),
                                        ("POST", "cache", b"data")):
                response = call(api, method, prefix + route, body=body, path="/x")
                assert response.status_code == 501, (method, route, response.text)
                assert response.json()["error"] == "cache_disabled" and "file_cache_dir" in response.json()["detail"]
        response = call(api, "POST", "jobs/nocache/files", name="x", type="input", cache_token="0" * 64)
        assert response.status_code == 501 and response.json()["error"] == "cache_disabled"
        assert call(api, "GET", "managers/nosuch/cache/status", path="/x").status_code == 404
    finally:
        server.stop()
