"""Fixtures shared by every test directory.

Markers are registered in pyproject.toml.  Tests under `test/integration/` are marked
`integration` automatically, so `make test-quick` (`-m "not integration ..."`) skips them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from test.support.rabbitmq import amqp_url, unique_manager  # noqa: F401  (fixtures for every directory)
from test.support.server import DEFAULT_TOKEN, PulsarServer, start_server
from test.support.sshd import ssh_server  # noqa: F401  (a private sshd on loopback, for every directory)

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """An empty configuration directory."""
    path = tmp_path / "config"
    path.mkdir()
    return path


@pytest.fixture
def pulsar_token() -> str:
    return DEFAULT_TOKEN


@pytest.fixture
def pulsar_server(config_dir: Path, pulsar_token: str) -> Iterator[PulsarServer]:
    """Our server in a subprocess on a free loopback port (default manager: local queue)."""
    server = start_server(config_dir, token=pulsar_token)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pulsar_server_factory(tmp_path: Path) -> Iterator[object]:
    """Start servers with custom app configs: `factory(app_config={...}, name="a")`;
    all are stopped at teardown."""
    servers: list[PulsarServer] = []

    def factory(name: str = "server", **kwargs: object) -> PulsarServer:
        server = start_server(tmp_path / name, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    try:
        yield factory
    finally:
        for server in servers:
            server.stop()
