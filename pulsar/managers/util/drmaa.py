"""One DRMAA session per process, shared by every DRMAA manager.

The DRMAA 1.0 C library allows a single open session per process (a second
`drmaa_init` fails), so the session is a process-wide resource by nature: the factory
hands out reference-counted handles to it and closes it when the last handle is closed.
`DRMAA_LIBRARY_PATH` (and whatever the DRM needs, e.g. `SGE_ROOT`) come from the
environment, as the `drmaa` bindings read them at import.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pulsar.errors import ConfigurationError

log = logging.getLogger(__name__)

#: DRMAA job states (drmaa.JobState values) the managers understand
UNDETERMINED = "undetermined"
QUEUED_ACTIVE = "queued_active"
SYSTEM_ON_HOLD = "system_on_hold"
USER_ON_HOLD = "user_on_hold"
USER_SYSTEM_ON_HOLD = "user_system_on_hold"
RUNNING = "running"
SYSTEM_SUSPENDED = "system_suspended"
USER_SUSPENDED = "user_suspended"
USER_SYSTEM_SUSPENDED = "user_system_suspended"
DONE = "done"
FAILED = "failed"

#: pseudo-state for "the DRM does not know this job" (DRMAA InvalidJobException, code 18)
JOB_NOT_FOUND = "not_found"

#: attributes of a job template that `run_job` accepts
TEMPLATE_ATTRIBUTES = frozenset({
    "remoteCommand", "args", "jobName", "workingDirectory", "outputPath", "errorPath", "inputPath",
    "joinFiles", "nativeSpecification", "jobEnvironment", "email", "blockEmail", "jobCategory",
    "startTime", "deadlineTime", "hardRunDurationLimit", "softRunDurationLimit",
    "hardWallclockTimeLimit", "softWallclockTimeLimit", "transferFiles",
})


def load_drmaa() -> Any:
    """Import the `drmaa` bindings, turning the usual set-up mistakes into clear errors."""
    try:
        import drmaa
    except ImportError as exc:
        raise ConfigurationError("DRMAA managers need the Python package `drmaa` (pip install drmaa)") from exc
    except RuntimeError as exc:  # raised by the bindings when DRMAA_LIBRARY_PATH is unset
        raise ConfigurationError(f"cannot load libdrmaa: {exc}; set DRMAA_LIBRARY_PATH") from exc
    except OSError as exc:
        hint = ""
        if "static TLS" in str(exc):
            hint = (" (libdrmaa links jemalloc: start the server with "
                    "GLIBC_TUNABLES=glibc.rtld.optional_static_tls=16384 or LD_PRELOAD=<libjemalloc.so.2>)")
        raise ConfigurationError(f"cannot load libdrmaa: {exc}{hint}") from exc
    return drmaa


class DrmaaSession:
    """A handle on the process's DRMAA session.  All methods are thread-safe."""

    def __init__(self, owner: "_SharedSession", drmaa: Any, session: Any):
        self._owner = owner
        self._drmaa = drmaa
        self._session = session
        self._closed = False

    def run_job(self, **template_attrs: Any) -> str:
        """Submit one job described by DRMAA job-template attributes; return its id."""
        unknown = set(template_attrs) - TEMPLATE_ATTRIBUTES
        if unknown:
            raise ValueError(f"unknown DRMAA job template attributes {sorted(unknown)}")
        with self._owner.lock:
            template = self._session.createJobTemplate()
            try:
                for key, value in template_attrs.items():
                    setattr(template, key, value)
                return str(self._session.runJob(template))
            finally:
                self._session.deleteJobTemplate(template)

    # -- the contract of Galaxy's DRMAA, Slurm and Univa runners (and the reference) ------

    def job_status(self, external_id: str) -> str:
        """The DRMAA state name.  Raises the `drmaa` package's `InvalidJobException` for a
        job the DRM does not know (finished and purged, or never existed): Galaxy's DRMAA
        runner catches exactly that to finish the job.  Does not reap a finished job, so a
        later `session.wait()` (Galaxy's Univa runner) still gets its exit information."""
        with self._owner.lock:
            return str(self._session.jobStatus(external_id))

    def kill(self, external_id: str) -> None:
        """Terminate the job; `InvalidJobException` if the DRM no longer knows it."""
        with self._owner.lock:
            self._session.control(external_id, self._drmaa.JobControlAction.TERMINATE)

    @property
    def session(self) -> Any:
        """The underlying `drmaa.Session` (Galaxy's Univa runner calls its `wait`)."""
        return self._session

    # -- what our managers use -------------------------------------------------------------

    def poll(self, external_id: str) -> str:
        """The state name, `JOB_NOT_FOUND` for a job the DRM does not know; a finished job
        is reaped (the library keeps a record of every job this session submitted until
        someone waits for it, and our managers never do).  Other DRMAA errors propagate."""
        try:
            state = self.job_status(external_id)
        except self._drmaa.errors.InvalidJobException:
            return JOB_NOT_FOUND
        if state in (DONE, FAILED):
            try:
                with self._owner.lock:
                    self._session.wait(external_id, self._drmaa.Session.TIMEOUT_NO_WAIT)
            except self._drmaa.errors.DrmaaException:
                pass
        return state

    def terminate(self, external_id: str) -> None:
        """`kill`, where a job the DRM no longer knows is not an error."""
        try:
            self.kill(external_id)
        except self._drmaa.errors.InvalidJobException:
            log.info("DRMAA job %s is already gone", external_id)

    @property
    def contact(self) -> str:
        return str(self._session.contact)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner.release()


class _SharedSession:
    """The process's one session and its reference count."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._session: Any = None
        self._drmaa: Any = None
        self._users = 0

    def acquire(self) -> DrmaaSession:
        with self.lock:
            if self._session is None:
                self._drmaa = load_drmaa()
                session = self._drmaa.Session()
                session.initialize()
                self._session = session
                log.info("DRMAA session opened: %s (%s)", session.contact, session.drmsInfo)
            self._users += 1
            return DrmaaSession(self, self._drmaa, self._session)

    def release(self) -> None:
        with self.lock:
            self._users -= 1
            if self._users == 0 and self._session is not None:
                try:
                    self._session.exit()
                except Exception:
                    log.exception("closing the DRMAA session failed")
                self._session = None


_PROCESS_SESSION = _SharedSession()


class DrmaaSessionFactory:
    """Hands out handles on the process's single DRMAA session."""

    def get(self, **kwargs: Any) -> DrmaaSession:
        return _PROCESS_SESSION.acquire()
