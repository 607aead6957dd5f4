"""The server's job layout as the client sees it (from the setup document)."""

from __future__ import annotations

import os
from typing import Any, Mapping

from pulsar import protocol
from pulsar.protocol import PathType

_DIRECTORY_KEYS = {
    PathType.INPUT: "inputs_directory",
    PathType.UNSTRUCTURED: "unstructured_files_directory",
    PathType.CONFIG: "configs_directory",
    PathType.TOOL: "tools_directory",
    PathType.JOBDIR: "job_directory",
    PathType.WORKDIR: "working_directory",
    PathType.METADATA: "metadata_directory",
    PathType.OUTPUT: "outputs_directory",
    PathType.OUTPUT_WORKDIR: "working_directory",
    PathType.OUTPUT_METADATA: "metadata_directory",
    PathType.OUTPUT_JOBDIR: "job_directory",
}


class RemoteLayout:
    """Remote directories and separator; `path(type, name)` mirrors the server's placement."""

    def __init__(self, job_config: Mapping[str, Any]):
        self.config = job_config
        properties = job_config.get("system_properties") or {}
        self.separator: str = properties.get("separator") or job_config.get("path_separator") or os.sep
        working = job_config.get("working_directory")
        if not working:
            raise ValueError("setup document has no working_directory")
        self.job_directory: str = job_config.get("job_directory") or working.rsplit(self.separator, 1)[0]

    def directory(self, path_type: PathType | str) -> str:
        path_type = PathType(path_type)
        key = _DIRECTORY_KEYS[path_type]
        value = self.config.get(key)
        if value:
            return str(value)
        sub = protocol.PATH_TYPE_DIRECTORIES[path_type]
        return self.job_directory + (self.separator + sub if sub else "")

    def path(self, path_type: PathType | str, name: str) -> str:
        """`name` uses "/" for nesting; flat types keep only the last component."""
        path_type = PathType(path_type)
        parts = [p for p in name.split("/") if p]
        if path_type not in protocol.NESTED_PATH_TYPES:
            parts = parts[-1:]
        return self.directory(path_type) + self.separator + self.separator.join(parts)
