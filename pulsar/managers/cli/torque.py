"""PBS family through `qsub` / `qstat -f` / `qdel`: Torque, OpenPBS (PBS Pro), and Slurm's
PBS-compatible wrappers.

Status is one `qstat -f id1 id2 ...` per poll (OpenPBS adds `-x` to include finished jobs
from the history).  `qstat -f` prints one block per job:

    Job Id: 123.server
        Job_Name = pulsar_1
        job_state = R
        exit_status = 0          (Torque; OpenPBS spells it Exit_status, finished jobs only)

Ids qstat does not know are reported on stderr (`qstat: Unknown Job Id ...`, OpenPBS also
`... Job has finished, use -x ...`) while the known ones are still printed.
References: Torque 6 admin guide, qstat (https://docs.adaptivecomputing.com/torque/6-1-2/adminGuide/torque.htm#topics/torque/commands/qstat.htm),
job exit status (https://docs.adaptivecomputing.com/torque/6-1-2/adminGuide/torque.htm#topics/torque/2-jobs/jobExitStatus.htm),
OpenPBS Reference Guide, qstat and "Job States" (https://openpbs.org/ -> PBS Professional Reference Guide).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Sequence

from pulsar.managers.cli.plugin import Command, JobPlugin, submit_failed, unavailable
from pulsar.managers.cli.shell import CommandResult
from pulsar.managers.external import Observation, Phase

JOB_STATES: dict[str, Phase] = {
    "Q": Phase.QUEUED,  # queued
    "H": Phase.QUEUED,  # held
    "W": Phase.QUEUED,  # waiting for its execution time
    "T": Phase.QUEUED,  # being moved / in transit
    "R": Phase.RUNNING,
    "E": Phase.RUNNING,  # exiting: epilogue still running
    "S": Phase.RUNNING,  # suspended
    "U": Phase.RUNNING,  # PBS: suspended because the workstation is busy
    "B": Phase.RUNNING,  # PBS: job array begun
    "C": Phase.ENDED,  # Torque: completed
    "F": Phase.ENDED,  # PBS: finished (history)
    "X": Phase.ENDED,  # PBS: subjob finished
    "M": Phase.GONE,  # PBS: moved to another server
}

#: Torque's negative exit_status values that say why the server ended a job
_EXEC_FAILURES = {
    -10: "exceeded its memory limit",
    -11: "exceeded its walltime limit",
    -12: "exceeded its CPU time limit",
}

_UNKNOWN_ID = re.compile(r"Unknown Job Id|Job has finished|does not exist", re.IGNORECASE)
_JOB_ID = re.compile(r"^\d+(\[\d*\])?(\.[\w.-]+)?$")


def pbs_state(state: str, exit_status: str | None = None) -> Observation:
    """Map a `job_state` letter (plus `exit_status` of a finished job) to an observation."""
    letter = state.strip().upper()[:1]
    phase = JOB_STATES.get(letter, Phase.UNKNOWN)
    if phase is not Phase.ENDED or exit_status is None:
        return Observation(phase, f"job_state {state.strip()}")
    try:
        code = int(exit_status)
    except ValueError:
        return Observation(phase, f"job_state {letter}")
    if code < 0:
        reason = _EXEC_FAILURES.get(code, f"failed to start (exit_status {code})")
        return Observation(Phase.FAILED, reason)
    if code > 256:
        return Observation(Phase.FAILED, f"killed by signal {code - 256}")
    return Observation(phase, f"job_state {letter}, exit_status {code}")


def iter_qstat_blocks(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(job id, {attribute: value}) for each `Job Id:` block of `qstat -f` output.
    Attribute names are lower-cased; continuation lines (leading tab) are joined."""
    job_id: str | None = None
    attrs: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if line.startswith("Job Id:"):
            if job_id is not None:
                yield job_id, attrs
            job_id, attrs, key = line.split(":", 1)[1].strip(), {}, None
        elif job_id is not None and " = " in line and line[:1] in (" ", "") and not line.startswith("\t"):
            name, _, value = line.strip().partition(" = ")
            key = name.strip().lower()
            attrs[key] = value.strip()
        elif job_id is not None and key is not None and line.startswith("\t"):
            attrs[key] += line.strip()
    if job_id is not None:
        yield job_id, attrs


def _short(job_id: str) -> str:
    return job_id.split(".", 1)[0]


def parse_qstat_full(external_ids: Sequence[str], result: CommandResult) -> dict[str, Observation]:
    """Parse `qstat -f [-x] ids...`.  qstat may print a fuller id than qsub did
    (`123.server.domain` for `123.server`), so ids are matched on their sequence number."""
    if not result.ok:
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        if not errors or not all(_UNKNOWN_ID.search(line) for line in errors):
            raise unavailable("qstat", result)
    by_short = {_short(external_id): external_id for external_id in external_ids}
    seen: dict[str, Observation] = {}
    for printed, attrs in iter_qstat_blocks(result.stdout):
        wanted = printed if printed in external_ids else by_short.get(_short(printed))
        if wanted is None or "job_state" not in attrs:
            continue
        seen[wanted] = pbs_state(attrs["job_state"], attrs.get("exit_status"))
    return seen


def parse_qsub(result: CommandResult) -> str:
    """`qsub` prints the new id (`123.server`) as its last line."""
    if not result.ok:
        raise submit_failed("qsub", result)
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if not lines or not _JOB_ID.match(lines[-1]):
        raise submit_failed("qsub", CommandResult(result.argv, 1, "", f"unexpected qsub output {result.stdout!r}"))
    return lines[-1]


class Torque(JobPlugin):
    name = "Torque"
    directive = "#PBS"
    name_flag = "-N"
    param_flags = {
        "destination": "-q", "Execution_Time": "-a", "Account_Name": "-A", "Checkpoint": "-c",
        "Error_Path": "-e", "Group_List": "-g", "Hold_Types": "-h", "Join_Paths": "-j",
        "Keep_Files": "-k", "Resource_List": "-l", "Mail_Points": "-m", "Mail_Users": "-M",
        "Job_Name": "-N", "Output_Path": "-o", "Priority": "-p", "Rerunable": "-r",
        "Shell_Path_List": "-S", "job_array_request": "-t", "User_List": "-u", "Variable_List": "-v",
    }
    status_flags: tuple[str, ...] = ("-f",)

    def submit_command(self, script: Path) -> Command:
        return Command(["qsub", str(script)])

    def parse_submit(self, result: CommandResult) -> str:
        return parse_qsub(result)

    def status_command(self, external_ids: Sequence[str]) -> list[str]:
        return ["qstat", *self.status_flags, *external_ids]

    def parse_status(self, external_ids: Sequence[str], result: CommandResult) -> dict[str, Observation]:
        return parse_qstat_full(external_ids, result)

    def cancel_command(self, external_id: str) -> list[str]:
        return ["qdel", external_id]


class OpenPBS(Torque):
    """OpenPBS / PBS Pro: `qstat -x` adds finished jobs (state F, `Exit_status`) when the
    server keeps job history; without history they simply disappear (= gone)."""

    name = "OpenPBS"
    status_flags = ("-f", "-x")


class SlurmTorque(Torque):
    """Slurm's PBS wrappers (Debian `slurm-wlm-torque`): Torque syntax, finished jobs show
    as `C` without an exit_status."""

    name = "SlurmTorque"
