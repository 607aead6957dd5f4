"""IBM Spectrum LSF through `bsub` / `bjobs` / `bkill`.

The script is fed to `bsub` on standard input, which is how LSF reads `#BSUB` lines.
Status is one `bjobs -noheader -o 'jobid stat' id1 id2 ...` per poll; ids LSF has
forgotten (finished longer than CLEAN_PERIOD ago) are reported on stderr as
`Job <N> is not found` and the known ones are still printed.
References: https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=reference-bsub ,
https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=reference-bjobs (Job states, -o, -noheader).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from pulsar.managers.cli.plugin import Command, JobPlugin, submit_failed, unavailable
from pulsar.managers.cli.shell import CommandResult
from pulsar.managers.external import Observation, Phase

STATS: dict[str, Phase] = {
    "PEND": Phase.QUEUED,
    "PROV": Phase.QUEUED,  # host being provisioned
    "WAIT": Phase.QUEUED,  # chunk job member waiting
    "PSUSP": Phase.QUEUED,  # suspended while pending
    "RUN": Phase.RUNNING,
    "USUSP": Phase.RUNNING,  # suspended by the user while running
    "SSUSP": Phase.RUNNING,  # suspended by LSF while running
    "DONE": Phase.ENDED,
    "EXIT": Phase.FAILED,  # non-zero exit, or killed
    "ZOMBI": Phase.FAILED,  # killed while its host was unreachable
    "UNKWN": Phase.UNKNOWN,  # mbatchd lost contact with the host: may come back
}

_SUBMITTED = re.compile(r"Job <(\d+(?:\[\d+\])?)> is submitted")
_NOT_FOUND = re.compile(r"Job <[^>]*> is not found|No (unfinished )?job found", re.IGNORECASE)


def lsf_state(stat: str) -> Observation:
    stat = stat.strip().upper()
    phase = STATS.get(stat, Phase.UNKNOWN)
    if phase is Phase.FAILED:
        return Observation(phase, f"LSF state {stat}" + (" (exited non-zero or was killed)" if stat == "EXIT" else ""))
    return Observation(phase, stat)


def parse_bjobs(external_ids: Sequence[str], result: CommandResult) -> dict[str, Observation]:
    if not result.ok:
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        if not errors or not all(_NOT_FOUND.search(line) for line in errors):
            raise unavailable("bjobs", result)
    wanted = set(external_ids)
    seen: dict[str, Observation] = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in wanted:
            seen[parts[0]] = lsf_state(parts[1])
    return seen


def parse_bsub(result: CommandResult) -> str:
    """`Job <1234> is submitted to default queue <normal>.` -> `1234`."""
    if not result.ok:
        raise submit_failed("bsub", result)
    match = _SUBMITTED.search(result.stdout)
    if not match:
        raise submit_failed("bsub", CommandResult(result.argv, 1, "", f"unexpected bsub output {result.stdout!r}"))
    return match.group(1)


class LSF(JobPlugin):
    """Params: `memory` (-M plus rusage), `cores` (-n), `queue` (-q), `working_dir` (-cwd),
    `project` (-P), `excluded_hosts` (a file with one host name per line)."""

    name = "LSF"
    directive = "#BSUB"
    name_flag = "-J"
    param_flags = {"cores": "-n", "queue": "-q", "working_dir": "-cwd", "project": "-P"}

    def param_headers(self, params: Mapping[str, Any] | None = None) -> list[str]:
        params = dict(self.params if params is None else params)
        memory = params.pop("memory", None)
        excluded = params.pop("excluded_hosts", None)
        lines = super().param_headers(params)
        if memory is not None:
            lines += [f"#BSUB -M {memory}", f'#BSUB -R "rusage[mem={memory}]"']
        if excluded:
            with open(excluded) as handle:
                hosts = [line.strip() for line in handle if line.strip()]
            lines += [f"#BSUB -R \"select[hname!='{host}']\"" for host in hosts]
        return lines

    def submit_command(self, script: Path) -> Command:
        return Command(["bsub"], stdin_path=script)

    def parse_submit(self, result: CommandResult) -> str:
        return parse_bsub(result)

    def status_command(self, external_ids: Sequence[str]) -> list[str]:
        return ["bjobs", "-noheader", "-o", "jobid stat", *external_ids]

    def parse_status(self, external_ids: Sequence[str], result: CommandResult) -> dict[str, Observation]:
        return parse_bjobs(external_ids, result)

    def cancel_command(self, external_id: str) -> list[str]:
        return ["bkill", external_id]

