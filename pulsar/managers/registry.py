"""Manager `type` names -> classes.  Imported lazily so optional back-ends (drmaa) cost
nothing unless configured."""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from pulsar.errors import ConfigurationError
from pulsar.managers.base import Manager

MANAGER_TYPES = {
    "queued_python": "pulsar.managers.local:QueuedManager",
    "unqueued": "pulsar.managers.local:UnqueuedManager",
    "queued_drmaa": "pulsar.managers.drmaa:DrmaaManager",
    "queued_external_drmaa": "pulsar.managers.external_drmaa:ExternalDrmaaManager",
    "queued_cli": "pulsar.managers.cli.manager:CliManager",
    "queued_condor": "pulsar.managers.condor:CondorManager",
}


def manager_class(type_name: str) -> type[Manager]:
    try:
        target = MANAGER_TYPES[type_name]
    except KeyError:
        raise ConfigurationError(
            f"unknown manager type {type_name!r}; expected one of {sorted(MANAGER_TYPES)}"
        ) from None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Manager] = getattr(module, class_name)
    return cls


def build_manager(name: str, options: Mapping[str, Any]) -> Manager:
    return manager_class(str(options.get("type", "queued_python")))(name, options)
