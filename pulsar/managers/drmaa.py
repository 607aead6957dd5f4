"""`DrmaaManager` (type `queued_drmaa`): jobs submitted through the process's DRMAA session.

Options: `native_specification` (scheduler options, e.g. `-q all.q -pe smp 2` for Grid
Engine; wins over the client's `native_specification` submit param), `poll_interval`.
DRMAA has no bulk status call, so each poll asks about each active job in turn.
A job the DRM no longer knows (DRMAA "invalid job", e.g. after it finished and the
qmaster forgot it) is gone: the job layer completes it from return_code.
"""

from __future__ import annotations

import logging
import shlex
from typing import Any, Mapping, Sequence

from pulsar.managers.base import LaunchError, LaunchSpec
from pulsar.managers.external import ExternalManager, Observation, Phase, StatusUnavailable, Tracked
from pulsar.managers.util import drmaa as drmaa_util
from pulsar.managers.util.drmaa import DrmaaSession, DrmaaSessionFactory

log = logging.getLogger(__name__)

DRMAA_STATES: dict[str, Phase] = {
    drmaa_util.UNDETERMINED: Phase.UNKNOWN,
    drmaa_util.QUEUED_ACTIVE: Phase.QUEUED,
    drmaa_util.SYSTEM_ON_HOLD: Phase.QUEUED,
    drmaa_util.USER_ON_HOLD: Phase.QUEUED,
    drmaa_util.USER_SYSTEM_ON_HOLD: Phase.QUEUED,
    drmaa_util.RUNNING: Phase.RUNNING,
    drmaa_util.SYSTEM_SUSPENDED: Phase.RUNNING,
    drmaa_util.USER_SUSPENDED: Phase.RUNNING,
    drmaa_util.USER_SYSTEM_SUSPENDED: Phase.RUNNING,
    drmaa_util.DONE: Phase.ENDED,
    drmaa_util.FAILED: Phase.FAILED,
    drmaa_util.JOB_NOT_FOUND: Phase.GONE,
}


def drmaa_state(state: str) -> Observation:
    """Map a DRMAA job state name (or `JOB_NOT_FOUND`) to an observation."""
    phase = DRMAA_STATES.get(state, Phase.UNKNOWN)
    if phase is Phase.FAILED:
        return Observation(phase, "the DRM reports the job failed (killed, or it could not start)")
    return Observation(phase, state)


#: Grid Engine's "export every variable of the submitter" option.
EXPORT_ALL = "-V"


def export_all_replaced(native_specification: str | None) -> tuple[str | None, bool]:
    """`native_specification` without `-V`, and whether it had one.

    The DRMAA session lives in the server process, so `-V` would hand the server's whole
    environment, secrets included, to the job; the manager passes the job environment
    (secrets withheld) as `jobEnvironment` instead, which is what `-V` was asked for."""
    if not native_specification:
        return native_specification, False
    try:
        words = shlex.split(native_specification)
    except ValueError:
        return native_specification, False
    if EXPORT_ALL not in words:
        return native_specification, False
    return shlex.join(word for word in words if word != EXPORT_ALL) or None, True


def job_template(spec: LaunchSpec, native_specification: str | None,
                 environment: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The DRMAA job-template attributes for `spec` (paths are DRMAA `[host]:path`);
    `environment`, when given, becomes `jobEnvironment`."""
    attrs: dict[str, Any] = {
        "remoteCommand": str(spec.script),
        "jobName": spec.job_name,
        "outputPath": f":{spec.stdout_path}",
        "errorPath": f":{spec.stderr_path}",
        "workingDirectory": str(spec.working_directory),
    }
    if native_specification:
        attrs["nativeSpecification"] = native_specification
    if environment is not None:
        attrs["jobEnvironment"] = dict(environment)
    return attrs


class DrmaaManager(ExternalManager):
    type_name = "queued_drmaa"

    def __init__(self, name: str, options: Mapping[str, Any], session_factory: DrmaaSessionFactory | None = None):
        super().__init__(name, options)
        self.native_specification: str | None = options.get("native_specification")
        if export_all_replaced(self.native_specification)[1]:
            log.info("manager %s: -V in native_specification is replaced by the job environment "
                     "(the server's without its secrets)", name)
        self._session_factory = session_factory or DrmaaSessionFactory()
        self._session: DrmaaSession | None = None

    def start(self) -> None:
        if self._session is None:
            self._session = self._session_factory.get()
        super().start()

    def shutdown(self) -> None:
        super().shutdown()
        if self._session is not None:
            self._session.close()
            self._session = None

    @property
    def session(self) -> DrmaaSession:
        if self._session is None:
            raise RuntimeError(f"manager {self.name} used before start()")
        return self._session

    def native_specification_for(self, spec: LaunchSpec) -> str | None:
        requested = spec.submit_params.get("native_specification")
        if self.native_specification and requested and requested != self.native_specification:
            log.warning("manager %s: job %s asked for native_specification %r; the manager's %r wins",
                        self.name, spec.job_id, requested, self.native_specification)
        return self.native_specification or requested

    def job_template_for(self, spec: LaunchSpec) -> dict[str, Any]:
        """The job template, with `-V` replaced by the job environment (see `export_all_replaced`)."""
        native, export_all = export_all_replaced(self.native_specification_for(spec))
        return job_template(spec, native, self.environment.variables if export_all else None)

    def _submit_external(self, spec: LaunchSpec) -> str:
        attrs = self.job_template_for(spec)
        try:
            return self.session.run_job(**attrs)
        except Exception as exc:  # DrmaaException subclasses: DeniedByDrm, InvalidAttributeValue, ...
            raise LaunchError(f"the DRM refused job {spec.job_id}: {exc}") from exc

    def _poll(self, jobs: Sequence[Tracked]) -> Mapping[str, Observation]:
        seen: dict[str, Observation] = {}
        for tracked in jobs:
            try:
                state = self.session.poll(tracked.external_id)
            except Exception as exc:  # DrmCommunicationException etc.: nothing known about the job
                raise StatusUnavailable(f"DRMAA status of {tracked.external_id} failed: {exc}") from exc
            seen[tracked.external_id] = drmaa_state(state)
        return seen

    def _cancel_external(self, external_id: str, backend: Mapping[str, Any]) -> None:
        self.session.terminate(external_id)
