"""A stand-in for Galaxy's job files API on loopback, for the message-queue interop tests.

In MQ mode Pulsar pulls inputs from and pushes outputs to Galaxy itself
(`GET/POST <galaxy>/api/jobs/<id>/files?job_key=..&path=..&file_type=..`, POST as multipart
field `file`).  `FakeGalaxy` answers those requests from a directory that plays Galaxy's disk
(a GET serves the file at `path`, a POST writes it there; only paths under the root, like
Galaxy), reuses the streaming handler of `pulsar.client.galaxy_files`, and adds what tests
need: a record of every request with the status it got, and injected failures
(`fail(404, "*/dataset_9.dat")`) for the staging-failure scenarios.

    from test.support.galaxy_files import fake_galaxy   # fixture below
"""

from __future__ import annotations

import fnmatch
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pulsar.client.galaxy_files import _Handler as _JobFilesHandler

DEFAULT_JOB_KEY = "fake-galaxy-job-key"


@dataclass(frozen=True)
class FilesRequest:
    """One request as Galaxy would have seen it, and the status it was answered with."""

    method: str
    job_id: str | None
    job_key: str | None
    path: str | None
    file_type: str | None
    status: int


@dataclass
class _Fault:
    status: int
    path_glob: str
    method: str | None
    remaining: int | None  # None: every matching request

    def matches(self, method: str, path: str | None) -> bool:
        if self.method is not None and self.method != method:
            return False
        return path is not None and fnmatch.fnmatchcase(path, self.path_glob)


class _Handler(_JobFilesHandler):
    server: _Server  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Requests are recorded as `FilesRequest`s instead."""

    def send_response(self, code: int, message: str | None = None) -> None:
        """Record the request as it is answered, so a client that got its answer finds it."""
        method, job_id, query = getattr(self, "_seen", (self.command, None, {}))  # e.g. a 501 for PUT
        self.server.record(FilesRequest(method, job_id, query.get("job_key"), query.get("path"),
                                        query.get("file_type"), code))
        super().send_response(code, message)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("GET", super().do_GET)

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST", super().do_POST)

    def _handle(self, method: str, serve: Any) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        job_id = parts[2] if len(parts) == 4 and parts[:2] == ["api", "jobs"] and parts[3] == "files" else None
        self._seen = (method, job_id, query)
        fault = self.server.take_fault(method, query.get("path"))
        if job_id is None:
            self._drain()
            self._reply(404, b"not a job files URL")
        elif fault is not None:
            self._drain()
            self._reply(fault, f"injected failure {fault}".encode())
        else:
            serve()


class _Server(http.server.ThreadingHTTPServer):
    """Holds what the reused handler reads (`root`, `job_key`, `served`, `received`)."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog (default 5): many jobs stage at once

    def __init__(self, root: Path, job_key: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = str(root.resolve())
        self.job_key = job_key
        self.served: list[str] = []
        self.received: list[str] = []
        self.lock = threading.Lock()
        self.faults: list[_Fault] = []
        self.requests: list[FilesRequest] = []

    def take_fault(self, method: str, path: str | None) -> int | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path) and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault.status
        return None

    def record(self, request: FilesRequest) -> None:
        with self.lock:
            self.requests.append(request)


class FakeGalaxy:
    """Galaxy's job files API on a free loopback port, serving and storing under `root`."""

    def __init__(self, root: Path, job_key: str = DEFAULT_JOB_KEY):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.job_key = job_key
        self._server = _Server(self.root, job_key)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-galaxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def files_endpoint(self, job_id: str) -> str:
        """What Galaxy passes to `get_client(files_endpoint=...)` for `job_id`."""
        return f"{self.url}/api/jobs/{job_id}/files?job_key={self.job_key}"

    def fail(self, status: int, path_glob: str, *, method: str | None = None, times: int | None = None) -> None:
        """Answer `status` to requests whose `path` parameter matches `path_glob` (fnmatch), for
        `method` only if given, `times` times (None: always).  Checked before anything else."""
        with self._server.lock:
            self._server.faults.append(_Fault(status, path_glob, method, times))

    @property
    def requests(self) -> list[FilesRequest]:
        """Every request answered so far, in the order of the answers."""
        with self._server.lock:
            return list(self._server.requests)

    def requests_for(self, job_id: str) -> list[FilesRequest]:
        return [r for r in self.requests if r.job_id == job_id]

    def start(self) -> FakeGalaxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeGalaxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def fake_galaxy(tmp_path: Path) -> Iterator[FakeGalaxy]:
    """A running `FakeGalaxy` whose disk is `<tmp_path>/galaxy`."""
    with FakeGalaxy(tmp_path / "galaxy") as galaxy:
        yield galaxy
