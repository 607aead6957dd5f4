"""The job records of one manager: on disk (the `JobStore`), the unfinished ones in memory,
a lock per job, and the state observers.

Why one place: every change of a job's state goes through `save`, so the observers (the
metrics) hear each transition exactly once, with the state before, without the job service
having to say so at each of its transitions.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import zlib

from pulsar.jobs.events import StateObserver
from pulsar.jobs.state import JobRecord, JobState
from pulsar.jobs.store import JobStore

log = logging.getLogger(__name__)

_LOCK_STRIPES = 64


class JobTable:
    """Records of one manager's jobs.  `closed`: saving is off (see `save`)."""

    def __init__(self, store: JobStore):
        self.store = store
        self.closed = False
        self._locks = [threading.RLock() for _ in range(_LOCK_STRIPES)]
        #: The unfinished jobs (the record objects the service mutates, then saves).
        self._active: dict[str, JobRecord] = {}
        #: The state each active job was last saved in (the records change before they are saved).
        self._saved: dict[str, JobState] = {}
        self._observers: list[StateObserver] = []

    def add_observer(self, observer: StateObserver) -> None:
        """Hear every change of a saved state (`pulsar.jobs.events.StateObserver`)."""
        self._observers.append(observer)

    def lock(self, job_id: str) -> threading.RLock:
        return self._locks[zlib.crc32(job_id.encode()) % _LOCK_STRIPES]

    def get(self, job_id: str) -> JobRecord | None:
        record = self._active.get(job_id)
        return record if record is not None else self.store.load(job_id)

    def save(self, record: JobRecord, *, durable: bool = True) -> None:
        """Persist `record` (caller holds its lock) and tell the observers if its state changed."""
        if self.closed:
            # Late threads (a transfer that returns, a process that exits) must not overwrite what the next start decides.
            log.debug("not recording %s for job %s: shutting down", record.state.name, record.job_id)
            return
        record.updated = time.time()
        self.store.save(record, durable=durable)
        job_id, state = record.job_id, record.state
        previous = self._saved.get(job_id)
        if state.terminal:
            self._active.pop(job_id, None)
            self._saved.pop(job_id, None)
        else:
            self._active[job_id] = record
            self._saved[job_id] = state
        if previous is not state:
            for observer in self._observers:
                try:
                    observer(job_id, previous, state)
                except Exception:
                    log.exception("state observer failed for job %s (%s)", job_id, state.name)

    def forget(self, job_id: str) -> None:
        """Delete the job's record (the job is cleaned, or starts afresh)."""
        self.store.delete(job_id)
        self._active.pop(job_id, None)
        self._saved.pop(job_id, None)

    def load_active(self) -> list[JobRecord]:
        """The unfinished jobs of the store, now also in memory (at start, for recovery)."""
        records = self.store.active()
        for record in records:
            self._active[record.job_id] = record
            self._saved[record.job_id] = record.state
        return records

    def state_counts(self) -> collections.Counter[JobState]:
        """How many unfinished jobs are in each state (for a scrape: no lock, a snapshot)."""
        return collections.Counter(self._saved.copy().values())
