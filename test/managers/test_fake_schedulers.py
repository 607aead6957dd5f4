"""`queued_cli` (Torque, OpenPBS, LSF) and `queued_condor` driven against the fake
scheduler executables in test/fakes/bin, which replay the real tools' documented output
and really run the job script in the background."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from pulsar.managers.base import LaunchError, Manager
from pulsar.managers.cli.manager import CliManager
from pulsar.managers.condor import USER_LOG, CondorManager
from test.managers.harness import RecordingEvents, make_job, return_code, wait_for_file

FLAVOURS = {
    "Torque": ({"job_plugin": "Torque"}, "torque"),
    "OpenPBS": ({"job_plugin": "OpenPBS"}, "openpbs"),
    "LSF": ({"job_plugin": "LSF"}, ""),
    "Condor": ({}, ""),
}


def _build(kind: str, **extra: Any) -> Manager:
    options: dict[str, Any] = {"poll_interval": 0.1, **FLAVOURS[kind][0], **extra}
    if kind == "Condor":
        return CondorManager("condor", {"type": "queued_condor", **options})
    return CliManager(kind.lower(), {"type": "queued_cli", **options})


@pytest.fixture(params=list(FLAVOURS))
def kind(request: pytest.FixtureRequest, fake_scheduler: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FAKE_PBS_FLAVOR", FLAVOURS[request.param][1] or "torque")
    return str(request.param)


@pytest.fixture
def manager(kind: str, events: RecordingEvents) -> Iterator[Manager]:
    manager = _build(kind)
    manager.bind(events)
    manager.start()
    yield manager
    manager.shutdown()


def test_job_runs_to_completion(manager: Manager, events: RecordingEvents, tmp_path: Path) -> None:
    spec = make_job(tmp_path, "f1", "echo out; echo err >&2; exit 3", manager)
    manager.submit(spec)
    kind, data = events.wait_for("f1", "finished", "vanished")
    assert (kind, data["failure"]) == ("finished", None)
    assert return_code(spec) == 3
    assert spec.stdout_path.read_text() == "out\n"
    assert spec.stderr_path.read_text() == "err\n"
    assert [k for k, _ in events.of("f1")] == ["submitted", "started", "finished"] or \
        [k for k, _ in events.of("f1")] == ["submitted", "finished"]


def test_held_job_is_queued_then_runs(manager: Manager, events: RecordingEvents, tmp_path: Path,
                                      fake_scheduler: Path) -> None:
    (fake_scheduler / "hold").touch()
    spec = make_job(tmp_path, "f2", "true", manager)
    manager.submit(spec)
    manager.poll_once()  # type: ignore[attr-defined]
    assert [k for k, _ in events.of("f2")] == ["submitted"]
    (fake_scheduler / "hold").unlink()
    assert events.wait_for("f2", "finished", "vanished")[0] == "finished"
    assert return_code(spec) == 0


def test_cancel(manager: Manager, events: RecordingEvents, tmp_path: Path) -> None:
    spec = make_job(tmp_path, "f3", "touch ../began; sleep 300", manager)
    manager.submit(spec)
    wait_for_file(spec.job_directory / "began")
    backend = events.of("f3", "submitted")[0][1]
    manager.cancel("f3", backend)
    assert manager.active_external_ids() == {}  # type: ignore[attr-defined]
    manager.cancel("f3", backend)  # unknown by now: no error
    assert return_code(spec) is None


def test_restart_recovers_by_external_id(kind: str, events: RecordingEvents, tmp_path: Path) -> None:
    first = _build(kind)
    first.bind(events)
    first.start()
    spec = make_job(tmp_path, "f4", "while [ ! -e ../release ]; do sleep 0.1; done; exit 7", first)
    first.submit(spec)
    events.wait_for("f4", "started")
    backend = events.of("f4", "submitted")[0][1]
    first.shutdown()

    after = RecordingEvents()
    second = _build(kind)
    second.bind(after)
    second.start()
    try:
        second.recover(spec, backend, running=True)
        (spec.job_directory / "release").touch()
        kind_, data = after.wait_for("f4", "finished", "vanished")
        assert (kind_, data["failure"]) == ("finished", None)
        assert return_code(spec) == 7
    finally:
        second.shutdown()


def test_recovering_an_unknown_job_reports_vanished(kind: str, manager: Manager, events: RecordingEvents,
                                                     tmp_path: Path) -> None:
    spec = make_job(tmp_path, "f5", "true", manager)
    manager.recover(spec, {"external_id": "4242"}, running=True)
    assert events.wait_for("f5", "finished", "vanished")[0] == "vanished"


def test_refused_submission(kind: str, events: RecordingEvents, tmp_path: Path) -> None:
    bad = {"Torque": {"job_destination": "nosuchqueue"}, "OpenPBS": {"job_destination": "nosuchqueue"},
           "LSF": {"job_queue": "nosuchqueue"}, "Condor": {"submit_universe": "grid"}}[kind]
    manager = _build(kind, **bad)
    manager.bind(events)
    spec = make_job(tmp_path, "f6", "true", manager)
    with pytest.raises(LaunchError, match="refused the job"):
        manager.submit(spec)
    assert events.of("f6") == []


def test_condor_submit_file_and_log(fake_scheduler: Path, events: RecordingEvents, tmp_path: Path) -> None:
    manager = CondorManager("c", {"type": "queued_condor", "poll_interval": 0.1, "submit_request_cpus": "2"})
    manager.bind(events)
    manager.start()
    try:
        spec = make_job(tmp_path, "c1", "exit 0", manager, {"Request_Memory": "1024", "request_cpus": "8"})
        manager.submit(spec)
        events.wait_for("c1", "finished")
        text = (spec.job_directory / "job.condor.submit").read_text()
        assert text.splitlines() == [
            "universe = vanilla", "getenv = true", "notification = NEVER",
            "request_memory = 1024", "request_cpus = 2",
            f"executable = {spec.script}", f"output = {spec.stdout_path}", f"error = {spec.stderr_path}",
            f"log = {spec.job_directory / USER_LOG}", "queue"]
        with pytest.raises(LaunchError, match="not allowed"):
            manager.submit(make_job(tmp_path, "c2", "true", manager, {"executable": "/bin/evil"}))
        with pytest.raises(LaunchError, match="line break"):
            manager.submit(make_job(tmp_path, "c3", "true", manager, {"requirements": "x\nexecutable = /bin/evil"}))
    finally:
        manager.shutdown()
