"""Compatibility entry points for the `queued_cli` plugins: `split_params` and
`CliInterface`, the names Galaxy's CLI runner imports.

Unlike the plugins they return (see `pulsar.managers.cli`), which are pure functions over
argv lists and text, these two only split prefixed options and build plugin instances.
"""

from __future__ import annotations

from typing import Any, Mapping

from pulsar.managers.cli.manager import JOB_PLUGINS
from pulsar.managers.cli.plugin import JobPlugin
from pulsar.managers.cli.shell import SHELLS, Shell


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(shell params, job params): `shell_*` and `job_*` keys with the prefix stripped
    (so `shell_plugin` becomes `plugin`); other keys are ignored."""
    shell = {k[len("shell_"):]: v for k, v in params.items() if k.startswith("shell_")}
    job = {k[len("job_"):]: v for k, v in params.items() if k.startswith("job_")}
    return shell, job


class CliInterface:
    """Builds a (shell, job plugin) pair from split params."""

    def get_plugins(self, shell_params: Mapping[str, Any], job_params: Mapping[str, Any]) -> tuple[Shell, JobPlugin]:
        shell_params, job_params = dict(shell_params), dict(job_params)
        shell_name = str(shell_params.pop("plugin", "LocalShell"))
        job_name = str(job_params.pop("plugin", "Slurm"))
        try:
            shell_class, job_class = SHELLS[shell_name], JOB_PLUGINS[job_name]
        except KeyError as exc:
            raise ValueError(f"unknown CLI plugin {exc.args[0]!r}") from None
        return shell_class(shell_params), job_class(job_params)

    def get_shell_plugin(self, shell_params: Mapping[str, Any]) -> Shell:
        return self.get_plugins(shell_params, {})[0]

    def get_job_interface(self, job_params: Mapping[str, Any]) -> JobPlugin:
        return self.get_plugins({}, job_params)[1]
