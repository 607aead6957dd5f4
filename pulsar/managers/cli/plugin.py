"""The contract of a `queued_cli` job plugin: data plus pure functions.

A plugin never runs anything.  It builds script header lines and argv lists, and turns
command output (text) into external ids and `Observation`s; `CliManager` runs the
commands through a shell plugin.  That keeps every scheduler's knowledge testable with
plain strings.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from pulsar.managers.base import LaunchError, LaunchSpec
from pulsar.managers.cli.shell import CommandResult
from pulsar.managers.external import Observation, StatusUnavailable

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Command:
    """An argv to run, optionally with a file fed to its standard input."""

    argv: list[str]
    stdin_path: Path | None = None


class JobPlugin:
    """One scheduler's command line.  `params` are the manager's `job_*` options with the
    prefix stripped (and `plugin` removed)."""

    name: ClassVar[str]
    #: header directive prefix, e.g. "#SBATCH"
    directive: ClassVar[str]
    #: param name -> scheduler flag, for the params a plugin understands
    param_flags: ClassVar[Mapping[str, str]] = {}

    def __init__(self, params: Mapping[str, Any] | None = None):
        self.params = {k: v for k, v in (params or {}).items() if v is not None}

    # --- submission --------------------------------------------------------------

    def headers(self, spec: LaunchSpec) -> list[str]:
        """Directive lines for the top of command.sh: stdout, stderr, name, then params."""
        lines = [
            f"{self.directive} -o {spec.stdout_path}",
            f"{self.directive} -e {spec.stderr_path}",
            f"{self.directive} {self.name_flag} {spec.job_name}",
        ]
        return lines + self.param_headers()

    name_flag: ClassVar[str] = "-N"

    def param_headers(self, params: Mapping[str, Any] | None = None) -> list[str]:
        """Directive lines for `params` (default: all of the plugin's params)."""
        lines = []
        for key, value in (self.params if params is None else params).items():
            if key.startswith("-"):
                lines.append(f"{self.directive} {key} {value}".rstrip())
            elif key in self.param_flags:
                lines.append(f"{self.directive} {self.param_flags[key]} {value}")
            else:
                log.warning("%s job plugin: ignoring unrecognised parameter %r", self.name, key)
        return lines

    def submit_command(self, script: Path) -> Command:
        raise NotImplementedError

    def parse_submit(self, result: CommandResult) -> str:
        """The external id from a submit command's result; `LaunchError` if it failed."""
        raise NotImplementedError

    # --- status and cancel -------------------------------------------------------

    def status_command(self, external_ids: Sequence[str]) -> list[str]:
        """ONE command asking about all `external_ids`."""
        raise NotImplementedError

    def parse_status(self, external_ids: Sequence[str], result: CommandResult) -> dict[str, Observation]:
        """Observations keyed by external id (ids absent from the answer are gone);
        `StatusUnavailable` when the command failed without saying anything about jobs."""
        raise NotImplementedError

    def cancel_command(self, external_id: str) -> list[str]:
        raise NotImplementedError


def submit_failed(scheduler: str, result: CommandResult) -> LaunchError:
    detail = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
    return LaunchError(f"{scheduler} refused the job: {detail}")


def unavailable(scheduler: str, result: CommandResult) -> StatusUnavailable:
    detail = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
    return StatusUnavailable(f"{scheduler} status command failed ({result.returncode}): {detail}")
