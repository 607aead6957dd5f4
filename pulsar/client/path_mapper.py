"""Remote paths for Galaxy's `rewrite_parameters` mode (spec 6.6).

Galaxy evaluates the tool with remote paths computed here, before any file is staged, so
these rules must agree with where `submit_job` puts files.  Each method returns None when
the file stays where it is (action `none`), or the `rewrite` result for that action.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from pulsar.client.remote_layout import RemoteLayout
from pulsar.client.staging.inputs import CLIENT_INPUT_PATH_TYPES
from pulsar.protocol import COMMAND_VERSION_FILENAME, PathType
from pulsar.shared.action_mapper import FileActionMapper
from pulsar.shared.actions import FileAction
from pulsar.shared.unstructured import remote_name, unstructured_map


def input_remote_name(local_path: str, client_input_path_type: str | None) -> str:
    """The name under `inputs/` (metadata files get a `metadata_` prefix)."""
    basename = os.path.basename(os.path.normpath(local_path))
    if client_input_path_type == CLIENT_INPUT_PATH_TYPES.INPUT_METADATA_PATH:
        return "metadata_" + basename
    return basename


class PathMapper:
    def __init__(self, client: Any, remote_job_config: Mapping[str, Any], local_working_directory: str,
                 action_mapper: FileActionMapper | None = None):
        self.layout = RemoteLayout(remote_job_config)
        self.local_working_directory = local_working_directory
        self.action_mapper = action_mapper or FileActionMapper.from_destination_params(client.destination_params)

    def _unstaged(self, action: FileAction) -> str | None:
        return action.rewritten_path()

    def remote_input_path_rewrite(self, local_path: str, client_input_path_type: str | None = None) -> str | None:
        action = self.action_mapper.action(local_path, PathType.INPUT)
        if not action.staging_needed:
            return self._unstaged(action)
        return self.layout.path(PathType.INPUT, input_remote_name(local_path, client_input_path_type))

    def remote_output_path_rewrite(self, local_path: str) -> str | None:
        in_working = os.path.abspath(local_path).startswith(os.path.abspath(self.local_working_directory) + os.sep)
        path_type = PathType.OUTPUT_WORKDIR if in_working else PathType.OUTPUT
        action = self.action_mapper.action(local_path, path_type)
        if not action.staging_needed:
            return self._unstaged(action)
        return self.layout.path(path_type, os.path.basename(local_path))

    def remote_version_path_rewrite(self, local_path: str) -> str | None:
        action = self.action_mapper.action(local_path, PathType.OUTPUT)
        if not action.staging_needed:
            return self._unstaged(action)
        return self.layout.path(PathType.OUTPUT, COMMAND_VERSION_FILENAME)

    def check_for_arbitrary_rewrite(self, local_path: str) -> tuple[str | None, dict[str, str]]:
        """For an unstructured reference: (remote path or None, {local file: remote name})."""
        action = self.action_mapper.action(local_path, PathType.UNSTRUCTURED)
        if not action.staging_needed:
            return self._unstaged(action), {}
        mapping = unstructured_map(local_path, action.depth)
        return self.layout.path(PathType.UNSTRUCTURED, remote_name(local_path, action.depth)), mapping

    def check_for_container_rewrite(self, local_path: str) -> str | None:
        """Container paths are never staged by this client."""
        return None
