"""Job clients: one object per (destination, job id), holding no state between calls.

Galaxy rebuilds a client from `(destination_params, job_id)` for every poll and after a
restart, so everything a client knows comes from those two values.  `BaseJobClient` is the
part Galaxy touches (`destination_params`, `env`, `setup`, `get_status`, `full_status`,
`kill`); `JobClient` talks HTTP (or in-process WSGI) to a Pulsar server.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Mapping, Sequence

from pulsar import protocol
from pulsar.client.destination import submit_params
from pulsar.client.exceptions import PulsarClientError
from pulsar.client.http_api import HttpApi
from pulsar.client.input_cache import InputCacher
from pulsar.client.setup_handler import local_setup
from pulsar.shared import actions
from pulsar.shared.action_mapper import FileActionMapper
from pulsar.util.fileio import copy_file

log = logging.getLogger(__name__)


class BaseJobClient:
    """What every client offers; see the module docstring."""

    def __init__(self, destination_params: Mapping[str, Any], job_id: str):
        self.destination_params: dict[str, Any] = dict(destination_params)
        self.job_id = str(job_id)
        env = self.destination_params.get("env")
        self.env: list[Any] = env if isinstance(env, list) else list(env or [])
        self.files_endpoint: str | None = self.destination_params.get("files_endpoint")
        self.token_endpoint: str | None = self.destination_params.get("token_endpoint")
        self.default_file_action: str = self.destination_params.get("default_file_action") or actions.TRANSFER
        self.action_config_path: str | None = self.destination_params.get("file_action_config")
        self.file_actions: Any = self.destination_params.get("file_actions")

    @property
    def local_setup(self) -> bool:
        """True when the job layout is computed here (`jobs_directory`), not by the server."""
        return bool(self.destination_params.get("jobs_directory"))

    def action_mapper(self) -> FileActionMapper:
        return FileActionMapper.from_destination_params(self.destination_params)

    def setup(self, tool_id: str | None = None, tool_version: str | None = None,
              preserve_galaxy_python_environment: Any = None) -> dict[str, Any]:
        """Return the job layout (spec 3.2); the client adopts the job id it names."""
        if self.local_setup:
            config = local_setup(self.destination_params, self.job_id, tool_id, tool_version,
                                 preserve_galaxy_python_environment)
        else:
            config = self._remote_setup(tool_id, tool_version, preserve_galaxy_python_environment)
        new_id = config.get("job_id")
        if new_id is not None and str(new_id) != self.job_id:
            log.info("server assigned job id %s to client job %s", new_id, self.job_id)
            self.job_id = str(new_id)
        return config

    def _remote_setup(self, tool_id: str | None, tool_version: str | None,
                      preserve_galaxy_python_environment: Any) -> dict[str, Any]:
        raise NotImplementedError

    def get_status(self) -> str:
        return str(self.full_status().get("status"))

    def full_status(self) -> dict[str, Any]:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def clean(self) -> None:
        raise NotImplementedError


def _json(value: Any) -> str:
    return json.dumps(value)


class JobClient(BaseJobClient):
    """A job on a Pulsar server reached through `HttpApi` (any transport)."""

    def __init__(self, destination_params: Mapping[str, Any], job_id: str, api: HttpApi,
                 cacher: InputCacher | None = None):
        super().__init__(destination_params, job_id)
        self.api = api
        #: Set when the client manager caches inputs: files (not in-memory contents) then
        #: go through the server's file cache.
        self.cacher = cacher

    def _job(self, suffix: str = "") -> str:
        return f"jobs/{self.job_id}{suffix}"

    def _params(self, **extra: Any) -> dict[str, Any]:
        # The reference server's routes read job_id from the query too; harmless for ours.
        return {"job_id": self.job_id, **extra}

    # -- setup and staging ---------------------------------------------------------------

    def _remote_setup(self, tool_id: str | None, tool_version: str | None,
                      preserve_galaxy_python_environment: Any) -> dict[str, Any]:
        params = self._params(tool_id=tool_id, tool_version=tool_version, use_metadata="true")
        if preserve_galaxy_python_environment is not None:
            params["preserve_galaxy_python_environment"] = preserve_galaxy_python_environment
        config = self.api.call_json("POST", "jobs", params)
        if not isinstance(config, dict):
            raise PulsarClientError(f"setup of job {self.job_id} returned {config!r}")
        return config

    def remote_path(self, input_type: str, name: str) -> str:
        """Where the server keeps (type, name): `GET jobs/<id>/files/path`."""
        reply = self.api.call_json("GET", self._job("/files/path"), self._params(name=name, type=input_type))
        return str(reply["path"])

    def put_file(self, path: str | None, input_type: str, name: str | None = None,
                 contents: str | bytes | None = None, action_type: str = actions.TRANSFER) -> str:
        """Stage one file (from `path`, or in-memory `contents`); return its server path."""
        if name is None:
            if path is None:
                raise PulsarClientError("put_file needs a path or a name")
            name = os.path.basename(path)
        if isinstance(contents, str):
            contents = contents.encode("utf-8")
        if action_type == actions.COPY:
            remote = self.remote_path(input_type, name)
            if contents is not None:
                os.makedirs(os.path.dirname(remote), exist_ok=True)
                with open(remote, "wb") as handle:
                    handle.write(contents)
            else:
                copy_file(str(path), remote, fsync=False, make_parents=True)
            return remote
        if action_type not in (actions.TRANSFER, actions.MESSAGE):
            raise PulsarClientError(f"put_file cannot perform action {action_type!r}")
        params = self._params(name=name, type=input_type)
        if self.cacher is not None and contents is None and path is not None:
            reply = self.cacher.put_file(self.api, self._job("/files"), params, path)
        else:
            reply = self.api.upload(self._job("/files"), params, file_path=path if contents is None else None,
                                    contents=contents)
        return str(reply["path"]) if isinstance(reply, Mapping) and "path" in reply else ""

    def fetch_output(self, path: str, name: str | None = None, working_directory: str | None = None,
                     action_type: str = actions.TRANSFER, output_type: str = protocol.PathType.OUTPUT.value) -> None:
        """Bring one output back to the local `path`."""
        if name is None:
            name = os.path.basename(path)
        if action_type == actions.COPY:
            copy_file(self.remote_path(output_type, name), path, fsync=False, make_parents=True)
            return
        if action_type != actions.TRANSFER:
            raise PulsarClientError(f"fetch_output cannot perform action {action_type!r}")
        self.api.download(self._job("/files"), self._params(name=name, type=output_type), path)

    # -- submission and control ----------------------------------------------------------

    def launch(self, command_line: str, dependencies_description: Any = None, env: Sequence[Any] | None = None,
               remote_staging: Mapping[str, Any] | None = None, job_config: Mapping[str, Any] | None = None,
               dynamic_file_sources: Any = None, token_endpoint: str | None = None,
               touch_outputs: Sequence[str] | None = None, container_info: Any = None,
               pulsar_app_config: Any = None) -> None:
        """`POST jobs/<id>/submit` with the query arguments of spec 4.4."""
        if container_info:
            raise PulsarClientError("container_info is only supported by co-execution clients, not over HTTP")
        if pulsar_app_config:
            raise PulsarClientError("pulsar_app_config is only supported by co-execution clients, not over HTTP")
        params = self._params(command_line=command_line)
        submit = submit_params(self.destination_params)
        if submit:
            params["params"] = _json(submit)
        if dependencies_description is not None:
            params["dependencies_description"] = _json(dependencies_description)
        if env:
            params["env"] = _json(list(env))
        params["remote_staging"] = _json(dict(remote_staging or {}))
        if job_config is not None:
            params["submit_extras"] = _json({"touch_outputs": list(touch_outputs or [])})
            if job_config.get("setup_params"):
                params["setup_params"] = _json(job_config["setup_params"])
        if token_endpoint:
            params["token_endpoint"] = _json({"token_endpoint": token_endpoint})
        if dynamic_file_sources is not None:
            params["dynamic_file_sources"] = _json(dynamic_file_sources)
        self.api.call("POST", self._job("/submit"), params)

    def full_status(self) -> dict[str, Any]:
        status = self.api.call_json("GET", self._job("/status"), self._params())
        if not isinstance(status, dict):
            raise PulsarClientError(f"status of job {self.job_id} is not a document: {status!r}")
        return status

    raw_check_complete = full_status

    def kill(self) -> None:
        self.api.call("PUT", self._job("/cancel"), self._params())

    def clean(self) -> None:
        self.api.call("DELETE", self._job(), self._params())


# The reference's home of the message-queue client; imported last because `mq_client`
# builds on `BaseJobClient` above.
from pulsar.client.mq_client import MessageJobClient  # noqa: E402

__all__ = ["BaseJobClient", "JobClient", "MessageJobClient"]
