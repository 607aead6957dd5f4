"""`queued_external_drmaa` against the real Grid Engine: the job runs as a real
unprivileged user created by the fixture, through the sudo helpers."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from pulsar.managers.base import LaunchError
from pulsar.managers.external_drmaa import ExternalDrmaaManager
from test.managers.harness import RecordingEvents, make_job, return_code, wait_for_file

pytestmark = [pytest.mark.integration, pytest.mark.sge]


@pytest.fixture
def manager(sge: None, helper_python: str, events: RecordingEvents) -> Iterator[ExternalDrmaaManager]:
    options = {
        "type": "queued_external_drmaa", "poll_interval": 0.3, "native_specification": "-q all.q",
        "drmaa_launch_script": f"{helper_python} -m pulsar.scripts.drmaa_launch",
        "drmaa_kill_script": f"{helper_python} -m pulsar.scripts.drmaa_kill",
        "chown_working_directory_script": f"{helper_python} -m pulsar.scripts.chown_working_directory",
    }
    manager = ExternalDrmaaManager("ext", options)
    manager.bind(events)
    manager.start()
    yield manager
    manager.shutdown()


def test_job_runs_as_the_submit_user(manager: ExternalDrmaaManager, events: RecordingEvents,
                                     drm_user: tuple[str, int], job_root: Path) -> None:
    user, uid = drm_user
    spec = make_job(job_root, "e1", "id -u > uid; touch made-by-job; exit 2", manager, {"user": user})
    manager.submit(spec)
    (_, backend), = events.of("e1", "submitted")
    assert backend["user"] == user and backend["external_id"].isdigit()
    kind, data = events.wait_for("e1", "finished", "vanished")
    assert (kind, data["failure"]) == ("finished", None)
    assert return_code(spec) == 2
    assert (spec.working_directory / "uid").read_text().strip() == str(uid)
    # handed back to the Pulsar user once the job ended
    assert (spec.working_directory / "made-by-job").stat().st_uid == 0
    assert spec.job_directory.stat().st_uid == 0


def test_cancel_kills_as_the_user(manager: ExternalDrmaaManager, events: RecordingEvents,
                                  drm_user: tuple[str, int], job_root: Path) -> None:
    spec = make_job(job_root, "e2", "touch ../began; sleep 300", manager, {"user": drm_user[0]})
    manager.submit(spec)
    wait_for_file(spec.job_directory / "began")
    backend = events.of("e2", "submitted")[0][1]
    manager.cancel("e2", backend)
    for _ in range(300):
        if subprocess.run(["qstat", "-j", backend["external_id"]], capture_output=True).returncode != 0:
            break
        subprocess.run(["sleep", "0.2"])
    assert subprocess.run(["qstat", "-j", backend["external_id"]], capture_output=True).returncode != 0
    assert return_code(spec) is None


def test_submit_without_user_is_refused(manager: ExternalDrmaaManager, events: RecordingEvents,
                                        job_root: Path) -> None:
    spec = make_job(job_root, "e3", "true", manager)
    with pytest.raises(LaunchError, match="submit parameter `user`"):
        manager.submit(spec)
    with pytest.raises(LaunchError, match="invalid user name"):
        manager.submit(make_job(job_root, "e4", "true", manager, {"user": "-oops"}))
    assert events.of("e3") == []
