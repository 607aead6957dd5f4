"""Decoding a submit request into a typed `SubmitRequest`, from either transport.

`parse_submit_args` reads the HTTP submit route's query arguments (every value but
`command_line` is JSON text); `parse_submit_message` reads the body of a message-queue
`setup` message (already decoded JSON, mq-protocol 3.2).  Both end in the same checks, so a
job means the same whichever way it arrived.  Malformed JSON or a value of the wrong shape is
the client's mistake (`InvalidArgument`), never a server fault.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Mapping

from pulsar.errors import InvalidArgument
from pulsar.jobs.directory import JobDirectory, relative_parts
from pulsar.protocol import NESTED_PATH_TYPES, PathType
from pulsar.shared.action_mapper import FileActionMapper
from pulsar.shared.actions import (
    REMOTE_COPY,
    SERVER_SETUP_ACTIONS,
    SSH_ACTIONS,
    URL_ACTIONS,
    ActionError,
    FileAction,
)

#: The private file of a job that holds the accepted request (`SubmitRequest.launch_config`).
LAUNCH_CONFIG = "launch_config"
#: Tokens a command line may use for server paths: the job's own directory (0.15.16+
#: clients) and the staging root (0.15.15 clients, mq-protocol 1.1).
JOB_DIRECTORY_TOKEN = "__PULSAR_JOB_DIRECTORY__"
JOBS_DIRECTORY_TOKEN = "__PULSAR_JOBS_DIRECTORY__"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclasses.dataclass
class SubmitRequest:
    command_line: str
    submit_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    setup_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    remote_staging: dict[str, Any] = dataclasses.field(default_factory=dict)
    env: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    dependencies_description: dict[str, Any] | None = None
    dynamic_file_sources: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    touch_outputs: list[str] = dataclasses.field(default_factory=list)
    token_endpoint: str | None = None
    force_setup: bool = False

    def substitute_directories(self, job_directory: Path, staging_root: Path) -> None:
        """Replace both path tokens in `command_line` with the server's absolute paths."""
        self.command_line = self.command_line.replace(JOB_DIRECTORY_TOKEN, str(job_directory)).replace(
            JOBS_DIRECTORY_TOKEN, str(staging_root)
        )

    def launch_config(self) -> dict[str, Any]:
        """What is persisted as the job's private `launch_config`."""
        return {
            "command_line": self.command_line,
            "submit_params": self.submit_params,
            "setup_params": self.setup_params,
            "remote_staging": self.remote_staging,
            "env": self.env,
            "dependencies_description": self.dependencies_description,
            "dynamic_file_sources": self.dynamic_file_sources,
            "token_endpoint": self.token_endpoint,
        }

    @classmethod
    def from_launch_config(cls, config: Mapping[str, Any]) -> "SubmitRequest":
        return cls(
            command_line=config.get("command_line") or "",
            submit_params=dict(config.get("submit_params") or {}),
            setup_params=dict(config.get("setup_params") or {}),
            remote_staging=dict(config.get("remote_staging") or {}),
            env=list(config.get("env") or []),
            dependencies_description=config.get("dependencies_description"),
            dynamic_file_sources=list(config.get("dynamic_file_sources") or []),
            token_endpoint=config.get("token_endpoint"),
        )


#: A launch config larger than this is not read back (the job could have replaced it).
MAX_LAUNCH_CONFIG_BYTES = 256 * 1024 * 1024


def save_launch_config(directory: JobDirectory, request: SubmitRequest) -> None:
    """Persist the accepted request (atomic, fsynced) before anything acts on it -- among the
    server's private files of the job, not in the job directory: it may hold ssh keys and
    says what the server does after the job (the job must neither read nor rewrite it)."""
    directory.write_private(LAUNCH_CONFIG, json.dumps(request.launch_config(), sort_keys=True).encode("utf-8"))


def load_launch_config(directory: JobDirectory) -> SubmitRequest:
    """The request `save_launch_config` recorded; OSError/ValueError if it is missing,
    unreadable, not a regular file or not a JSON object.  A job accepted by an earlier
    version of this server has it in its job directory, read there as a fallback."""
    data = directory.read_private(LAUNCH_CONFIG, MAX_LAUNCH_CONFIG_BYTES)
    if data is None:
        data = directory.read_whole([LAUNCH_CONFIG], MAX_LAUNCH_CONFIG_BYTES)
    if data is None:
        raise FileNotFoundError(f"no readable {LAUNCH_CONFIG} for job {directory.job_id}")
    config = json.loads(data)
    if not isinstance(config, dict):
        raise ValueError(f"{LAUNCH_CONFIG} of job {directory.job_id} is not a JSON object")
    return SubmitRequest.from_launch_config(config)


def _json_arg(args: Mapping[str, str], key: str, expected: type | tuple[type, ...], default: Any) -> Any:
    raw = args.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{key} is not valid JSON: {exc}") from None
    if value is None:
        return default
    if not isinstance(value, expected):
        names = expected.__name__ if isinstance(expected, type) else "/".join(t.__name__ for t in expected)
        raise InvalidArgument(f"{key} must be a JSON {names}, got {type(value).__name__}")
    return value


def _check_remote_staging(remote_staging: dict[str, Any]) -> dict[str, Any]:
    """What the server stages itself must parse: checked at submit, so a malformed
    `remote_staging` is the client's 400 rather than a job that fails later in staging with a
    KeyError or AttributeError for a reason.  `action_mapper` and `client_outputs` are objects
    and the mapper builds; each `setup` entry names a target (`type`, `name`) and an action the
    server can run."""
    for key in ("action_mapper", "client_outputs"):
        if remote_staging.get(key) is not None and not isinstance(remote_staging[key], dict):
            raise InvalidArgument(f"remote_staging.{key} must be a JSON object")
    mapper = remote_staging.get("action_mapper")
    if mapper:
        rules = mapper.get("paths")
        if rules is not None and not (isinstance(rules, list) and all(isinstance(r, dict) for r in rules)):
            raise InvalidArgument("remote_staging.action_mapper.paths must be a list of objects")
        try:
            FileActionMapper.from_dict(mapper)
        except (ActionError, ValueError, TypeError) as exc:
            raise InvalidArgument(f"remote_staging.action_mapper: {exc}") from None
    entries = remote_staging.get("setup")
    if entries is None:
        return remote_staging
    if not isinstance(entries, list):
        raise InvalidArgument("remote_staging.setup must be a list")
    for entry in entries:
        if not (isinstance(entry, dict) and isinstance(entry.get("action"), dict) and isinstance(entry.get("name"), str)):
            raise InvalidArgument("remote_staging.setup entries must be objects with an 'action' object and a 'name'")
        try:
            path_type = PathType(entry.get("type"))
            relative_parts(entry["name"], nested=path_type in NESTED_PATH_TYPES)
            action = FileAction.from_dict(entry["action"])
        except (ValueError, ActionError) as exc:
            raise InvalidArgument(f"remote_staging.setup entry {entry['name']!r}: {exc}") from None
        if action.action_type not in SERVER_SETUP_ACTIONS:
            raise InvalidArgument(f"remote_staging.setup entry {entry['name']!r}: action {action.action_type!r} "
                                  "cannot be staged by the server")
        needed = "url" if action.action_type in URL_ACTIONS else "path" if action.action_type in (
            REMOTE_COPY, *SSH_ACTIONS) else None
        if needed and not (isinstance(getattr(action, needed), str) and getattr(action, needed)):
            raise InvalidArgument(f"remote_staging.setup entry {entry['name']!r}: a {action.action_type} action "
                                  f"needs a {needed}")
    return remote_staging


def _check_env(env: list[Any]) -> list[dict[str, Any]]:
    for entry in env:
        if not isinstance(entry, dict):
            raise InvalidArgument("env entries must be JSON objects")
        if "file" in entry or "execute" in entry:
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise InvalidArgument(f"env entry has an invalid variable name: {name!r}")
        if "value" in entry and not isinstance(entry["value"], (str, int, float, bool)):
            raise InvalidArgument(f"env entry {name} has a non-scalar value")
    return env


def parse_submit_args(args: Mapping[str, str]) -> SubmitRequest:
    """Decode the submit route's query arguments (spec 3.5), `submit_extras` merged over them."""
    merged: dict[str, Any] = {
        "command_line": args.get("command_line"),
        "params": _json_arg(args, "params", dict, {}),
        "setup_params": _json_arg(args, "setup_params", dict, {}),
        "remote_staging": _json_arg(args, "remote_staging", dict, {}),
        "env": _json_arg(args, "env", list, []),
        "dependencies_description": _json_arg(args, "dependencies_description", dict, None),
        "dynamic_file_sources": _json_arg(args, "dynamic_file_sources", list, []),
        "token_endpoint": _json_arg(args, "token_endpoint", (dict, str), None),
    }
    merged.update(_json_arg(args, "submit_extras", dict, {}))
    merged["submit_params"] = merged.pop("params")
    return _request_from(merged, extras="submit_extras.")


#: Keys of a setup message and the JSON types each may have (null always means "absent").
_MESSAGE_TYPES: dict[str, type | tuple[type, ...]] = {
    "submit_params": dict,
    "setup_params": dict,
    "remote_staging": dict,
    "env": list,
    "dependencies_description": dict,
    "dynamic_file_sources": list,
    "token_endpoint": (dict, str),
    "touch_outputs": list,
}


def parse_submit_message(body: Mapping[str, Any]) -> SubmitRequest:
    """Decode the body of a message-queue `setup` message (mq-protocol 3.2).

    Unknown keys (ack keys, `cvmfsexec`, anything newer) are ignored, as receivers must.
    Raises `InvalidArgument` naming the key for a missing `command_line` or a value of the
    wrong JSON type.  The job id is not read here: the caller has already checked it.
    """
    values: dict[str, Any] = {"command_line": body.get("command_line"), "setup": body.get("setup")}
    for key, expected in _MESSAGE_TYPES.items():
        value = body.get(key)
        if value is not None and not isinstance(value, expected):
            names = expected.__name__ if isinstance(expected, type) else "/".join(t.__name__ for t in expected)
            raise InvalidArgument(f"{key} must be a JSON {names}, got {type(value).__name__}")
        values[key] = value
    return _request_from(values, extras="")


def _request_from(values: Mapping[str, Any], *, extras: str) -> SubmitRequest:
    """The checks both transports share; `extras` prefixes the names of keys that the HTTP
    route takes from `submit_extras`, so messages name the key the client really sent."""
    command_line = values.get("command_line")
    if not isinstance(command_line, str) or not command_line.strip():
        raise InvalidArgument("command_line is required")
    token_endpoint = values.get("token_endpoint")
    if isinstance(token_endpoint, dict):
        token_endpoint = token_endpoint.get("token_endpoint")
    touch = values.get("touch_outputs") or []
    if not isinstance(touch, list) or not all(isinstance(t, str) for t in touch):
        raise InvalidArgument(f"{extras}touch_outputs must be a list of file names")
    sources = values.get("dynamic_file_sources") or []
    if not all(isinstance(s, dict) and isinstance(s.get("path"), str) for s in sources):
        raise InvalidArgument("dynamic_file_sources entries must be objects with a 'path'")
    return SubmitRequest(
        command_line=command_line,
        submit_params=dict(values.get("submit_params") or {}),
        setup_params=dict(values.get("setup_params") or {}),
        remote_staging=_check_remote_staging(dict(values.get("remote_staging") or {})),
        env=_check_env(list(values.get("env") or [])),
        dependencies_description=values.get("dependencies_description"),
        dynamic_file_sources=list(sources),
        touch_outputs=list(touch),
        token_endpoint=token_endpoint if isinstance(token_endpoint, str) else None,
        force_setup=bool(values.get("setup")),
    )
