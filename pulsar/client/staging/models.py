"""What Galaxy describes (the job, its expected outputs) and what Pulsar reports back."""

from __future__ import annotations

import os
import re
from typing import Any, Iterable, Mapping, Sequence

from pulsar.client.staging.inputs import ClientInputs
from pulsar.shared.collection import RemoteListing
from pulsar.shared.patterns import COMMAND_VERSION_FILENAME, DEFAULT_DYNAMIC_COLLECTION_PATTERN


class ClientJobDescription:
    """Everything `submit_job` needs for one job.  Galaxy passes every field by keyword.

    `rewrite_paths=True` is the legacy mode: the client substitutes remote paths into the
    command line and config files.  Galaxy's modern runners pass False because their tool
    parameters already hold remote paths (computed by `PathMapper`).
    """

    def __init__(
        self,
        command_line: str,
        tool: Any = None,
        config_files: Sequence[str] | None = None,
        input_files: Sequence[str] | None = None,
        client_inputs: ClientInputs | None = None,
        client_outputs: "ClientOutputs | None" = None,
        working_directory: str | None = None,
        metadata_directory: str | None = None,
        dependencies_description: Any = None,
        env: list[Any] | None = None,
        arbitrary_files: Mapping[str, str] | None = None,
        job_directory_files: Sequence[str] | None = None,
        tool_directory_required_files: Any = None,
        rewrite_paths: bool = True,
        touch_outputs: Sequence[str] | None = None,
        container: str | None = None,
        remote_pulsar_app_config: Mapping[str, Any] | None = None,
        guest_ports: Sequence[int] | None = None,
    ):
        assert input_files is None or client_inputs is None, "pass input_files or client_inputs, not both"
        self.command_line = command_line
        self.tool = tool
        self.config_files = list(config_files or [])
        if client_inputs is None:
            client_inputs = ClientInputs.for_simple_input_paths(input_files or [])
        self.client_inputs = client_inputs
        self.client_outputs = client_outputs or ClientOutputs()
        self.working_directory = working_directory
        self.metadata_directory = metadata_directory
        self.dependencies_description = dependencies_description
        self.env = env if env is not None else []
        self.arbitrary_files = dict(arbitrary_files or {})
        self.job_directory_files = list(job_directory_files or [])
        self.tool_directory_required_files = tool_directory_required_files
        self.rewrite_paths = rewrite_paths
        self.touch_outputs = list(touch_outputs or [])
        self.container = container
        self.remote_pulsar_app_config = dict(remote_pulsar_app_config or {})
        self.guest_ports = list(guest_ports or [])

    @property
    def input_files(self) -> list[str]:
        return [i.path for i in self.client_inputs]

    @property
    def output_files(self) -> list[str]:
        return list(self.client_outputs.output_files)

    @property
    def version_file(self) -> str | None:
        return self.client_outputs.version_file

    @property
    def tool_dependencies(self) -> Any:
        return self.dependencies_description


class ClientOutputs:
    """The outputs Galaxy expects, with local paths.  Serialised into `remote_staging`
    so a server performing remote output staging runs the same collection plan."""

    def __init__(
        self,
        working_directory: str | None = None,
        output_files: Sequence[str] = (),
        work_dir_outputs: Iterable[Sequence[str]] | None = None,
        version_file: str | None = None,
        dynamic_outputs: Sequence[str] | None = None,
        metadata_directory: str | None = None,
        job_directory: str | None = None,
        dynamic_file_sources: Sequence[Mapping[str, Any]] | None = None,
        dataset_collector_descriptions: Sequence[Mapping[str, Any]] | None = None,
    ):
        self.working_directory = working_directory
        self.metadata_directory = metadata_directory
        self.job_directory = job_directory
        self.output_files = list(output_files or [])
        self.work_dir_outputs = [tuple(pair) for pair in (work_dir_outputs or [])]
        self.version_file = version_file
        self.dynamic_outputs = list(dynamic_outputs) if dynamic_outputs is not None else DEFAULT_DYNAMIC_COLLECTION_PATTERN[:]
        self.dynamic_file_sources = list(dynamic_file_sources) if dynamic_file_sources is not None else None
        self.dataset_collector_descriptions = list(dataset_collector_descriptions or [])
        self._patterns = [re.compile(p) for p in self.dynamic_outputs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "working_directory": self.working_directory,
            "metadata_directory": self.metadata_directory,
            "job_directory": self.job_directory,
            "work_dir_outputs": [list(pair) for pair in self.work_dir_outputs],
            "output_files": list(self.output_files),
            "version_file": self.version_file,
            "dynamic_outputs": list(self.dynamic_outputs),
            "dynamic_file_sources": self.dynamic_file_sources,
            "dataset_collector_descriptions": list(self.dataset_collector_descriptions),
        }

    @staticmethod
    def from_dict(config_dict: Mapping[str, Any]) -> "ClientOutputs":
        return ClientOutputs(
            working_directory=config_dict.get("working_directory"),
            metadata_directory=config_dict.get("metadata_directory"),
            job_directory=config_dict.get("job_directory"),
            work_dir_outputs=config_dict.get("work_dir_outputs"),
            output_files=config_dict.get("output_files") or [],
            version_file=config_dict.get("version_file"),
            dynamic_outputs=config_dict.get("dynamic_outputs"),
            dynamic_file_sources=config_dict.get("dynamic_file_sources"),
            dataset_collector_descriptions=config_dict.get("dataset_collector_descriptions"),
        )

    def dynamic_match(self, filename: str) -> bool:
        return any(p.match(filename) for p in self._patterns)


class PulsarOutputs:
    """What the server reports it produced (from a terminal status document)."""

    def __init__(
        self,
        working_directory_contents: Sequence[str],
        output_directory_contents: Sequence[str],
        metadata_directory_contents: Sequence[str] = (),
        job_directory_contents: Sequence[str] = (),
        remote_separator: str = os.sep,
        realized_dynamic_file_sources: Sequence[Mapping[str, Any]] | None = None,
        working_directory: str | None = None,
    ):
        self.working_directory_contents = list(working_directory_contents or [])
        self.output_directory_contents = list(output_directory_contents or [])
        self.metadata_directory_contents = list(metadata_directory_contents or [])
        self.job_directory_contents = list(job_directory_contents or [])
        self.path_helper_separator = remote_separator
        self.remote_separator = remote_separator
        self.realized_dynamic_file_sources = list(realized_dynamic_file_sources or [])
        self.working_directory = working_directory

    @staticmethod
    def from_status_response(status_response: Mapping[str, Any]) -> "PulsarOutputs":
        listing = RemoteListing.from_status(status_response)
        return PulsarOutputs(
            working_directory_contents=listing.working_directory_contents,
            output_directory_contents=listing.output_directory_contents,
            metadata_directory_contents=listing.metadata_directory_contents,
            job_directory_contents=listing.job_directory_contents,
            remote_separator=listing.separator,
            realized_dynamic_file_sources=listing.realized_dynamic_file_sources,
            working_directory=listing.working_directory,
        )

    def listing(self) -> RemoteListing:
        return RemoteListing(
            working_directory_contents=self.working_directory_contents,
            output_directory_contents=self.output_directory_contents,
            metadata_directory_contents=self.metadata_directory_contents,
            job_directory_contents=self.job_directory_contents,
            separator=self.remote_separator,
            realized_dynamic_file_sources=self.realized_dynamic_file_sources,
            working_directory=self.working_directory,
        )

    def has_version_file(self) -> bool:
        return COMMAND_VERSION_FILENAME in self.output_directory_contents
