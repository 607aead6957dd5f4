"""Fixtures shared by every test directory.

Markers are registered in pyproject.toml.  Tests under `test/integration/` are marked
`integration` automatically, so `make test-quick` (`-m "not integration ..."`) skips them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from test.support.rabbitmq import amqp_url, unique_manager  # noqa: F401  (fixtures for every directory)
from test.support.server import DEFAULT_TOKEN, PulsarServer, start_server

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def server_available() -> bool:
    """True once the web layer and the application object exist in this checkout."""
    return all(importlib.util.find_spec(name) is not None for name in ("pulsar.core", "pulsar.web.server"))


requires_server = pytest.mark.skipif(not server_available(), reason="pulsar.core / pulsar.web.server not written yet")


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
    if not server_available():
        pytest.skip("pulsar.core / pulsar.web.server not written yet")
    server = start_server(config_dir, token=pulsar_token)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pulsar_server_factory(tmp_path: Path) -> Iterator[object]:
    """Start servers with custom app configs: `factory(app_config={...}, name="a")`;
    all are stopped at teardown."""
    if not server_available():
        pytest.skip("pulsar.core / pulsar.web.server not written yet")
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
