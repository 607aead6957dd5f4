"""A faithful-enough stand-in for `pulsar.core.PulsarApp` and its `JobService`, so the HTTP
layer can be tested on its own.  It records calls and stores files in a temp directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, Mapping

from pulsar.errors import InvalidArgument, NotFound
from pulsar.telemetry import ServerMetrics
from pulsar.util.digests import DigestCache
from pulsar.util.fileio import Readable, StreamResult, stream_to_file


class FakeService:
    def __init__(self, name: str, root: Path):
        self.name = name
        self.root = root
        self.calls: list[tuple[Any, ...]] = []
        self.digests = DigestCache()

    def _job_dir(self, job_id: str) -> Path:
        if "/" in job_id or job_id in (".", ".."):
            raise InvalidArgument(f"bad job id {job_id!r}")
        return self.root / job_id

    def _file(self, job_id: str, path_type: str | None, name: str | None) -> Path:
        if not name or "/" in name or name in (".", ".."):
            raise InvalidArgument(f"bad name {name!r}")
        if path_type not in (None, "input", "output", "config"):
            raise InvalidArgument(f"unknown type {path_type!r}")
        return self._job_dir(job_id) / (path_type or "output") / name

    def setup(self, job_id: str, tool_id: str | None = None, tool_version: str | None = None,
              preserve_galaxy_python_environment: str | None = None) -> dict[str, Any]:
        self.calls.append(("setup", job_id, tool_id, tool_version))
        job_dir = self._job_dir(job_id)
        for sub in ("input", "output", "config"):
            (job_dir / sub).mkdir(parents=True, exist_ok=True)
        return {"job_id": job_id, "job_directory": str(job_dir), "tool_id": tool_id}

    def upload(self, job_id: str, path_type: str | None, name: str | None, body: Readable,
               content_length: int | None) -> tuple[Path, StreamResult]:
        self.calls.append(("upload", job_id, path_type, name, content_length))
        target = self._file(job_id, path_type, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target, stream_to_file(body, target, length=content_length, fsync=False)

    def file_path(self, job_id: str, path_type: str | None, name: str | None) -> Path:
        self.calls.append(("file_path", job_id, path_type, name))
        return self._file(job_id, path_type, name)

    def submit(self, job_id: str, args: Mapping[str, str]) -> None:
        self.calls.append(("submit", job_id, dict(args)))

    def status(self, job_id: str) -> dict[str, Any]:
        self.calls.append(("status", job_id))
        return {"complete": "false", "status": "lost" if not self._job_dir(job_id).exists() else "running",
                "job_id": job_id}

    def output_file(self, job_id: str, path_type: str | None, name: str | None) -> BinaryIO:
        """Like the real service, hands over the file already open."""
        self.calls.append(("output_file", job_id, path_type, name))
        path = self._file(job_id, path_type, name)
        if not path.is_file():
            raise NotFound(f"no output {name!r}")
        return open(path, "rb")

    def cancel(self, job_id: str) -> None:
        self.calls.append(("cancel", job_id))

    def clean(self, job_id: str) -> None:
        self.calls.append(("clean", job_id))


class FakeApp:
    def __init__(self, root: Path, managers: tuple[str, ...] = ("_default_", "cluster"),
                 private_token: str | None = None, max_request_line: int = 1024 * 1024):
        self.private_token = private_token
        self.version = "0.17.0.dev0"
        self.max_request_line = max_request_line
        self.metrics = ServerMetrics()
        self.metrics_public = False
        self.services = {name: FakeService(name, root / name) for name in managers}

    def shutdown(self) -> None:
        self.shut_down = True

    def service(self, manager_name: str) -> Any:
        try:
            return self.services[manager_name]
        except KeyError:
            raise NotFound(f"no manager named {manager_name!r}") from None
