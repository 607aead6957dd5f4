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
    """Builds a (shell, job plugin) pair from split params, as Galaxy's class of the same name
    does: the shell defaults to LocalShell, the job plugin must be named.  (Galaxy imports this
    only as the fallback for its own copy, which lives in the same package as the importing
    module, so Galaxy 26.1 never reaches it; the plugins returned are ours.)"""

    def get_plugins(self, shell_params: Mapping[str, Any], job_params: Mapping[str, Any]) -> tuple[Shell, JobPlugin]:
        return self.get_shell_plugin(shell_params), self.get_job_interface(job_params)

    def get_shell_plugin(self, shell_params: Mapping[str, Any]) -> Shell:
        params = dict(shell_params)
        shell: Shell = _plugin(SHELLS, str(params.pop("plugin", "LocalShell")))(params)
        return shell

    def get_job_interface(self, job_params: Mapping[str, Any]) -> JobPlugin:
        params = dict(job_params)
        name = params.pop("plugin", None)
        if not name:
            raise ValueError("no job plugin parameter (job_plugin) given, cannot build a CLI job interface")
        plugin: JobPlugin = _plugin(JOB_PLUGINS, str(name))(params)
        return plugin


def _plugin(plugins: Mapping[str, type[Any]], name: str) -> type[Any]:
    try:
        return plugins[name]
    except KeyError:
        raise ValueError(f"unknown CLI plugin {name!r}") from None
