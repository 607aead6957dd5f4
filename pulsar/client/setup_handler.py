"""Job setup: ask the server (`POST jobs`) or compute the layout locally (`jobs_directory`)."""

from __future__ import annotations

import os
import uuid
from typing import Any, Mapping

import pulsar
from pulsar import protocol

REMOTE_PROPERTY_PREFIX = "remote_property_"


def local_setup(params: Mapping[str, Any], job_id: str, tool_id: str | None, tool_version: str | None,
                preserve_galaxy_python_environment: Any = None) -> dict[str, Any]:
    """The setup document computed client-side under `<jobs_directory><sep><job_id>`.

    The server creates the directory at submit time from the `setup_params` carried here.
    """
    separator = params.get("remote_sep") or os.sep
    if params.get("assign_ids") == "uuid":
        job_id = uuid.uuid4().hex
    jobs_directory = str(params["jobs_directory"]).rstrip(separator)
    job_directory = jobs_directory + separator + job_id

    def sub(name: str) -> str:
        return job_directory + separator + name

    system_properties = {
        k[len(REMOTE_PROPERTY_PREFIX):]: v for k, v in params.items() if k.startswith(REMOTE_PROPERTY_PREFIX)
    }
    system_properties["separator"] = separator
    return {
        "job_directory": job_directory,
        "working_directory": sub(protocol.WORKING_DIR),
        "metadata_directory": sub(protocol.METADATA_DIR),
        "outputs_directory": sub(protocol.OUTPUTS_DIR),
        "configs_directory": sub(protocol.CONFIGS_DIR),
        "tools_directory": sub(protocol.TOOL_FILES_DIR),
        "inputs_directory": sub(protocol.INPUTS_DIR),
        "unstructured_files_directory": sub(protocol.UNSTRUCTURED_DIR),
        "path_separator": separator,
        "job_id": job_id,
        "system_properties": system_properties,
        "pulsar_version": pulsar.__version__,
        "preserve_galaxy_python_environment": preserve_galaxy_python_environment,
        "setup_params": {
            "job_id": job_id,
            "tool_id": tool_id,
            "tool_version": tool_version,
            "use_metadata": True,
            "preserve_galaxy_python_environment": preserve_galaxy_python_environment,
        },
    }

