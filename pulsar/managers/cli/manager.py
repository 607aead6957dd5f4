"""`CliManager` (type `queued_cli`): a job plugin run through a shell plugin.

Options: `job_plugin` (Slurm | Torque | OpenPBS | SlurmTorque | LSF, default Slurm),
`shell_plugin` (LocalShell | SecureShell | GlobusSecureShell | RemoteShell, default
LocalShell); every other `job_<key>` option is a job-plugin parameter and every
`shell_<key>` option a shell parameter (prefix stripped); `poll_interval` as in
`pulsar.managers.external`.  Client submit params are not used.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from pulsar.errors import ConfigurationError
from pulsar.managers.base import LaunchSpec
from pulsar.managers.cli.lsf import LSF
from pulsar.managers.cli.plugin import JobPlugin
from pulsar.managers.cli.shell import SHELLS, Shell
from pulsar.managers.cli.slurm import Slurm
from pulsar.managers.cli.torque import OpenPBS, SlurmTorque, Torque
from pulsar.managers.external import ExternalManager, Observation, Tracked

log = logging.getLogger(__name__)

JOB_PLUGINS: dict[str, type[JobPlugin]] = {
    cls.name: cls for cls in (Slurm, Torque, OpenPBS, SlurmTorque, LSF)
}

#: manager options that start with `job_` but are not job-plugin parameters
_NOT_JOB_PARAMS = {"job_directory_mode", "job_name_template", "job_plugin"}

#: At most this many ids per status command, to stay far below argv limits.
STATUS_BATCH = 500


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(shell params, job params) from manager options, prefixes stripped."""
    shell = {k[len("shell_"):]: v for k, v in options.items() if k.startswith("shell_") and k != "shell_plugin"}
    job = {k[len("job_"):]: v for k, v in options.items() if k.startswith("job_") and k not in _NOT_JOB_PARAMS}
    return shell, job


def build_plugins(options: Mapping[str, Any]) -> tuple[Shell, JobPlugin]:
    shell_name = str(options.get("shell_plugin", "LocalShell"))
    job_name = str(options.get("job_plugin", "Slurm"))
    if shell_name not in SHELLS:
        raise ConfigurationError(f"unknown shell_plugin {shell_name!r}; expected one of {sorted(SHELLS)}")
    if job_name not in JOB_PLUGINS:
        raise ConfigurationError(f"unknown job_plugin {job_name!r}; expected one of {sorted(JOB_PLUGINS)}")
    shell_params, job_params = split_options(options)
    return SHELLS[shell_name](shell_params), JOB_PLUGINS[job_name](job_params)


class CliManager(ExternalManager):
    type_name = "queued_cli"

    def __init__(self, name: str, options: Mapping[str, Any]):
        super().__init__(name, options)
        self.shell, self.plugin = build_plugins(options)

    def script_headers(self, spec: LaunchSpec) -> list[str]:
        return self.plugin.headers(spec)

    def _submit_external(self, spec: LaunchSpec) -> str:
        command = self.plugin.submit_command(spec.script)
        result = self.shell.run(command.argv, stdin_path=command.stdin_path, env=self.environment.variables)
        return self.plugin.parse_submit(result)

    def _poll(self, jobs: Sequence[Tracked]) -> Mapping[str, Observation]:
        ids = [tracked.external_id for tracked in jobs]
        seen: dict[str, Observation] = {}
        for start in range(0, len(ids), STATUS_BATCH):
            batch = ids[start:start + STATUS_BATCH]
            result = self.shell.run(self.plugin.status_command(batch), env=self.environment.variables)
            seen.update(self.plugin.parse_status(batch, result))
        return seen

    def _cancel_external(self, external_id: str, backend: Mapping[str, Any]) -> None:
        result = self.shell.run(self.plugin.cancel_command(external_id), env=self.environment.variables)
        if not result.ok:
            log.warning("manager %s: %s for %s returned %s: %s", self.name, result.argv[0],
                        external_id, result.returncode, result.stderr.strip())
