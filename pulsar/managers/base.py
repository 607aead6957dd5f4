"""The seam between the job layer and the back-ends that run job scripts.

The job layer (`pulsar.jobs.service`) owns state, persistence and the job directory; a
back-end only starts, watches and stops `command.sh`.  It reports what happens through
`ManagerEvents`, from any thread, as soon as it knows.  The job script writes the tool's
exit code to `<job>/return_code` itself; a back-end's exit code is only a fallback.
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol

from pulsar.managers.environment import JobEnvironment, default_environment


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    """Everything a back-end needs to run one job script."""

    job_id: str
    job_directory: Path
    script: Path  # <job>/command.sh, executable
    working_directory: Path
    stdout_path: Path  # <job>/metadata/job_stdout
    stderr_path: Path  # <job>/metadata/job_stderr
    job_name: str
    submit_params: Mapping[str, Any]  # the client's `submit_*` destination params
    attempt: int = 1


class ManagerEvents(Protocol):
    """Callbacks into the job layer.  Each may be called from any thread; each is idempotent."""

    def submitted(self, job_id: str, backend: dict[str, Any]) -> None:
        """The back-end accepted the job; `backend` (e.g. an external id) is persisted."""

    def started(self, job_id: str, backend: dict[str, Any]) -> None:
        """The job script is running; `backend` (e.g. pid and start time) is persisted."""

    def finished(self, job_id: str, *, exit_code: int | None = None, failure: str | None = None) -> None:
        """The job script is gone.  `exit_code` is the back-end's view (used only if the
        script wrote no return_code); `failure` says why the scheduler ended it abnormally
        (timed out, failed to start, ...) and makes the job `failed` when there is no
        return_code."""

    def vanished(self, job_id: str) -> None:
        """After a restart: the job is gone and nobody saw how it ended.  The job layer
        completes it from return_code, or runs it again (it was killed with the server)."""


class LaunchError(Exception):
    """The back-end could not accept the job; the message is shown to the client."""


class Manager(abc.ABC):
    """A back-end.  Subclasses declare `type_name` (the `type` option value)."""

    type_name: ClassVar[str]

    def __init__(self, name: str, options: Mapping[str, Any]):
        self.name = name
        self.options = dict(options)
        self.events: ManagerEvents | None = None
        #: What jobs (and the scheduler commands that export their environment to jobs)
        #: run with; the application replaces it through `use_environment`.
        self.environment: JobEnvironment = default_environment()

    def use_environment(self, environment: JobEnvironment) -> None:
        """Jobs inherit `environment` (the server's, secrets withheld); called before `start`."""
        self.environment = environment

    def bind(self, events: ManagerEvents) -> None:
        """Called once by the job layer before `start`."""
        self.events = events

    def start(self) -> None:
        """Start monitor threads.  Called after `bind` and before any `submit`/`recover`."""

    @abc.abstractmethod
    def submit(self, spec: LaunchSpec) -> None:
        """Queue or start the job.  Raise `LaunchError` if it cannot be accepted."""

    @abc.abstractmethod
    def cancel(self, job_id: str, backend: Mapping[str, Any]) -> None:
        """Stop the job (whole process tree / scheduler job).  Never raises for unknown jobs."""

    @abc.abstractmethod
    def recover(self, spec: LaunchSpec, backend: Mapping[str, Any], running: bool) -> None:
        """Pick a job up again after a restart.

        `backend` is what this manager persisted for the job (through `submitted` /
        `started`); `running` says whether the job layer saw it start.  A job the manager
        has no trace of in `backend` was never handed over: submit it again.  Otherwise
        re-attach if it is still alive, and report `finished` or `vanished` when it is not.
        """

    def script_headers(self, spec: LaunchSpec) -> list[str]:
        """Scheduler directives placed right after the shebang of command.sh."""
        return []

    def shutdown(self) -> None:
        """Stop monitor threads; running jobs keep running."""
