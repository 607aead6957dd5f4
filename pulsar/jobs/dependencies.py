"""Tool dependency resolution with Galaxy's own library, on the server.

When Galaxy's destination says `dependency_resolution: remote`, a launch carries
`dependencies_description` (the tool's requirements).  The server resolves it with
galaxy-tool-util's `DependencyManager` (the `deps` extra) -- the same resolvers Galaxy uses:
galaxy_packages (`<tool_dependency_dir>/<name>/<version>/env.sh`), tool-shed packages,
environment modules, conda -- and puts the resulting shell commands in front of the tool's
command in the job script.

Configured as in the reference: `tool_dependency_dir` (base directory; unset: no resolution),
`dependency_resolvers_config_file` (Galaxy's dependency_resolvers_conf.xml / .yml),
`dependency_resolution` (Galaxy's resolution dict: `resolvers`, `default_base_path`, `cache`,
...), and Galaxy's `conda_*` options.  Conda is never installed behind the admin's back:
`conda_auto_init` and `conda_auto_install` default to false.  Resolution configured without
the library stops the start.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Mapping

from pulsar.config import existing_file
from pulsar.errors import ConfigurationError

log = logging.getLogger(__name__)

INSTALL_HINT = "install galaxy-tool-util (pip install 'pulsar-app[deps]')"

#: App options handed to Galaxy's build_dependency_manager besides the conda_* ones.
_PASSED_OPTIONS = ("tool_dependency_dir", "use_cached_dependency_manager", "tool_dependency_cache_dir",
                   "precache_dependencies")


class DependencyResolver:
    """Turns a launch's `dependencies_description` into shell commands."""

    def __init__(self, manager: Any, requirements_class: Any) -> None:
        self._manager = manager
        self._description_class = requirements_class

    def shell_commands(self, description: Mapping[str, Any] | None, job_directory: str) -> list[str]:
        if not description:
            return []
        parsed = self._description_class.from_dict(dict(description))
        if parsed is None or not parsed.requirements:
            return []
        commands: list[str] = self._manager.dependency_shell_commands(
            parsed.requirements, installed_tool_dependencies=parsed.installed_tool_dependencies,
            job_directory=job_directory)
        return [command for command in commands if command]


def build_resolver(options: Mapping[str, Any]) -> DependencyResolver | None:
    """The resolver of one manager's jobs, or None when dependency resolution is off."""
    conf_file = options.get("dependency_resolvers_config_file")
    resolution = options.get("dependency_resolution")
    base = options.get("tool_dependency_dir") or (resolution or {}).get("default_base_path")
    configured = [key for key in ("tool_dependency_dir", "dependency_resolvers_config_file", "dependency_resolution")
                  if options.get(key)]
    if not configured:
        return None
    try:
        deps = importlib.import_module("galaxy.tool_util.deps")
        description_class = importlib.import_module("galaxy.tool_util.deps.dependencies").DependenciesDescription
    except ImportError:
        raise ConfigurationError(f"{configured[0]}: tool dependency resolution needs Galaxy's resolvers: "
                                 f"{INSTALL_HINT}") from None
    if not base:
        raise ConfigurationError(f"{configured[0]}: set tool_dependency_dir too (the resolvers' base directory)")
    if conf_file:
        conf_file = existing_file(options, "dependency_resolvers_config_file")
    app_config: dict[str, Any] = {"conda_auto_init": False, "conda_auto_install": False}
    app_config.update({key: value for key, value in options.items() if key.startswith("conda_")})
    app_config.update({key: options[key] for key in _PASSED_OPTIONS if options.get(key) is not None})
    app_config["tool_dependency_dir"] = str(base)
    try:
        manager = deps.build_dependency_manager(app_config_dict=app_config, resolution_config_dict=resolution or None,
                                                conf_file=conf_file)
    except Exception as exc:  # Galaxy's loaders raise anything from KeyError to XML errors
        raise ConfigurationError(f"tool dependency resolution: {type(exc).__name__}: {exc}") from None
    names = [type(resolver).__name__ for resolver in getattr(manager, "dependency_resolvers", [])]
    log.info("tool dependencies: resolved under %s by %s", base, ", ".join(names) or "no resolver")
    return DependencyResolver(manager, description_class)
