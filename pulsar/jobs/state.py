"""The one job-state enum and the persisted job record.

States are ordered: a job only ever moves forward, except that a job found dead after a
restart may go back to QUEUED to be run again.  Each state maps to exactly one status
string of the wire protocol.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from typing import Any

from pulsar.protocol import Status


class JobState(enum.IntEnum):
    SETUP = 10  # job directory exists, not submitted yet
    STAGING_IN = 20  # server-side input staging running
    QUEUED = 30  # handed to the back-end, not started
    RUNNING = 40
    STAGING_OUT = 50  # process finished, server-side output staging running
    COMPLETE = 60
    CANCELLED = 70
    FAILED = 80
    LOST = 90

    @property
    def terminal(self) -> bool:
        return self >= JobState.COMPLETE

    @property
    def status(self) -> Status:
        return _STATUS[self]


_STATUS = {
    JobState.SETUP: Status.PREPROCESSING,
    JobState.STAGING_IN: Status.PREPROCESSING,
    JobState.QUEUED: Status.QUEUED,
    JobState.RUNNING: Status.RUNNING,
    JobState.STAGING_OUT: Status.POSTPROCESSING,
    JobState.COMPLETE: Status.COMPLETE,
    JobState.CANCELLED: Status.CANCELLED,
    JobState.FAILED: Status.FAILED,
    JobState.LOST: Status.LOST,
}


@dataclasses.dataclass
class JobRecord:
    """What the server must remember about a job to survive a restart.

    `backend` holds whatever the manager needs to find the job again (a pid and its start
    time, a scheduler id); the job layer never interprets it.
    """

    job_id: str
    state: JobState
    attempts: int = 0
    backend: dict[str, Any] = dataclasses.field(default_factory=dict)
    reason: str | None = None
    updated: float = dataclasses.field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "state": self.state.name,
            "attempts": self.attempts,
            "backend": self.backend,
            "reason": self.reason,
            "updated": self.updated,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "JobRecord":
        return cls(
            job_id=data["job_id"],
            state=JobState[data["state"]],
            attempts=int(data.get("attempts", 0)),
            backend=dict(data.get("backend") or {}),
            reason=data.get("reason"),
            updated=float(data.get("updated", 0.0)),
        )
