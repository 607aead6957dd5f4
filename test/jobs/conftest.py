from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from pulsar.core import PulsarApp
from pulsar.jobs.directory import JobDirectory
from pulsar.managers.processes import kill_process_tree
from test.support import polling


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """`test.support.polling.wait_for` with the longer default these job tests need."""
    return polling.wait_for(predicate, timeout, what=what)


def wait_terminal(service, job_id: str, timeout: float = 20.0) -> dict:
    return wait_for(lambda: (d := service.status(job_id)) and d["complete"] == "true" and d, timeout,
                    what=f"a terminal status of job {job_id}")


@pytest.fixture
def make_app(tmp_path: Path):
    apps: list[PulsarApp] = []

    def build(**options: Any) -> PulsarApp:
        options.setdefault("staging_directory", str(tmp_path / "staging"))
        options.setdefault("persistence_directory", str(tmp_path / "persisted"))
        app = PulsarApp(**options)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.shutdown()
        for service in app.services.values():  # leave no job processes behind
            for record in service.store.active():
                kill_process_tree(record.backend, grace=0.2)


@pytest.fixture
def job(tmp_path: Path) -> JobDirectory:
    """A fresh job directory "7" under tmp_path/staging."""
    (tmp_path / "staging").mkdir()
    directory = JobDirectory(tmp_path / "staging", "7")
    directory.create()
    return directory


def output_bytes(service, job_id: str, path_type: str, name: str) -> bytes:
    """What a download of (type, name) would send: the service hands over an open file."""
    with service.output_file(job_id, path_type, name) as handle:
        return handle.read()


def output_text(service, job_id: str, path_type: str, name: str) -> str:
    return output_bytes(service, job_id, path_type, name).decode()
