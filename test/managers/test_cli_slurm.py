"""`queued_cli` against the real single-node Slurm (test/infra/start-slurm.sh), through
LocalShell and through SecureShell to a private sshd on 127.0.0.1."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from pulsar.managers.base import LaunchError
from pulsar.managers.cli.manager import CliManager
from test.managers.harness import RecordingEvents, make_job, return_code, wait_for_file

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def _manager(events: RecordingEvents, **options: Any) -> CliManager:
    manager = CliManager("slurm", {"type": "queued_cli", "job_plugin": "Slurm", "poll_interval": 0.3, **options})
    manager.bind(events)
    manager.start()
    return manager


@pytest.fixture(params=["LocalShell", "SecureShell"])
def shell_options(request: pytest.FixtureRequest, slurm: None) -> dict[str, Any]:
    if request.param == "LocalShell":
        return {"shell_plugin": "LocalShell"}
    params = request.getfixturevalue("sshd")
    return {"shell_plugin": "SecureShell", **{f"shell_{k}": v for k, v in params.items()}}


@pytest.fixture
def manager(events: RecordingEvents, shell_options: dict[str, Any]) -> Iterator[CliManager]:
    manager = _manager(events, **shell_options)
    yield manager
    manager.shutdown()


def _slurm_state(external_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", external_id, "-o", "%T"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip()


def test_job_runs_to_completion(manager: CliManager, events: RecordingEvents, job_root: Path) -> None:
    spec = make_job(job_root, "j1", "echo out; echo err >&2; exit 3", manager)
    assert spec.script.read_text().splitlines()[1:4] == [
        f"#SBATCH -o {spec.stdout_path}", f"#SBATCH -e {spec.stderr_path}", "#SBATCH -J pulsar_j1"]
    manager.submit(spec)
    (_, submitted), = events.of("j1", "submitted")
    assert submitted["external_id"].isdigit()
    kind, data = events.wait_for("j1", "finished", "vanished")
    assert (kind, data["failure"]) == ("finished", None)
    assert return_code(spec) == 3
    assert spec.stdout_path.read_text() == "out\n"
    assert spec.stderr_path.read_text() == "err\n"
    assert len(events.terminal("j1")) == 1
    assert manager.active_external_ids() == {}


def test_cancel_stops_the_slurm_job(manager: CliManager, events: RecordingEvents, job_root: Path) -> None:
    spec = make_job(job_root, "c1", "touch ../began; sleep 300", manager)
    manager.submit(spec)
    events.wait_for("c1", "started")
    wait_for_file(spec.job_directory / "began")
    external_id = events.of("c1", "submitted")[0][1]["external_id"]
    manager.cancel("c1", {"external_id": external_id})
    assert manager.active_external_ids() == {}
    deadline_states = {"CANCELLED"}
    for _ in range(300):
        if _slurm_state(external_id) in deadline_states:
            break
        subprocess.run(["sleep", "0.2"])
    assert _slurm_state(external_id) == "CANCELLED"
    assert return_code(spec) is None


def test_restart_recovers_running_job_by_external_id(
    events: RecordingEvents, shell_options: dict[str, Any], job_root: Path
) -> None:
    first = _manager(events, **shell_options)
    spec = make_job(job_root, "r1", "while [ ! -e ../release ]; do sleep 0.2; done; exit 5", first)
    first.submit(spec)
    events.wait_for("r1", "started")
    backend = events.of("r1", "submitted")[0][1]
    first.shutdown()  # "server stops"; the Slurm job keeps running

    after = RecordingEvents()
    second = _manager(after, **shell_options)
    try:
        second.recover(spec, backend, running=True)
        assert second.active_external_ids() == {"r1": backend["external_id"]}
        (spec.job_directory / "release").touch()
        kind, data = after.wait_for("r1", "finished", "vanished")
        assert (kind, data["failure"]) == ("finished", None)
        assert return_code(spec) == 5
        assert events.terminal("r1") == []
    finally:
        second.shutdown()


def test_recovered_job_unknown_to_slurm_is_vanished(manager: CliManager, events: RecordingEvents,
                                                     job_root: Path) -> None:
    spec = make_job(job_root, "v1", "true", manager)
    manager.recover(spec, {"external_id": "99999999"}, running=True)
    assert events.wait_for("v1", "finished", "vanished")[0] == "vanished"


def test_rejected_submission_raises_launch_error(events: RecordingEvents, shell_options: dict[str, Any],
                                                 job_root: Path) -> None:
    manager = _manager(events, job_partition="no-such-partition", **shell_options)
    try:
        spec = make_job(job_root, "bad", "true", manager)
        with pytest.raises(LaunchError, match="sbatch refused the job: .*partition"):
            manager.submit(spec)
        assert events.of("bad") == []
    finally:
        manager.shutdown()
