"""The pieces the OpenAPI description (`pulsar.web.openapi`) is built of: JSON schemas of
the bodies (setup and status documents, the error body), the error responses, shared
parameters and the security schemes.  Kept apart from the operations table so that adding
a route touches only that table."""

from __future__ import annotations

from typing import Any

from pulsar import protocol
from pulsar.jobs.directory import MAX_NAME_LENGTH
from pulsar.jobs.ids import MAX_JOB_ID_LENGTH
from pulsar.shared.actions import REMOTE_COPY, SERVER_SETUP_ACTIONS, SSH_ACTIONS, URL_ACTIONS

Json = dict[str, Any]

# -- building blocks -----------------------------------------------------------------------


def ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def schema_ref(name: str) -> Json:
    return ref("schemas", name)


def json_content(schema: Json, description: str, headers: Json | None = None) -> Json:
    response: Json = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def query(name: str, description: str, *, required: bool = False, schema: Json | None = None) -> Json:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema if schema is not None else {"type": "string"}}


def json_query(name: str, description: str, schema: Json) -> Json:
    """A query argument whose value is JSON text (the submit arguments, spec 3.5)."""
    return {"name": name, "in": "query", "required": False, "description": description,
            "content": {"application/json": {"schema": schema}}}


def header(name: str, description: str) -> Json:
    return {"name": name, "in": "header", "required": False, "description": description,
            "schema": {"type": "string"}}


STRING = {"type": "string"}
TEXT = {"type": "string", "minLength": 1}
STRINGS = {"type": "array", "items": STRING}
PATH_TYPE = {"type": "string", "enum": [t.value for t in protocol.PathType]}
NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH, "pattern": "^[^\\x00-\\x1f]+$"}

# -- components ----------------------------------------------------------------------------

ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "A missing or malformed argument, a name that leaves its directory, a malformed or "
                        "incomplete body, or a malformed request (`error` says which)."),
    401: ("Unauthorized", "The token is missing or wrong (`private_token` query argument or "
                          "`Authorization: Bearer`)."),
    403: ("Forbidden", "Refused: the tool allow-list or `user_auth` says no (`refused`), a symlink or special "
                       "file stands where the job expects its own file, or a server without a token was "
                       "reached from a non-loopback address (`forbidden`)."),
    404: ("NotFound", "No such manager (a bare route belongs to `_default_`), job or file."),
    409: ("Conflict", "The request does not fit the job's state (e.g. a directory where a file is expected)."),
    411: ("LengthRequired", "An upload without Content-Length that the server cannot read to its end."),
    414: ("UriTooLong", "The request line is longer than `max_request_line`."),
    431: ("HeaderTooLarge", "A header line, or the header section, is too long."),
    500: ("ServerError", "A fault of the server (never the client's mistake); logged with a traceback."),
    501: ("NotImplemented", "This server does not offer the feature (e.g. the file cache without "
                            "`file_cache_dir`)."),
    507: ("InsufficientStorage", "The file cache cannot make room: what it holds is in use by jobs, or the "
                                 "file is larger than `file_cache_max_size` (`cache_full`)."),
}
#: Every operation can answer these: malformed requests, and the server's own faults.
ALWAYS = (400, 414, 431, 500)
#: And these when the route checks the token and looks up a manager.
AUTHENTICATED = (401, 403, 404)

SYSTEM_PROPERTIES: Json = {
    "type": "object",
    "description": "`separator` always; `galaxy_home` and friends when the manager configures them.",
    "required": ["separator"],
    "properties": {"separator": STRING},
    "additionalProperties": STRING,
}

LAYOUT_KEYS = ("job_directory", "working_directory", "metadata_directory", "outputs_directory",
                "configs_directory", "tools_directory", "inputs_directory", "unstructured_files_directory")

SETUP_DOCUMENT: Json = {
    "type": "object",
    "description": "The job's directory layout (absolute paths) and what the server says of itself (spec 3.2).",
    "required": [*LAYOUT_KEYS, "path_separator", "job_id", "system_properties", "pulsar_version",
                 "preserve_galaxy_python_environment"],
    "properties": {
        **{key: STRING for key in LAYOUT_KEYS},
        "path_separator": STRING,
        "job_id": {"type": "string", "description": "The id the server assigned; use it from now on."},
        "system_properties": schema_ref("SystemProperties"),
        "pulsar_version": STRING,
        "preserve_galaxy_python_environment": {"type": "null"},
        "tool_id": {"type": "string", "description": "Present when setup named a tool."},
        "tool_version": {"type": "string", "description": "Present when setup named a tool version."},
    },
    "additionalProperties": False,
}

PENDING_STATUS: Json = {
    "type": "object",
    "description": "A job still on its way: exactly these three keys (spec 4.5).",
    "required": ["complete", "status", "job_id"],
    "properties": {
        "complete": {"const": "false"},
        "status": {"enum": [s.value for s in protocol.Status if not s.terminal]},
        "job_id": STRING,
    },
    "additionalProperties": False,
}

TERMINAL_STATUS: Json = {
    "type": "object",
    "description": "A job that has ended, or one the server does not know (`lost`: never set up, or "
                   "cleaned); the streams are cut at `maximum_stream_size` (spec 4.5).",
    "required": ["job_id", "complete", "status", "returncode", "stdout", "stderr", "job_stdout", "job_stderr",
                 "working_directory", "metadata_directory", "job_directory", "working_directory_contents",
                 "metadata_directory_contents", "outputs_directory_contents", "job_directory_contents",
                 "system_properties", "pulsar_version", "realized_dynamic_file_sources"],
    "properties": {
        "job_id": STRING,
        "complete": {"const": "true"},
        "status": {"enum": [s.value for s in protocol.Status if s.terminal]},
        "returncode": {"type": ["integer", "null"]},
        **{key: STRING for key in ("stdout", "stderr", "job_stdout", "job_stderr", "working_directory",
                                    "metadata_directory", "job_directory", "pulsar_version")},
        **{key: STRINGS for key in ("working_directory_contents", "metadata_directory_contents",
                                     "outputs_directory_contents", "job_directory_contents")},
        "system_properties": schema_ref("SystemProperties"),
        "realized_dynamic_file_sources": {
            "type": "array",
            "items": {"type": "object", "required": ["path", "contents"],
                      "properties": {"path": STRING, "type": STRING, "contents": STRING}},
        },
    },
    "additionalProperties": False,
}

SCHEMAS: Json = {
    "Error": {
        "type": "object",
        "description": "Every error the application answers: a stable code and a sentence for people.",
        "required": ["error", "detail"],
        "properties": {"error": STRING, "detail": STRING},
        "additionalProperties": False,
    },
    "SystemProperties": SYSTEM_PROPERTIES,
    "SetupDocument": SETUP_DOCUMENT,
    "PendingStatus": PENDING_STATUS,
    "TerminalStatus": TERMINAL_STATUS,
    "StatusDocument": {"oneOf": [schema_ref("PendingStatus"), schema_ref("TerminalStatus")]},
    "FilePath": {
        "type": "object", "required": ["path"], "properties": {"path": STRING}, "additionalProperties": False,
    },
    "Uploaded": {
        "type": "object",
        "description": "Where the file now is, its size and its sha256 (hex), computed while it was written.",
        "required": ["path", "size", "sha256"],
        "properties": {"path": STRING, "size": {"type": "integer", "minimum": 0},
                       "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
        "additionalProperties": False,
    },
    "CacheStatus": {
        "type": "object",
        "description": "`token`: the entry's sha256 when `ready`, else the alias of the client's file.",
        "required": ["token", "ready"],
        "properties": {"token": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "ready": {"type": "boolean"}},
        "additionalProperties": False,
    },
    "Health": {
        "type": "object", "required": ["version"], "properties": {"version": STRING},
        "additionalProperties": False,
    },
}

#: One file the server fetches itself: where it goes (type, name) and how (a file action).
STAGE_IN_ENTRY: Json = {
    "type": "object",
    "required": ["action", "name", "type"],
    "properties": {
        "action": {
            "type": "object",
            "description": "A file action (spec 6): a URL action needs a `url`, a copy, scp or rsync action "
                           "the client's `path`, a `message` its `contents`.",
            "required": ["action_type"],
            "properties": {"action_type": {"enum": sorted(SERVER_SETUP_ACTIONS)}},
            "anyOf": [
                {"properties": {"action_type": {"enum": sorted(URL_ACTIONS)}, "url": TEXT}, "required": ["url"]},
                {"properties": {"action_type": {"enum": sorted({REMOTE_COPY, *SSH_ACTIONS})}, "path": TEXT},
                 "required": ["path"]},
                {"properties": {"action_type": {"enum": sorted(SERVER_SETUP_ACTIONS - URL_ACTIONS - SSH_ACTIONS
                                                               - {REMOTE_COPY})}}},
            ],
        },
        "name": NAME,
        "type": PATH_TYPE,
    },
}

OK: Json = {
    "description": "Done (the two bytes `OK`).",
    "content": {"text/plain": {"schema": {"const": "OK"}}},
}

PARAMETERS: Json = {
    "manager_name": {"name": "manager_name", "in": "path", "required": True,
                     "schema": {"type": "string", "examples": [protocol.DEFAULT_MANAGER_NAME]},
                     "description": "The manager (job back-end) to address; the bare routes use `_default_`."},
    "job_id": {"name": "job_id", "in": "path", "required": True,
               "description": "The job id setup answered with (Galaxy's id, `<id>_<task>`, or a hex UUID).",
               "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                          "maxLength": MAX_JOB_ID_LENGTH}},
    "name": query("name", "The file's name, relative to the directory `type` names; for nested types it may "
                           "have sub-directories, for the others only the last component counts.  One that "
                           "climbs out of its directory, or that the file system cannot hold, is a 400.",
                   required=True, schema=NAME),
    "type": query("type", "Which directory of the job the file belongs in (spec 4.2).", required=True,
                   schema=PATH_TYPE),
}

SECURITY_SCHEMES: Json = {
    "private_token": {"type": "apiKey", "in": "query", "name": "private_token",
                      "description": "The server's `private_token`, as the reference client sends it."},
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "The same token in `Authorization: Bearer` (kept out of URLs and proxy logs)."},
}
SECURITY: list[Json] = [{"private_token": []}, {"bearer": []}]


def binary(description: str, *, content_range: bool = False) -> Json:
    headers: Json = {
        "ETag": {"description": "A strong tag of this version of the file.", "required": True, "schema": STRING},
        "Accept-Ranges": {"required": True, "schema": {"const": "bytes"}},
        "Repr-Digest": {"description": "`sha-256=:<base64>:`: when asked for, or already known.", "schema": STRING},
    }
    if content_range:
        headers["Content-Range"] = {"required": True, "schema": STRING}
    return {"description": description, "headers": headers,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
