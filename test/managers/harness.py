"""A minimal job layer for driving managers in tests.

`RecordingEvents` implements `ManagerEvents` and lets a test wait for an event;
`make_job` lays out a job directory and writes a command.sh that, like the real job
script, puts the manager's scheduler headers after the shebang, cds into `working/` and
records the tool's exit code in `<job>/return_code`.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from pulsar.managers.base import LaunchSpec, Manager

WAIT = 90.0  # generous upper bound for a scheduler to act; tests never assert durations


class RecordingEvents:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self._cond = threading.Condition()

    def _add(self, kind: str, job_id: str, data: dict[str, Any]) -> None:
        with self._cond:
            self.events.append((kind, job_id, data))
            self._cond.notify_all()

    def submitted(self, job_id: str, backend: dict[str, Any]) -> None:
        self._add("submitted", job_id, dict(backend))

    def started(self, job_id: str, backend: dict[str, Any]) -> None:
        self._add("started", job_id, dict(backend))

    def finished(self, job_id: str, *, exit_code: int | None = None, failure: str | None = None) -> None:
        self._add("finished", job_id, {"exit_code": exit_code, "failure": failure})

    def vanished(self, job_id: str) -> None:
        self._add("vanished", job_id, {})

    def of(self, job_id: str, kind: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        with self._cond:
            return [(k, d) for k, j, d in self.events if j == job_id and (kind is None or k == kind)]

    def wait_for(self, job_id: str, *kinds: str, timeout: float = WAIT) -> tuple[str, dict[str, Any]]:
        """The first recorded event of `job_id` whose kind is in `kinds`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for k, j, d in self.events:
                    if j == job_id and k in kinds:
                        return k, d
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {kinds} event for {job_id} within {timeout}s; saw {self.events}")
                self._cond.wait(remaining)

    def terminal(self, job_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [e for e in self.of(job_id) if e[0] in ("finished", "vanished")]


def make_job(root: Path, job_id: str, command: str, manager: Manager,
             submit_params: dict[str, Any] | None = None) -> LaunchSpec:
    job_dir = root / job_id
    (job_dir / "working").mkdir(parents=True)
    (job_dir / "metadata").mkdir()
    spec = LaunchSpec(
        job_id=job_id,
        job_directory=job_dir,
        script=job_dir / "command.sh",
        working_directory=job_dir / "working",
        stdout_path=job_dir / "metadata" / "job_stdout",
        stderr_path=job_dir / "metadata" / "job_stderr",
        job_name=f"pulsar_{job_id}",
        submit_params=submit_params or {},
    )
    lines = ["#!/bin/bash", *manager.script_headers(spec),
             f"cd '{spec.working_directory}'",
             f"({command}); echo $? > '{job_dir}/return_code'"]
    spec.script.write_text("\n".join(lines) + "\n")
    os.chmod(spec.script, 0o755)
    return spec


def return_code(spec: LaunchSpec) -> int | None:
    path = spec.job_directory / "return_code"
    return int(path.read_text()) if path.exists() else None


def wait_for_file(path: Path, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        time.sleep(0.1)
