"""`submit_job`: set up, stage every input file, then launch (spec 4.1, 6.6).

Staging order: tool files, job-directory files, inputs, working-directory files,
metadata-directory files, unstructured (arbitrary) files, and config files last so they
can carry rewritten paths.  Each file goes through the file-action mapper: client-side
actions (`transfer`, `copy`) move bytes now, remote ones become `remote_staging.setup`
entries the server executes before launching, `none`/`rewrite` move nothing.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Iterable, Mapping

from pulsar.client.client import BaseJobClient
from pulsar.client.path_mapper import input_remote_name
from pulsar.client.remote_layout import RemoteLayout
from pulsar.client.staging.inputs import CLIENT_INPUT_PATH_TYPES, ClientInput
from pulsar.client.staging.models import ClientJobDescription
from pulsar.protocol import COMMAND_VERSION_FILENAME, PathType
from pulsar.shared import actions
from pulsar.shared.action_mapper import FileActionMapper
from pulsar.shared.actions import FileAction
from pulsar.shared.unstructured import remote_name, unstructured_map

log = logging.getLogger(__name__)


def submit_job(client: Any, client_job_description: ClientJobDescription,
               job_config: Mapping[str, Any] | None = None) -> str:
    """Stage and launch; return the job id Galaxy records as the external id."""
    description = client_job_description
    if job_config is None:
        tool = description.tool
        job_config = client.setup(getattr(tool, "id", None), getattr(tool, "version", None))
    assert job_config is not None
    if job_config.get("job_id") is not None:
        client.job_id = str(job_config["job_id"])
    stager = _Stager(client, description, RemoteLayout(job_config), client.action_mapper())
    stager.stage_all()
    remote_staging: dict[str, Any] = {
        "action_mapper": stager.mapper.to_dict(),
        "client_outputs": description.client_outputs.to_dict(),
    }
    if stager.setup_entries:
        remote_staging["setup"] = stager.setup_entries
    dependencies = description.dependencies_description
    if dependencies is not None and hasattr(dependencies, "to_dict"):
        dependencies = dependencies.to_dict()
    launch_kwds: dict[str, Any] = {}
    if description.container:
        launch_kwds["container_info"] = {"container_id": description.container, "guest_ports": description.guest_ports}
    if description.remote_pulsar_app_config:
        launch_kwds["pulsar_app_config"] = description.remote_pulsar_app_config
    client.launch(
        stager.command_line,
        dependencies_description=dependencies,
        env=description.env,
        remote_staging=remote_staging,
        job_config=job_config,
        dynamic_file_sources=description.client_outputs.dynamic_file_sources,
        token_endpoint=client.token_endpoint,
        touch_outputs=description.touch_outputs,
        **launch_kwds,
    )
    return str(client.job_id)


def _walk_files(directory: str) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames))
    return found


def _relative_name(path: str, base: str) -> str:
    return os.path.relpath(path, base).replace(os.sep, "/")


class _Stager:
    def __init__(self, client: BaseJobClient, description: ClientJobDescription, layout: RemoteLayout,
                 mapper: FileActionMapper):
        self.client = client
        self.description = description
        self.layout = layout
        self.mapper = mapper
        self.legacy = description.rewrite_paths
        self.rewrites: dict[str, str] = {}
        self.setup_entries: list[dict[str, Any]] = []
        self.command_line = description.command_line
        self.config_texts: dict[str, str] = {}
        for path in description.config_files:
            with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                self.config_texts[path] = handle.read()

    # -- the generic step ----------------------------------------------------------------

    def _texts(self) -> Iterable[str]:
        yield self.command_line
        yield from self.config_texts.values()

    def _referenced(self, path: str) -> bool:
        return any(path in text for text in self._texts())

    def stage(self, local_path: str, path_type: PathType, name: str, action: FileAction | None = None,
              source: Mapping[str, Any] | None = None) -> str | None:
        """Stage one file; return its remote path (None when it stays where it is)."""
        if action is None:
            action = self.mapper.action(source or local_path, path_type)
        if not action.staging_needed:
            rewritten = action.rewritten_path()
            if rewritten:
                self.rewrites[local_path] = rewritten
            return rewritten
        remote = self.layout.path(path_type, name)
        if action.is_remote:
            self.setup_entries.append({"name": name, "type": path_type.value, "action": action.to_dict()})
        else:
            reply = self.client.put_file(local_path, path_type.value, name=name,  # type: ignore[attr-defined]
                                         action_type=action.action_type)
            remote = reply or remote
        self.rewrites[local_path] = remote
        return remote

    # -- the steps ---------------------------------------------------------------------

    def stage_all(self) -> None:
        self.stage_tool_files()
        for path in self.description.job_directory_files:
            self.stage(path, PathType.JOBDIR, os.path.basename(path))
        self.stage_inputs()
        self.stage_directory_files()
        self.stage_unstructured()
        if self.legacy:
            self.add_output_rewrites()
        self.stage_configs()
        self.command_line = self.rewrite(self.command_line)

    def stage_tool_files(self) -> None:
        tool_dir = getattr(self.description.tool, "tool_dir", None)
        if not tool_dir:
            return
        tool_dir = os.path.abspath(tool_dir)
        required = self.description.tool_directory_required_files
        if required is not None:
            relatives = list(required.find_required_files(tool_dir))
        else:
            relatives = self._referenced_tool_files(tool_dir)
        staged = False
        for relative in relatives:
            local = os.path.join(tool_dir, relative)
            for path in _walk_files(local) if os.path.isdir(local) else [local]:
                if os.path.isfile(path):
                    staged = self.stage(path, PathType.TOOL, _relative_name(path, tool_dir)) is not None or staged
        if staged:
            self.rewrites[tool_dir + os.sep] = self.layout.directory(PathType.TOOL) + self.layout.separator

    def _referenced_tool_files(self, tool_dir: str) -> list[str]:
        """Files of the tool directory named in the command line or config files, by
        their local path or by their remote path (Galaxy may already have rewritten it)."""
        prefixes = [tool_dir + os.sep, self.layout.directory(PathType.TOOL) + self.layout.separator]
        found: list[str] = []
        for prefix in prefixes:
            pattern = re.compile(re.escape(prefix) + r"[^\s'\";|&<>()]+")
            for text in self._texts():
                for match in pattern.finditer(text):
                    relative = match.group(0)[len(prefix):].replace(self.layout.separator, os.sep)
                    if os.path.exists(os.path.join(tool_dir, relative)) and relative not in found:
                        found.append(relative)
        return found

    def stage_inputs(self) -> None:
        for client_input in self.description.client_inputs:
            if self.legacy and not self._input_referenced(client_input):
                continue
            path = client_input.path
            if client_input.input_type == CLIENT_INPUT_PATH_TYPES.INPUT_EXTRA_FILES_PATH:
                base = os.path.basename(os.path.normpath(path))
                staged_any = False
                for file_path in _walk_files(path):
                    remote = self.stage(file_path, PathType.INPUT, base + "/" + _relative_name(file_path, path))
                    staged_any = staged_any or remote is not None
                if staged_any:
                    self.rewrites[path] = self.layout.path(PathType.INPUT, base)
            elif os.path.isfile(path):
                name = input_remote_name(path, client_input.input_type)
                self.stage(path, PathType.INPUT, name, source=client_input.action_source)
            else:
                log.warning("input %s does not exist; not staged", path)

    def _input_referenced(self, client_input: ClientInput) -> bool:
        if self._referenced(client_input.path):
            return True
        if client_input.input_type == CLIENT_INPUT_PATH_TYPES.INPUT_EXTRA_FILES_PATH:
            base = os.path.normpath(client_input.path)
            if base.endswith("_files"):
                return self._referenced(base[: -len("_files")])
        return False

    def stage_directory_files(self) -> None:
        working = self.description.working_directory
        if working and os.path.isdir(working):
            for entry in sorted(os.listdir(working)):
                path = os.path.join(working, entry)
                if os.path.isfile(path):
                    self.stage(path, PathType.WORKDIR, entry)
        metadata = self.description.metadata_directory
        if metadata and os.path.isdir(metadata):
            holds_working = working and os.path.abspath(working).startswith(os.path.abspath(metadata) + os.sep)
            if holds_working:  # legacy metadata strategy: the job directory itself
                paths = [os.path.join(metadata, e) for e in sorted(os.listdir(metadata))]
                paths = [p for p in paths if os.path.isfile(p)]
            else:
                paths = _walk_files(metadata)
            for path in paths:
                self.stage(path, PathType.METADATA, _relative_name(path, metadata))

    def stage_unstructured(self) -> None:
        for local, name in self.description.arbitrary_files.items():
            if os.path.isdir(local):
                for path in _walk_files(local):
                    self.stage(path, PathType.UNSTRUCTURED, name.rstrip("/") + "/" + _relative_name(path, local),
                               action=self.mapper.action(local, PathType.UNSTRUCTURED))
            else:
                self.stage(local, PathType.UNSTRUCTURED, name)
        if not self.legacy:
            return
        for pattern in self.mapper.unstructured_patterns():
            for text in list(self._texts()):
                for match in pattern.finditer(text):
                    reference = match.group(0)
                    if reference in self.rewrites or not os.path.exists(reference):
                        continue
                    action = self.mapper.action(reference, PathType.UNSTRUCTURED)
                    if not action.staging_needed:
                        if action.rewritten_path():
                            self.rewrites[reference] = action.rewritten_path()  # type: ignore[assignment]
                        continue
                    for path, name in unstructured_map(reference, action.depth).items():
                        self.stage(path, PathType.UNSTRUCTURED, name, action=action)
                    self.rewrites[reference] = self.layout.path(PathType.UNSTRUCTURED, remote_name(reference, action.depth))

    def add_output_rewrites(self) -> None:
        outputs = self.description.client_outputs
        working = outputs.working_directory
        for path in outputs.output_files:
            in_working = bool(working) and os.path.abspath(path).startswith(os.path.abspath(str(working)) + os.sep)
            path_type = PathType.OUTPUT_WORKDIR if in_working else PathType.OUTPUT
            action = self.mapper.action(path, path_type)
            if action.staging_needed:
                self.rewrites[path] = self.layout.path(path_type, os.path.basename(path))
            elif action.rewritten_path():
                self.rewrites[path] = action.rewritten_path()  # type: ignore[assignment]
        if outputs.version_file and self.mapper.action(outputs.version_file, PathType.OUTPUT).staging_needed:
            self.rewrites[outputs.version_file] = self.layout.path(PathType.OUTPUT, COMMAND_VERSION_FILENAME)
        if working and self.mapper.action(working, PathType.WORKDIR).staging_needed:
            self.rewrites.setdefault(os.path.abspath(working), self.layout.directory(PathType.WORKDIR))
        for path in self.config_texts:
            if self.mapper.action(path, PathType.CONFIG).staging_needed:
                self.rewrites[path] = self.layout.path(PathType.CONFIG, os.path.basename(path))

    def stage_configs(self) -> None:
        for path, text in self.config_texts.items():
            action = self.mapper.action(path, PathType.CONFIG)
            if not action.staging_needed:
                continue
            contents = self.rewrite(text)
            name = os.path.basename(path)
            if action.is_remote or (self.client.local_setup and action.action_type != actions.COPY):
                message = actions.message_action(contents)
                self.setup_entries.append({"name": name, "type": PathType.CONFIG.value, "action": message.to_dict()})
            else:
                action_type = actions.COPY if action.action_type == actions.COPY else actions.TRANSFER
                self.client.put_file(path, PathType.CONFIG.value, name=name,  # type: ignore[attr-defined]
                                     contents=contents.encode("utf-8", "surrogateescape"), action_type=action_type)

    def rewrite(self, text: str) -> str:
        """Replace local paths by remote ones (all of them in legacy mode, else the tool dir)."""
        if self.legacy:
            rewrites = self.rewrites
        else:
            tool_dir = getattr(self.description.tool, "tool_dir", None)
            key = os.path.abspath(tool_dir) + os.sep if tool_dir else None
            rewrites = {key: self.rewrites[key]} if key and key in self.rewrites else {}
        if not rewrites:
            return text
        keys = sorted(rewrites, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(k) for k in keys))
        return pattern.sub(lambda m: rewrites[m.group(0)], text)
