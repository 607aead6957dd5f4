"""Slurm through `sbatch` / `squeue` / `scancel` (verified against Slurm 22.05).

Status is one `squeue -h -t all -j id1,id2,... -o '%i|%T|%r'` per poll.  `-t all` keeps
finished jobs visible for `MinJobAge` seconds (default 300); after that squeue forgets
them: for a single unknown id it fails (`slurm_load_jobs error: Invalid job id
specified`, status 1), for several it prints nothing.  Both mean "gone".
Reference: https://slurm.schedmd.com/squeue.html (JOB STATE CODES).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from pulsar.managers.cli.plugin import Command, JobPlugin, submit_failed, unavailable
from pulsar.managers.cli.shell import CommandResult
from pulsar.managers.external import Observation, Phase

#: long state (%T) -> phase.  Abnormal ends become FAILED with the state as the reason;
#: the job layer still prefers the return_code the script wrote.
LONG_STATES: dict[str, Phase] = {
    "PENDING": Phase.QUEUED,
    "CONFIGURING": Phase.QUEUED,
    "REQUEUED": Phase.QUEUED,
    "REQUEUE_FED": Phase.QUEUED,
    "REQUEUE_HOLD": Phase.QUEUED,
    "RESV_DEL_HOLD": Phase.QUEUED,
    "SPECIAL_EXIT": Phase.QUEUED,
    "RUNNING": Phase.RUNNING,
    "COMPLETING": Phase.RUNNING,
    "SUSPENDED": Phase.RUNNING,
    "STOPPED": Phase.RUNNING,
    "SIGNALING": Phase.RUNNING,
    "STAGE_OUT": Phase.RUNNING,
    "RESIZING": Phase.RUNNING,
    "COMPLETED": Phase.ENDED,
    "CANCELLED": Phase.FAILED,
    "FAILED": Phase.FAILED,
    "TIMEOUT": Phase.FAILED,
    "NODE_FAIL": Phase.FAILED,
    "PREEMPTED": Phase.FAILED,
    "BOOT_FAIL": Phase.FAILED,
    "DEADLINE": Phase.FAILED,
    "OUT_OF_MEMORY": Phase.FAILED,
    "REVOKED": Phase.FAILED,
}

#: compact state (%t) -> long state
SHORT_STATES: dict[str, str] = {
    "PD": "PENDING", "CF": "CONFIGURING", "RQ": "REQUEUED", "RF": "REQUEUE_FED", "RH": "REQUEUE_HOLD",
    "RD": "RESV_DEL_HOLD", "SE": "SPECIAL_EXIT", "R": "RUNNING", "CG": "COMPLETING", "S": "SUSPENDED",
    "ST": "STOPPED", "SI": "SIGNALING", "SO": "STAGE_OUT", "RS": "RESIZING", "CD": "COMPLETED",
    "CA": "CANCELLED", "F": "FAILED", "TO": "TIMEOUT", "NF": "NODE_FAIL", "PR": "PREEMPTED",
    "BF": "BOOT_FAIL", "DL": "DEADLINE", "OOM": "OUT_OF_MEMORY", "RV": "REVOKED",
}

_REASONS = {
    "CANCELLED": "cancelled in Slurm",
    "TIMEOUT": "timed out (Slurm time limit)",
    "NODE_FAIL": "node failure",
    "BOOT_FAIL": "failed to start (node boot failure)",
    "OUT_OF_MEMORY": "out of memory",
    "DEADLINE": "deadline reached before the job could run",
    "PREEMPTED": "preempted",
}


def slurm_state(state: str, reason: str = "") -> Observation:
    """Map a long (`%T`) or compact (`%t`) Slurm state, plus the `%r` reason, to an observation."""
    state = state.strip().upper()
    state = SHORT_STATES.get(state, state)
    reason = reason.strip()
    phase = LONG_STATES.get(state, Phase.UNKNOWN)
    if phase is not Phase.FAILED:
        return Observation(phase, state)
    if state == "FAILED":
        if reason == "NonZeroExitCode":  # the script ran and exited non-zero: a normal end
            return Observation(Phase.ENDED, "FAILED (NonZeroExitCode)")
        if reason == "JobLaunchFailure":
            return Observation(phase, "failed to start (Slurm JobLaunchFailure)")
        return Observation(phase, f"Slurm state FAILED ({reason or 'no reason'})")
    text = _REASONS.get(state, f"Slurm state {state}")
    return Observation(phase, text)


def parse_squeue(external_ids: Sequence[str], result: CommandResult) -> dict[str, Observation]:
    """Parse `squeue -h -t all -o '%i|%T|%r'` output.  Unknown ids are left out (= gone)."""
    if not result.ok:
        if "Invalid job id" in result.stderr:
            return {}
        raise unavailable("squeue", result)
    wanted = set(external_ids)
    seen: dict[str, Observation] = {}
    for line in result.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or parts[0] not in wanted:
            continue
        seen[parts[0]] = slurm_state(parts[1], parts[2] if len(parts) > 2 else "")
    return seen


_SUBMITTED = re.compile(r"Submitted batch job (\d+)")


def parse_sbatch(result: CommandResult) -> str:
    """Id from `sbatch --parsable` (`42` or `42;cluster`) or plain `Submitted batch job 42`."""
    if not result.ok:
        raise submit_failed("sbatch", result)
    text = result.stdout.strip()
    match = _SUBMITTED.search(text)
    if match:
        return match.group(1)
    lines = text.splitlines()
    last = lines[-1].split(";")[0].strip() if lines else ""
    if not last.isdigit() and not re.fullmatch(r"\d+_\d+", last):
        raise submit_failed("sbatch", CommandResult(result.argv, 1, "", f"unexpected sbatch output {text!r}"))
    return last


class Slurm(JobPlugin):
    """Params: `time` (-t), `ncpus` (-c), `partition` (-p), `mem`, and any `-x`/`--xx` key verbatim."""

    name = "Slurm"
    directive = "#SBATCH"
    name_flag = "-J"
    param_flags = {"time": "-t", "ncpus": "-c", "partition": "-p", "mem": "--mem", "account": "-A", "qos": "--qos"}

    def submit_command(self, script: Path) -> Command:
        return Command(["sbatch", "--parsable", str(script)])

    def parse_submit(self, result: CommandResult) -> str:
        return parse_sbatch(result)

    def status_command(self, external_ids: Sequence[str]) -> list[str]:
        return ["squeue", "-h", "-t", "all", "-j", ",".join(external_ids), "-o", "%i|%T|%r"]

    def parse_status(self, external_ids: Sequence[str], result: CommandResult) -> dict[str, Observation]:
        return parse_squeue(external_ids, result)

    def cancel_command(self, external_id: str) -> list[str]:
        return ["scancel", external_id]
