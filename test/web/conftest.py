from __future__ import annotations

from pathlib import Path

import pytest

from pulsar.web.app import PulsarWsgiApp
from test.web.fakes import FakeApp

TOKEN = "s3cret"




@pytest.fixture
def fake_app(tmp_path: Path) -> FakeApp:
    return FakeApp(tmp_path / "staging")


@pytest.fixture
def wsgi(fake_app: FakeApp) -> PulsarWsgiApp:
    return PulsarWsgiApp(fake_app)


@pytest.fixture
def secured(tmp_path: Path) -> PulsarWsgiApp:
    return PulsarWsgiApp(FakeApp(tmp_path / "staging", private_token=TOKEN))
