"""The shared external-manager machinery with an in-memory scheduler: event sequences,
recovery rules, status outages, exactly one terminal event per job."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import pytest

from pulsar.managers.base import LaunchSpec
from pulsar.managers.external import ExternalManager, Observation, Phase, StatusUnavailable, Tracked
from pulsar.scripts import chown_working_directory as chown
from test.managers.harness import RecordingEvents, make_job


class MemoryScheduler(ExternalManager):
    type_name = "memory"

    def __init__(self) -> None:
        super().__init__("mem", {"poll_interval": 60})
        self.states: dict[str, Observation] = {}
        self.polls: list[list[str]] = []
        self.cancelled: list[str] = []
        self.down = False

    def _submit_external(self, spec: LaunchSpec) -> str:
        external_id = f"x{len(self.states) + 1}"
        self.states[external_id] = Observation(Phase.QUEUED)
        return external_id

    def _poll(self, jobs: Sequence[Tracked]) -> Mapping[str, Observation]:
        if self.down:
            raise StatusUnavailable("controller down")
        self.polls.append([t.external_id for t in jobs])
        return {t.external_id: self.states[t.external_id] for t in jobs if t.external_id in self.states}

    def _cancel_external(self, external_id: str, backend: Mapping[str, Any]) -> None:
        self.cancelled.append(external_id)


@pytest.fixture
def sched(events: RecordingEvents) -> MemoryScheduler:
    manager = MemoryScheduler()
    manager.bind(events)  # no start(): the test drives poll_once itself
    return manager


def kinds(events: RecordingEvents, job_id: str) -> list[str]:
    return [k for k, _ in events.of(job_id)]


def test_lifecycle_and_one_bulk_poll(sched: MemoryScheduler, events: RecordingEvents, tmp_path: Path) -> None:
    a, b = make_job(tmp_path, "a", "true", sched), make_job(tmp_path, "b", "true", sched)
    sched.submit(a)
    sched.submit(b)
    sched.poll_once()
    assert sched.polls == [["x1", "x2"]]  # one scheduler call for all jobs
    sched.states["x1"] = Observation(Phase.RUNNING)
    sched.poll_once()
    sched.poll_once()
    sched.states["x1"] = Observation(Phase.ENDED)
    sched.states["x2"] = Observation(Phase.FAILED, "timed out")
    sched.poll_once()
    sched.poll_once()
    assert kinds(events, "a") == ["submitted", "started", "finished"]
    assert events.of("b", "finished") == [("finished", {"exit_code": None, "failure": "timed out"})]
    assert sched.active_external_ids() == {}


def test_outage_and_unknown_states_keep_jobs(sched: MemoryScheduler, events: RecordingEvents, tmp_path: Path) -> None:
    sched.submit(make_job(tmp_path, "a", "true", sched))
    sched.down = True
    sched.poll_once()
    sched.down = False
    sched.states["x1"] = Observation(Phase.UNKNOWN, "WEIRD")
    sched.poll_once()
    assert kinds(events, "a") == ["submitted"]
    del sched.states["x1"]  # the scheduler forgot the job: it ended
    sched.poll_once()
    assert kinds(events, "a") == ["submitted", "finished"]


def test_recovery_rules(sched: MemoryScheduler, events: RecordingEvents, tmp_path: Path) -> None:
    queued = make_job(tmp_path, "q", "true", sched)
    sched.recover(queued, {}, running=False)  # never got an id: submitted again
    assert kinds(events, "q") == ["submitted"]
    lost = make_job(tmp_path, "l", "true", sched)
    sched.recover(lost, {}, running=True)  # running without an id: nobody can find it
    assert kinds(events, "l") == ["vanished"]
    waiting = make_job(tmp_path, "w", "true", sched)
    sched.states["x9"] = Observation(Phase.QUEUED)
    sched.recover(waiting, {"external_id": "x9"}, running=False)  # queued with an id: re-attach, no resubmit
    gone = make_job(tmp_path, "g", "true", sched)
    sched.recover(gone, {"external_id": "nope"}, running=True)
    sched.poll_once()
    assert kinds(events, "w") == [] and kinds(events, "g") == ["vanished"]
    sched.states["x9"] = Observation(Phase.RUNNING)
    sched.poll_once()
    del sched.states["x9"]
    sched.poll_once()  # seen alive after the restart, so leaving is an ordinary end
    assert kinds(events, "w") == ["started", "finished"]


def test_cancel_stops_watching(sched: MemoryScheduler, events: RecordingEvents, tmp_path: Path) -> None:
    sched.submit(make_job(tmp_path, "a", "true", sched))
    sched.cancel("a", {"external_id": "x1"})
    sched.cancel("zz", {})  # unknown, no id: nothing to do, no error
    sched.states["x1"] = Observation(Phase.FAILED, "cancelled")
    sched.poll_once()
    assert sched.cancelled == ["x1"] and kinds(events, "a") == ["submitted"]


def test_chown_helper_refuses_other_moves(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    me = os.getuid()
    chown.check_move(str(job), me, me)  # take back: parent owned by the caller
    with pytest.raises(chown.Refused, match="system user"):
        chown.check_move(str(job), 1, me)
    with pytest.raises(chown.Refused, match="not owned"):
        chown.check_move(str(job), 5000, me + 1)
    link = tmp_path / "link"
    link.symlink_to(job)
    with pytest.raises(chown.Refused, match="symbolic link"):
        chown.check_move(str(link), 5000, me)
    with pytest.raises(chown.Refused, match="parent"):
        chown.check_move("/usr/share", me + 1, me + 1)
