"""`CondorManager` (type `queued_condor`): HTCondor through `condor_submit` / `condor_rm`,
with status read from each job's user (event) log rather than by querying the schedd.

Submit description (`<job>/job.condor.submit`): `universe = vanilla`, `getenv = true`,
`notification = NEVER`, then the client's submit params and the manager's `submit_<key>`
options (manager wins; keys lower-cased), then `executable`, `output`, `error`, `log`
(`<job>/job_condor.log`) and `queue`.  Keys that would redirect the job itself
(executable, output, ...) are refused, and no value may contain a line break.

The user log is followed incrementally (only bytes appended since the last poll are read).
Event codes used: 000 submitted, 001 executing, 004 evicted, 005 terminated, 007 shadow
exception, 009 aborted (condor_rm), 010/011 suspended/unsuspended, 012/013 held/released
(https://htcondor.readthedocs.io/en/latest/codes-other-values/job-event-log-codes.html).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from pulsar.errors import PulsarError
from pulsar.jobs import jobfs
from pulsar.managers.base import LaunchError, LaunchSpec
from pulsar.managers.external import ExternalManager, Observation, Phase, Tracked
from pulsar.util.fileio import atomic_write_text

log = logging.getLogger(__name__)

SUBMIT_FILE = "job.condor.submit"
USER_LOG = "job_condor.log"
DEFAULTS = {"universe": "vanilla", "getenv": "true", "notification": "NEVER"}
RESERVED = frozenset({"executable", "arguments", "output", "error", "log", "input", "initialdir", "queue"})
COMMAND_TIMEOUT = 60.0

_SUBMITTED = re.compile(r"submitted to cluster (\d+)\.")
_EVENT = re.compile(r"^(\d{3}) \((\d+)\.(\d+)\.(\d+)\) ")
_KEY = re.compile(r"^\+?[A-Za-z_][A-Za-z0-9_.]*$")
_NORMAL = re.compile(r"Normal termination \(return value (-?\d+)\)")
_ABNORMAL = re.compile(r"Abnormal termination \(signal (\d+)\)")

#: event code -> phase after it; codes not listed leave the phase unchanged
EVENT_PHASES: dict[str, Phase] = {
    "000": Phase.QUEUED,
    "001": Phase.RUNNING,
    "002": Phase.QUEUED,  # executable error: HTCondor puts the job on hold
    "004": Phase.QUEUED,  # evicted: back to idle
    "005": Phase.ENDED,
    "007": Phase.QUEUED,  # shadow exception: will be rescheduled
    "009": Phase.FAILED,  # aborted by condor_rm
    "010": Phase.RUNNING,  # suspended
    "011": Phase.RUNNING,  # unsuspended
    "012": Phase.QUEUED,  # held
    "013": Phase.QUEUED,  # released
    "024": Phase.QUEUED,  # reconnect failed: rescheduled
}


def submit_description(spec: LaunchSpec, settings: Mapping[str, str]) -> str:
    """The submit file text: defaults, `settings`, then the fixed job lines."""
    merged = dict(DEFAULTS)
    for key, value in settings.items():
        key = key.lower()
        text = str(value)
        if not _KEY.match(key) or key in RESERVED:
            raise LaunchError(f"HTCondor submit setting {key!r} is not allowed")
        if "\n" in text or "\r" in text:
            raise LaunchError(f"HTCondor submit setting {key!r} contains a line break")
        merged[key] = text
    lines = [f"{key} = {value}" for key, value in merged.items()]
    lines += [
        f"executable = {spec.script}",
        f"output = {spec.stdout_path}",
        f"error = {spec.stderr_path}",
        f"log = {spec.job_directory / USER_LOG}",
        "queue",
    ]
    return "\n".join(lines) + "\n"


def parse_condor_submit(stdout: str) -> str | None:
    match = _SUBMITTED.search(stdout)
    return match.group(1) if match else None


def event_observation(code: str, body: Sequence[str]) -> Observation | None:
    """The observation one event implies (`None`: no change)."""
    phase = EVENT_PHASES.get(code)
    if phase is None:
        return None
    if code == "005":
        abnormal = _ABNORMAL.search(" ".join(body))
        if abnormal:
            return Observation(Phase.FAILED, f"killed by signal {abnormal.group(1)}")
        return Observation(Phase.ENDED, "terminated")
    if code == "009":
        return Observation(Phase.FAILED, "removed from the HTCondor queue (condor_rm)")
    if code == "012":
        return Observation(Phase.QUEUED, "held: " + " ".join(line.strip() for line in body)[:200])
    return Observation(phase, f"event {code}")


def observe_events(lines: Iterable[str], cluster: str, start: Observation | None = None) -> Observation | None:
    """Fold user-log lines into the latest observation for `cluster` (events of other
    clusters, possible when logs are shared, are ignored).  An event is `NNN (...)` up to
    a line `...`."""
    current = start
    code: str | None = None
    body: list[str] = []
    for line in lines:
        line = line.rstrip("\n")
        if code is None:
            match = _EVENT.match(line)
            if match and str(int(match.group(2))) == cluster:
                code, body = match.group(1), []
            continue
        if line == "...":
            current = event_observation(code, body) or current
            code = None
        else:
            body.append(line)
    return current


@dataclasses.dataclass
class _LogFollower:
    """Reads a user log from where the last poll stopped (whole events only)."""

    path: Path
    cluster: str
    offset: int = 0
    last: Observation | None = None

    def observe(self) -> Observation | None:
        # The log lives in the job directory, which the job owns: read it through
        # `pulsar.jobs.jobfs`, so a symlink or FIFO there is no log rather than another file
        # (or a thread stuck forever).
        try:
            with jobfs.opened_parent(self.path.parent, self.path) as (dir_fd, name):
                handle = jobfs.open_file(dir_fd, name)
        except PulsarError:
            return None
        with handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n...\n")
        if end < 0:
            return self.last
        complete = data[: end + 5]
        self.offset += len(complete)
        self.last = observe_events(complete.decode("utf-8", "replace").splitlines(), self.cluster, self.last)
        return self.last


class CondorManager(ExternalManager):
    """Options: `submit_<key>` submit-file settings, `poll_interval`."""

    type_name = "queued_condor"

    def __init__(self, name: str, options: Mapping[str, Any]):
        super().__init__(name, options)
        self.settings = {k[len("submit_"):].lower(): str(v) for k, v in options.items() if k.startswith("submit_")}
        self._logs: dict[str, _LogFollower] = {}

    def _settings_for(self, spec: LaunchSpec) -> dict[str, str]:
        settings = {str(k).lower(): str(v) for k, v in spec.submit_params.items()}
        settings.update(self.settings)
        return settings

    def _submit_external(self, spec: LaunchSpec) -> str:
        submit_file = spec.job_directory / SUBMIT_FILE
        with jobfs.opened_parent(spec.job_directory, submit_file) as (dir_fd, name):  # never through a link
            atomic_write_text(name, submit_description(spec, self._settings_for(spec)), fsync=False, dir_fd=dir_fd)
        # `getenv = true` copies condor_submit's own environment into the job: give it the
        # job environment (secrets withheld), not the server's.
        result = subprocess.run(["condor_submit", str(submit_file)], capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL, env=self.environment.as_dict())
        cluster = parse_condor_submit(result.stdout) if result.returncode == 0 else None
        if cluster is None:
            detail = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
            raise LaunchError(f"condor_submit refused the job: {detail}")
        return cluster

    def _poll(self, jobs: Sequence[Tracked]) -> Mapping[str, Observation]:
        seen: dict[str, Observation] = {}
        for tracked in jobs:
            follower = self._logs.get(tracked.job_id)
            if follower is None or follower.cluster != tracked.external_id:
                follower = _LogFollower(tracked.spec.job_directory / USER_LOG, tracked.external_id)
                self._logs[tracked.job_id] = follower
            observation = follower.observe()
            if observation is None:
                # no log (or no event of ours) yet: wait for it, unless we are re-attaching
                # after a restart and the log is gone for good
                observation = Observation(Phase.GONE if tracked.recovered else Phase.QUEUED, "no user log events")
                if tracked.recovered and follower.path.exists():
                    observation = Observation(Phase.QUEUED, "no events yet")
            seen[tracked.external_id] = observation
        return seen

    def _release(self, tracked: Tracked) -> None:
        self._logs.pop(tracked.job_id, None)

    def _cancel_external(self, external_id: str, backend: Mapping[str, Any]) -> None:
        result = subprocess.run(["condor_rm", external_id], capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL, env=self.environment.as_dict())
        if result.returncode != 0:
            log.warning("manager %s: condor_rm %s: %s", self.name, external_id, result.stderr.strip())
