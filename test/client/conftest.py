"""Fixtures for client tests: the real server in-process, and the reference server; the
message-queue fixtures (`broker`, `managers`) live in mq_broker.py, `fake_galaxy` in
test/support/galaxy_files.py."""

from __future__ import annotations

import contextlib
import subprocess
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from pulsar.core import PulsarApp
from test.client.mq_broker import broker, managers  # noqa: F401  (fixtures)
from test.support.galaxy_files import fake_galaxy  # noqa: F401  (fixture)
from test.support.server import free_port, kill_process_tree, wait_until_healthy

REFERENCE_TOKEN = "reference-token-not-secret"


@pytest.fixture
def pulsar_app(tmp_path: Path) -> Iterator[Any]:
    """Our server's application object (no HTTP); the client reaches it in-process."""
    app = PulsarApp(staging_directory=str(tmp_path / "staging"),
                         persistence_directory=str(tmp_path / "persisted"), private_token="in-process-token")
    try:
        yield app
    finally:
        app.shutdown()


class ReferenceServer:
    def __init__(self, url: str, token: str, staging: Path):
        self.url = url
        self.token = token
        self.staging = staging


@pytest.fixture(scope="session")
def reference_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceServer]:
    """The reference `pulsar-app[web]==0.16.0` behind `pulsar-serve` on a free loopback port."""
    with running_reference_server(tmp_path_factory.mktemp("reference-server")) as server:
        yield server


@contextlib.contextmanager
def running_reference_server(directory: Path, app_config: str = "") -> Iterator[ReferenceServer]:
    """Start the reference server in `directory` (`app_config`: extra app.yml lines); kill it
    and its children on exit."""
    from test.support.reference import reference_venv

    venv = reference_venv("app-0.16.0")
    port = free_port()
    (directory / "server.ini").write_text(textwrap.dedent(f"""\
        [server:main]
        host = 127.0.0.1
        port = {port}

        [app:main]
        app_config = %(here)s/app.yml
        """))
    (directory / "app.yml").write_text(textwrap.dedent(f"""\
        private_token: {REFERENCE_TOKEN}
        staging_directory: {directory / 'staging'}
        persistence_directory: {directory / 'persisted'}
        """) + app_config)
    log_path = directory / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(venv / "bin" / "pulsar-serve"), str(directory / "server.ini")],
                                   cwd=directory, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_healthy(url, REFERENCE_TOKEN, process=process, log_path=log_path)
        yield ReferenceServer(url, REFERENCE_TOKEN, directory / "staging")
    finally:
        kill_process_tree(process.pid)
