"""Shared machinery for back-ends that hand jobs to an external scheduler.

A scheduler-backed manager only has to say how to submit one job, how to ask about many
jobs at once, and how to cancel one (`ExternalManager._submit_external`, `_poll`,
`_cancel_external`).  This base does the rest, the same way for every scheduler:

* the external id is persisted through `events.submitted(job_id, {"external_id": ...})`
  before anything else can happen to the job, so a restart can always find it again;
* ONE monitor thread per manager polls the status of ALL its active jobs in one scheduler
  call per `poll_interval` seconds and turns what it sees into `started` / `finished` /
  `vanished` events;
* `recover` re-attaches to the persisted external id.

Exit codes are never taken from the scheduler: the job script writes `<job>/return_code`
itself.  The scheduler's view only says whether the job is alive, and why it ended when it
ended abnormally (cancelled, timed out, failed to start); that reason goes into
`finished(..., failure=...)` and is used by the job layer only when no return_code exists.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import logging
import threading
from typing import Any, Mapping, Sequence

from pulsar.managers.base import LaunchError, LaunchSpec, Manager

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 2.0
EXTERNAL_ID = "external_id"


class Phase(enum.Enum):
    """What a scheduler says about one job, reduced to what the job layer acts on."""

    QUEUED = "queued"  # accepted, not running (pending, held, requeued, ...)
    RUNNING = "running"  # the job script is (or may still be) running, incl. suspended
    ENDED = "ended"  # the job script ended normally: complete it from return_code
    FAILED = "failed"  # ended abnormally (cancelled, timeout, failed to start, ...)
    GONE = "gone"  # the scheduler no longer knows the job: it ended some time ago
    UNKNOWN = "unknown"  # a state we cannot interpret: log it and ask again later

    @property
    def final(self) -> bool:
        return self in (Phase.ENDED, Phase.FAILED, Phase.GONE)


@dataclasses.dataclass(frozen=True)
class Observation:
    """One job's state as seen in one status poll.  `detail` is the scheduler's own word
    (state name, reason) and becomes the failure reason for `Phase.FAILED`."""

    phase: Phase
    detail: str = ""


GONE = Observation(Phase.GONE, "not known to the scheduler")


class StatusUnavailable(Exception):
    """The status call itself failed (scheduler down, timeout): try again next poll.
    Never taken to mean anything about the jobs."""


@dataclasses.dataclass
class Tracked:
    job_id: str
    external_id: str
    spec: LaunchSpec
    backend: dict[str, Any] = dataclasses.field(default_factory=dict)  # as persisted
    started: bool = False
    recovered: bool = False  # first sight after a restart: GONE means vanished
    last: Phase | None = None


class ExternalManager(Manager):
    """Base for managers whose jobs live in an external scheduler.

    Subclasses implement the three scheduler hooks; all bookkeeping is here.  Options read
    here: `poll_interval` (seconds between status polls, default 2).
    """

    def __init__(self, name: str, options: Mapping[str, Any]):
        super().__init__(name, options)
        self.poll_interval = float(options.get("poll_interval", DEFAULT_POLL_INTERVAL))
        self._jobs: dict[str, Tracked] = {}
        self._lock = threading.Lock()
        # One sweep at a time: observers such as the Condor log follower keep a read position.
        self._sweep_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # --- scheduler hooks -------------------------------------------------------------

    @abc.abstractmethod
    def _submit_external(self, spec: LaunchSpec) -> str:
        """Submit `spec.script`; return the scheduler's id.  Raise `LaunchError` on refusal."""

    @abc.abstractmethod
    def _poll(self, jobs: Sequence[Tracked]) -> Mapping[str, Observation]:
        """Status of all `jobs`, keyed by external id, in as few scheduler calls as the
        scheduler allows (one where it has a bulk query).  An id missing from the result
        counts as `GONE`.  Raise `StatusUnavailable` when the scheduler cannot be asked."""

    @abc.abstractmethod
    def _cancel_external(self, external_id: str, backend: Mapping[str, Any]) -> None:
        """Ask the scheduler to stop the job (`backend` as persisted).  Must not raise for
        jobs it no longer knows."""

    def _backend_for(self, spec: LaunchSpec, external_id: str) -> dict[str, Any]:
        """What to persist for a submitted job; always includes the external id."""
        return {EXTERNAL_ID: external_id}

    def _release(self, tracked: Tracked) -> None:
        """Hook called once per job when it reached a final phase or was cancelled, before
        the job layer hears of the end (e.g. to take a job directory back)."""

    # --- Manager seam ----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._monitor, name=f"pulsar-monitor-{self.name}", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.poll_interval))
            self._thread = None

    def submit(self, spec: LaunchSpec) -> None:
        try:
            external_id = self._submit_external(spec)
        except LaunchError:
            raise
        except OSError as exc:  # the submit program itself could not be run
            raise LaunchError(f"{self.type_name} could not submit job {spec.job_id}: {exc}") from exc
        log.info("manager %s: job %s submitted as %s", self.name, spec.job_id, external_id)
        backend = self._backend_for(spec, external_id)
        self._require_events().submitted(spec.job_id, backend)
        self._track(Tracked(spec.job_id, external_id, spec, backend))

    def cancel(self, job_id: str, backend: Mapping[str, Any]) -> None:
        with self._lock:
            tracked = self._jobs.pop(job_id, None)
        external_id = tracked.external_id if tracked else backend.get(EXTERNAL_ID)
        if not external_id:
            log.info("manager %s: cancel of job %s: no external id, nothing to stop", self.name, job_id)
            return
        try:
            self._cancel_external(str(external_id), tracked.backend if tracked else backend)
        except Exception:
            log.exception("manager %s: cancelling job %s (%s) failed", self.name, job_id, external_id)
        if tracked is not None:
            self._release(tracked)

    def recover(self, spec: LaunchSpec, backend: Mapping[str, Any], running: bool) -> None:
        """Re-attach by the persisted external id, whether the job was queued or running
        (a queued job with an id is still queued in the scheduler: submitting it again would
        run it twice).  Only a job that never got an id is submitted again."""
        external_id = backend.get(EXTERNAL_ID)
        if not external_id:
            if running:
                log.warning("manager %s: running job %s has no external id", self.name, spec.job_id)
                self._require_events().vanished(spec.job_id)
            else:
                self.submit(spec)
            return
        log.info("manager %s: re-attaching job %s to %s", self.name, spec.job_id, external_id)
        self._track(Tracked(spec.job_id, str(external_id), spec, dict(backend), started=running, recovered=True))

    # --- monitor ---------------------------------------------------------------------

    def _require_events(self) -> Any:
        if self.events is None:
            raise RuntimeError(f"manager {self.name} used before bind()")
        return self.events

    def _track(self, tracked: Tracked) -> None:
        with self._lock:
            self._jobs[tracked.job_id] = tracked
        self._wake.set()

    def active_external_ids(self) -> dict[str, str]:
        """job id -> external id of every job being watched (for tests and diagnostics)."""
        with self._lock:
            return {job_id: t.external_id for job_id, t in self._jobs.items()}

    def _monitor(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # keep the monitor alive whatever a scheduler does
                log.exception("manager %s: status poll failed", self.name)
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def poll_once(self) -> None:
        """One status sweep over all active jobs (the monitor calls this in a loop; sweeps
        never overlap, whoever calls)."""
        with self._sweep_lock:
            with self._lock:
                jobs = list(self._jobs.values())
            if not jobs:
                return
            try:
                observations = self._poll(jobs)
            except StatusUnavailable as exc:
                log.warning("manager %s: scheduler status unavailable, will retry: %s", self.name, exc)
                return
            for tracked in jobs:
                self._apply(tracked, observations.get(tracked.external_id, GONE))

    def _apply(self, tracked: Tracked, seen: Observation) -> None:
        events = self._require_events()
        with self._lock:
            if self._jobs.get(tracked.job_id) is not tracked:
                return  # cancelled or replaced meanwhile
            if seen.phase.final:
                del self._jobs[tracked.job_id]
        if seen.phase.final:
            self._release(tracked)
        changed = seen.phase is not tracked.last
        tracked.last = seen.phase
        job_id = tracked.job_id
        if seen.phase is Phase.RUNNING and not tracked.started:
            tracked.started = True
            events.started(job_id, dict(tracked.backend))
        elif seen.phase is Phase.UNKNOWN and changed:
            log.warning("manager %s: job %s (%s) in uninterpreted state %r; still watching",
                        self.name, job_id, tracked.external_id, seen.detail)
        elif seen.phase is Phase.ENDED:
            events.finished(job_id)
        elif seen.phase is Phase.FAILED:
            log.info("manager %s: job %s (%s) ended abnormally: %s", self.name, job_id, tracked.external_id, seen.detail)
            events.finished(job_id, failure=seen.detail or "the scheduler reports the job failed")
        elif seen.phase is Phase.GONE:
            if tracked.recovered:
                log.info("manager %s: recovered job %s (%s) is gone from the scheduler", self.name, job_id, tracked.external_id)
                events.vanished(job_id)
            else:
                log.info("manager %s: job %s (%s) left the scheduler", self.name, job_id, tracked.external_id)
                events.finished(job_id)
        if seen.phase is not Phase.UNKNOWN:
            tracked.recovered = False
