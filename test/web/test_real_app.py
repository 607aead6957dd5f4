"""The web layer over the real `pulsar.core.PulsarApp`: a whole job over HTTP, the Paste
app factory, and the same job under `paster serve` with our server runner and with Paste's
own `egg:Paste#http`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from pulsar import __version__
from pulsar.core import PulsarApp
from pulsar.web.server import Server
from pulsar.web.wsgi import app_factory, build_wsgi_app
from test.web.support import running_server

TOKEN = "t0ken"


@pytest.fixture
def pulsar_app(tmp_path: Path) -> Iterator[PulsarApp]:
    app = PulsarApp(staging_directory=str(tmp_path / "staging"), persistence_directory=str(tmp_path / "persisted"),
                    private_token=TOKEN)
    try:
        yield app
    finally:
        app.shutdown()


@pytest.fixture
def server(pulsar_app: PulsarApp) -> Iterator[Server]:
    with running_server(build_wsgi_app(pulsar_app), threads=4) as server:
        yield server


def call(base_url: str, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None,
         **params: str) -> tuple[int, bytes]:
    """Like the reference client: urllib, everything in the query, token included."""
    query = urllib.parse.urlencode({**params, "private_token": TOKEN})
    req = urllib.request.Request(f"{base_url}{path.lstrip('/')}?{query}", data=data, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def run_a_job(base_url: str) -> None:
    """Every call of a job's life, as the reference client makes them, against `base_url`."""
    status, body = call(base_url, "POST", "/jobs", b"", job_id="41", tool_id="cat1", tool_version="1.0",
                        use_metadata="true")
    assert status == 200
    setup = json.loads(body)
    assert setup["job_id"] == "41" and setup["tool_id"] == "cat1"

    # urllib labels the body form-urlencoded; it must arrive untouched.
    status, body = call(base_url, "POST", "/jobs/41/files", b"a=b&c=d+e\n", name="in.txt", type="input", job_id="41")
    assert status == 200
    uploaded = json.loads(body)
    assert uploaded["path"] == os.path.join(setup["inputs_directory"], "in.txt")
    assert Path(uploaded["path"]).read_bytes() == b"a=b&c=d+e\n"

    status, body = call(base_url, "GET", "/jobs/41/files/path", name="out.txt", type="output")
    assert json.loads(body) == {"path": os.path.join(setup["outputs_directory"], "out.txt")}

    command = f"cat {uploaded['path']} > {setup['outputs_directory']}/out.txt; echo done"
    assert call(base_url, "POST", "/jobs/41/submit", b"", command_line=command, job_id="41") == (200, b"OK")

    deadline = time.monotonic() + 60
    document: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = call(base_url, "GET", "/jobs/41/status")
        assert status == 200
        document = json.loads(body)
        if document["complete"] == "true":
            break
        time.sleep(0.1)
    assert document["status"] == "complete", document
    assert "out.txt" in document["outputs_directory_contents"]

    assert call(base_url, "GET", "/jobs/41/files", name="out.txt", type="output") == (200, b"a=b&c=d+e\n")
    assert call(base_url, "GET", "/jobs/41/files", headers={"Range": "bytes=4-"}, name="out.txt") == (206, b"c=d+e\n")
    status, body = call(base_url, "GET", "/jobs/41/files", headers={"Range": "bytes=99-"}, name="out.txt")
    assert status == 416 and json.loads(body)["error"] == "range_not_satisfiable"
    status, body = call(base_url, "GET", "/jobs/41/files", name="missing.txt")
    assert status == 404 and json.loads(body)["error"] == "not_found"
    assert call(base_url, "DELETE", "/jobs/41") == (200, b"OK")
    status, body = call(base_url, "GET", "/jobs/41/status")
    assert (status, json.loads(body)["status"]) == (200, "lost")


def test_a_job_over_http(server: Server) -> None:
    run_a_job(server.url)


def test_real_errors(server: Server) -> None:
    assert call(server.url, "GET", "/managers/nope/jobs/1/status")[0] == 404
    assert call(server.url, "POST", "/jobs", b"")[0] == 400  # no job_id
    assert call(server.url, "POST", "/jobs", b"", job_id="..")[0] == 400
    assert call(server.url, "GET", "/jobs/1/files/path", name="x", type="bogus")[0] == 400
    req = urllib.request.Request(f"{server.url}jobs/1/status?private_token=wrong")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 401
    with urllib.request.urlopen(f"{server.url}healthz", timeout=30) as response:  # no token needed
        assert json.loads(response.read()) == {"version": __version__}


#: `[server:main]` of each server `paster serve` can host our app with.
PASTE_SERVERS = {
    "server_runner": "paste.server_runner = pulsar.web.server:server_runner\nthreads = 3",
    "paste_http": "use = egg:Paste#http",
}


def write_config(directory: Path, port: int, server: str = "server_runner") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.yml").write_text(
        f"private_token: {TOKEN}\nstaging_directory: {directory / 'staging'}\n"
        f"persistence_directory: {directory / 'persisted'}\n"
    )
    ini = directory / "server.ini"
    ini.write_text(
        f"[server:main]\n{PASTE_SERVERS[server]}\n"
        f"host = 127.0.0.1\nport = {port}\n\n"
        "[app:main]\n"
        "paste.app_factory = pulsar.web.wsgi:app_factory\n"
        "app_config = %(here)s/app.yml\n"
    )
    return ini


def test_app_factory_builds_the_app_from_server_ini(tmp_path: Path) -> None:
    from paste.deploy import loadapp

    ini = write_config(tmp_path / "config", 0)
    wsgi_app: Any = loadapp(f"config:{ini}")
    try:
        assert wsgi_app.app.private_token == TOKEN
        assert wsgi_app.app.service("_default_").name == "_default_"
    finally:
        wsgi_app.app.shutdown()
    direct: Any = app_factory({"__file__": str(ini), "here": str(ini.parent)}, app_config=str(ini.parent / "app.yml"))
    try:
        assert direct.app.private_token == TOKEN
    finally:
        direct.app.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.integration
@pytest.mark.parametrize("server", list(PASTE_SERVERS))
def test_paster_serve_runs_a_job(tmp_path: Path, server: str) -> None:
    """`paster serve server.ini` with our server runner or with Paste's own httpserver
    (`egg:Paste#http`): the same app answers every call of a job, and stops on SIGTERM."""
    paster = Path(sys.executable).parent / "paster"
    if not paster.exists():
        pytest.fail("PasteScript's paster is not installed in the venv (make setup-venv installs it)")
    port = free_port()
    ini = write_config(tmp_path / "config", port, server)
    process = subprocess.Popen([str(paster), "serve", str(ini)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    assert "version" in json.loads(response.read())
                    break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.communicate()[0].decode(errors="replace")
                assert time.monotonic() < deadline
                time.sleep(0.2)
        run_a_job(f"http://127.0.0.1:{port}/")
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode(errors="replace")
        # Ours stops cleanly; Paste's httpserver has no SIGTERM handler and dies of the signal.
        assert process.returncode == (0 if server == "server_runner" else -signal.SIGTERM), output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
