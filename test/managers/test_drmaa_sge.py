"""`queued_drmaa` against the real Son of Grid Engine (test/infra/start-sge.sh) through
its libdrmaa.  Run pytest with `. /run/drm-ci/sge/sge.env` sourced."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from pulsar.managers.drmaa import DrmaaManager
from test.managers.harness import RecordingEvents, make_job, return_code, wait_for_file

pytestmark = [pytest.mark.integration, pytest.mark.sge]


def _manager(events: RecordingEvents, **options: object) -> DrmaaManager:
    manager = DrmaaManager("sge", {"type": "queued_drmaa", "poll_interval": 0.3, **options})
    manager.bind(events)
    manager.start()
    return manager


@pytest.fixture
def manager(sge: None, events: RecordingEvents) -> Iterator[DrmaaManager]:
    manager = _manager(events, native_specification="-q all.q -shell yes")
    yield manager
    manager.shutdown()


def _qstat_knows(external_id: str) -> bool:
    return subprocess.run(["qstat", "-j", external_id], capture_output=True).returncode == 0


def test_job_runs_to_completion(manager: DrmaaManager, events: RecordingEvents, job_root: Path) -> None:
    spec = make_job(job_root, "d1", "echo out; echo err >&2; pwd; exit 4", manager)
    manager.submit(spec)
    external_id = events.of("d1", "submitted")[0][1]["external_id"]
    assert external_id.isdigit()
    kind, data = events.wait_for("d1", "finished", "vanished")
    assert (kind, data["failure"]) == ("finished", None)
    assert return_code(spec) == 4
    assert spec.stdout_path.read_text() == f"out\n{spec.working_directory}\n"
    assert spec.stderr_path.read_text() == "err\n"
    assert len(events.terminal("d1")) == 1


def test_cancel_terminates_the_sge_job(manager: DrmaaManager, events: RecordingEvents, job_root: Path) -> None:
    spec = make_job(job_root, "d2", "touch ../began; sleep 300", manager)
    manager.submit(spec)
    wait_for_file(spec.job_directory / "began")
    external_id = events.of("d2", "submitted")[0][1]["external_id"]
    manager.cancel("d2", {"external_id": external_id})
    for _ in range(300):
        if not _qstat_knows(external_id):
            break
        subprocess.run(["sleep", "0.2"])
    assert not _qstat_knows(external_id)
    assert return_code(spec) is None
    manager.cancel("d2", {"external_id": external_id})  # a second cancel is harmless


def test_restart_recovers_running_job_by_external_id(sge: None, job_root: Path) -> None:
    before = RecordingEvents()
    first = _manager(before)
    spec = make_job(job_root, "d3", "while [ ! -e ../release ]; do sleep 0.2; done; exit 6", first)
    first.submit(spec)
    before.wait_for("d3", "started")
    backend = before.of("d3", "submitted")[0][1]
    first.shutdown()  # closes the DRMAA session; the SGE job keeps running

    after = RecordingEvents()
    second = _manager(after)  # a new session, which never saw the job
    try:
        second.recover(spec, backend, running=True)
        (spec.job_directory / "release").touch()
        kind, data = after.wait_for("d3", "finished", "vanished")
        # the new session cannot see how the job ended: it is either reported done
        # (still in qmaster) or unknown (gone); both complete from return_code
        assert kind in ("finished", "vanished") and data.get("failure") is None
        assert return_code(spec) == 6
    finally:
        second.shutdown()


def test_recovered_unknown_job_is_vanished(manager: DrmaaManager, events: RecordingEvents, job_root: Path) -> None:
    spec = make_job(job_root, "d4", "true", manager)
    manager.recover(spec, {"external_id": "987654"}, running=True)
    assert events.wait_for("d4", "finished", "vanished")[0] == "vanished"
