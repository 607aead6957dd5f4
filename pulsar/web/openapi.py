"""The OpenAPI 3.1 description of the HTTP API (spec 2-4), built from one table.

`OPERATIONS` describes each route of `pulsar.web.routes.ROUTES`, keyed the same way,
`(method, pattern)`; `document()` turns it into the description `GET /openapi.json` serves.
Every route is written out twice, bare and under `/managers/{manager_name}`, and a route
that takes any method (`method` None) under every OpenAPI method, so the table holds each
route once.  test/web/test_openapi.py keeps the table and `ROUTES` in step, and schemathesis
(test/web/test_schemathesis.py) holds a live server to it.  Adding a route: one `ROUTES`
entry and one `OPERATIONS` entry.

This module imports nothing from the rest of the web layer, so the route table may import
the handler that serves it.  `python -m pulsar.web.openapi` prints the description.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

from pulsar import __version__, protocol
from pulsar.jobs.directory import MAX_NAME_LENGTH
from pulsar.jobs.ids import MAX_JOB_ID_LENGTH
from pulsar.shared.actions import REMOTE_COPY, SERVER_SETUP_ACTIONS, SSH_ACTIONS, URL_ACTIONS

Json = dict[str, Any]

MANAGER_PREFIX = "/managers/{manager_name}"
#: What a route declared without a method (status) is described under: every method OpenAPI knows.
ANY_METHOD = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# -- building blocks -----------------------------------------------------------------------


def _ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> Json:
    return _ref("schemas", name)


def _json(schema: Json, description: str, headers: Json | None = None) -> Json:
    response: Json = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _query(name: str, description: str, *, required: bool = False, schema: Json | None = None) -> Json:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema if schema is not None else {"type": "string"}}


def _json_query(name: str, description: str, schema: Json) -> Json:
    """A query argument whose value is JSON text (the submit arguments, spec 3.5)."""
    return {"name": name, "in": "query", "required": False, "description": description,
            "content": {"application/json": {"schema": schema}}}


def _header(name: str, description: str) -> Json:
    return {"name": name, "in": "header", "required": False, "description": description,
            "schema": {"type": "string"}}


_STRING = {"type": "string"}
_TEXT = {"type": "string", "minLength": 1}
_STRINGS = {"type": "array", "items": _STRING}
_PATH_TYPE = {"type": "string", "enum": [t.value for t in protocol.PathType]}
_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH, "pattern": "^[^\\x00-\\x1f]+$"}

# -- components ----------------------------------------------------------------------------

_ERRORS: dict[int, tuple[str, str]] = {
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
}
#: Every operation can answer these: malformed requests, and the server's own faults.
_ALWAYS = (400, 414, 431, 500)
#: And these when the route checks the token and looks up a manager.
_AUTHENTICATED = (401, 403, 404)

_SYSTEM_PROPERTIES: Json = {
    "type": "object",
    "description": "`separator` always; `galaxy_home` and friends when the manager configures them.",
    "required": ["separator"],
    "properties": {"separator": _STRING},
    "additionalProperties": _STRING,
}

_LAYOUT_KEYS = ("job_directory", "working_directory", "metadata_directory", "outputs_directory",
                "configs_directory", "tools_directory", "inputs_directory", "unstructured_files_directory")

_SETUP_DOCUMENT: Json = {
    "type": "object",
    "description": "The job's directory layout (absolute paths) and what the server says of itself (spec 3.2).",
    "required": [*_LAYOUT_KEYS, "path_separator", "job_id", "system_properties", "pulsar_version",
                 "preserve_galaxy_python_environment"],
    "properties": {
        **{key: _STRING for key in _LAYOUT_KEYS},
        "path_separator": _STRING,
        "job_id": {"type": "string", "description": "The id the server assigned; use it from now on."},
        "system_properties": _schema("SystemProperties"),
        "pulsar_version": _STRING,
        "preserve_galaxy_python_environment": {"type": "null"},
        "tool_id": {"type": "string", "description": "Present when setup named a tool."},
        "tool_version": {"type": "string", "description": "Present when setup named a tool version."},
    },
    "additionalProperties": False,
}

_PENDING_STATUS: Json = {
    "type": "object",
    "description": "A job still on its way: exactly these three keys (spec 4.5).",
    "required": ["complete", "status", "job_id"],
    "properties": {
        "complete": {"const": "false"},
        "status": {"enum": [s.value for s in protocol.Status if not s.terminal]},
        "job_id": _STRING,
    },
    "additionalProperties": False,
}

_TERMINAL_STATUS: Json = {
    "type": "object",
    "description": "A job that has ended, or one the server does not know (`lost`: never set up, or "
                   "cleaned); the streams are cut at `maximum_stream_size` (spec 4.5).",
    "required": ["job_id", "complete", "status", "returncode", "stdout", "stderr", "job_stdout", "job_stderr",
                 "working_directory", "metadata_directory", "job_directory", "working_directory_contents",
                 "metadata_directory_contents", "outputs_directory_contents", "job_directory_contents",
                 "system_properties", "pulsar_version", "realized_dynamic_file_sources"],
    "properties": {
        "job_id": _STRING,
        "complete": {"const": "true"},
        "status": {"enum": [s.value for s in protocol.Status if s.terminal]},
        "returncode": {"type": ["integer", "null"]},
        **{key: _STRING for key in ("stdout", "stderr", "job_stdout", "job_stderr", "working_directory",
                                    "metadata_directory", "job_directory", "pulsar_version")},
        **{key: _STRINGS for key in ("working_directory_contents", "metadata_directory_contents",
                                     "outputs_directory_contents", "job_directory_contents")},
        "system_properties": _schema("SystemProperties"),
        "realized_dynamic_file_sources": {
            "type": "array",
            "items": {"type": "object", "required": ["path", "contents"],
                      "properties": {"path": _STRING, "type": _STRING, "contents": _STRING}},
        },
    },
    "additionalProperties": False,
}

_SCHEMAS: Json = {
    "Error": {
        "type": "object",
        "description": "Every error the application answers: a stable code and a sentence for people.",
        "required": ["error", "detail"],
        "properties": {"error": _STRING, "detail": _STRING},
        "additionalProperties": False,
    },
    "SystemProperties": _SYSTEM_PROPERTIES,
    "SetupDocument": _SETUP_DOCUMENT,
    "PendingStatus": _PENDING_STATUS,
    "TerminalStatus": _TERMINAL_STATUS,
    "StatusDocument": {"oneOf": [_schema("PendingStatus"), _schema("TerminalStatus")]},
    "FilePath": {
        "type": "object", "required": ["path"], "properties": {"path": _STRING}, "additionalProperties": False,
    },
    "Uploaded": {
        "type": "object",
        "description": "Where the file now is, its size and its sha256 (hex), computed while it was written.",
        "required": ["path", "size", "sha256"],
        "properties": {"path": _STRING, "size": {"type": "integer", "minimum": 0},
                       "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
        "additionalProperties": False,
    },
    "Health": {
        "type": "object", "required": ["version"], "properties": {"version": _STRING},
        "additionalProperties": False,
    },
}

#: One file the server fetches itself: where it goes (type, name) and how (a file action).
_STAGE_IN_ENTRY: Json = {
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
                {"properties": {"action_type": {"enum": sorted(URL_ACTIONS)}, "url": _TEXT}, "required": ["url"]},
                {"properties": {"action_type": {"enum": sorted({REMOTE_COPY, *SSH_ACTIONS})}, "path": _TEXT},
                 "required": ["path"]},
                {"properties": {"action_type": {"enum": sorted(SERVER_SETUP_ACTIONS - URL_ACTIONS - SSH_ACTIONS
                                                               - {REMOTE_COPY})}}},
            ],
        },
        "name": _NAME,
        "type": _PATH_TYPE,
    },
}

_OK: Json = {
    "description": "Done (the two bytes `OK`).",
    "content": {"text/plain": {"schema": {"const": "OK"}}},
}

_PARAMETERS: Json = {
    "manager_name": {"name": "manager_name", "in": "path", "required": True,
                     "schema": {"type": "string", "examples": [protocol.DEFAULT_MANAGER_NAME]},
                     "description": "The manager (job back-end) to address; the bare routes use `_default_`."},
    "job_id": {"name": "job_id", "in": "path", "required": True,
               "description": "The job id setup answered with (Galaxy's id, `<id>_<task>`, or a hex UUID).",
               "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                          "maxLength": MAX_JOB_ID_LENGTH}},
    "name": _query("name", "The file's name, relative to the directory `type` names; for nested types it may "
                           "have sub-directories, for the others only the last component counts.  One that "
                           "climbs out of its directory, or that the file system cannot hold, is a 400.",
                   required=True, schema=_NAME),
    "type": _query("type", "Which directory of the job the file belongs in (spec 4.2).", required=True,
                   schema=_PATH_TYPE),
}

_SECURITY_SCHEMES: Json = {
    "private_token": {"type": "apiKey", "in": "query", "name": "private_token",
                      "description": "The server's `private_token`, as the reference client sends it."},
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "The same token in `Authorization: Bearer` (kept out of URLs and proxy logs)."},
}
_SECURITY: list[Json] = [{"private_token": []}, {"bearer": []}]

# -- operations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """A follow-up call: `target` is an operation's name, `parameters` maps its parameters
    to runtime expressions over this call (OpenAPI links; schemathesis chains them)."""

    target: str
    parameters: Mapping[str, str]


@dataclass(frozen=True)
class Operation:
    """One route.  `name` is its operationId (the managers variant is `manager_<name>`);
    `responses` are the route's own, the errors of `_ALWAYS` (and `_AUTHENTICATED` for an
    authenticated route) are added; an int maps to the error body of `_ERRORS`."""

    name: str
    summary: str
    description: str
    responses: Mapping[int, Json | None]
    parameters: tuple[Json, ...] = ()
    request_body: Json | None = None
    authenticated: bool = True
    links: Mapping[str, Link] = field(default_factory=dict)


def _after(job_id: str, *targets: str) -> dict[str, Link]:
    """Links from one call to each of `targets`, carrying the job id."""
    return {target: Link(target, {"job_id": job_id}) for target in targets}


def _binary(description: str, *, content_range: bool = False) -> Json:
    headers: Json = {
        "ETag": {"description": "A strong tag of this version of the file.", "required": True, "schema": _STRING},
        "Accept-Ranges": {"required": True, "schema": {"const": "bytes"}},
        "Repr-Digest": {"description": "`sha-256=:<base64>:`: when asked for, or already known.", "schema": _STRING},
    }
    if content_range:
        headers["Content-Range"] = {"required": True, "schema": _STRING}
    return {"description": description, "headers": headers,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}


_JOB_FOLLOW_UPS = ("upload", "file_path", "submit", "status", "download", "cancel", "clean")

OPERATIONS: dict[tuple[str | None, str], Operation] = {
    ("POST", "/jobs"): Operation(
        "setup", "Set up a job",
        "Creates the job's directory (idempotent) and answers with its layout (spec 3.2).",
        {200: _json(_schema("SetupDocument"), "The setup document."), 403: None},
        parameters=(
            _query("job_id", "The client's id for the job.", required=True, schema=_PARAMETERS["job_id"]["schema"]),
            _query("tool_id", "The tool the job runs (checked against the tool allow-list, if any)."),
            _query("tool_version", "The tool's version."),
            _query("use_metadata", "Sent by the reference client; ignored."),
            _query("preserve_galaxy_python_environment", "Sent by the reference client; ignored over HTTP."),
        ),
        links=_after("$response.body#/job_id", *_JOB_FOLLOW_UPS),
    ),
    ("POST", "/jobs/{job_id}/files"): Operation(
        "upload", "Upload a file into the job",
        "The body is the file, whatever its Content-Type says; it appears under its name only once complete.",
        {200: _json(_schema("Uploaded"), "Stored."), 403: None, 409: None, 411: None},
        parameters=(
            _PARAMETERS["name"], _PARAMETERS["type"],
            _query("cache_token", "Take the file from the server's file cache instead of the body "
                                  "(this server has no file cache: 400)."),
        ),
        request_body={"required": False, "description": "The file's bytes (none: an empty file).",
                      "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        links={
            "file_path": Link("file_path", {"job_id": "$request.path.job_id", "name": "$request.query.name",
                                            "type": "$request.query.type"}),
            "download": Link("download", {"job_id": "$request.path.job_id", "name": "$request.query.name",
                                          "type": "$request.query.type"}),
            **_after("$request.path.job_id", "submit", "status"),
        },
    ),
    ("GET", "/jobs/{job_id}/files/path"): Operation(
        "file_path", "Where a file of the job lives",
        "For the output types the path is only computed; for the others, as an upload would place it "
        "(creating directories) (spec 3.4).",
        {200: _json(_schema("FilePath"), "The absolute path on the server."), 409: None},
        parameters=(_PARAMETERS["name"], _PARAMETERS["type"]),
    ),
    ("POST", "/jobs/{job_id}/submit"): Operation(
        "submit", "Submit the job",
        "Launches the job (or stages its inputs first); a repeated submit is ignored.  Problems after the "
        "request is recorded show up as status `failed` (spec 3.5).",
        {200: _OK, 403: None},
        parameters=(
            _query("command_line", "The shell command to run in the working directory.", required=True,
                   schema={"type": "string", "pattern": "\\S"}),
            _json_query("params", "Submit parameters for the back-end (e.g. `native_specification`).",
                        {"type": "object"}),
            _json_query("dependencies_description", "Tool requirements to resolve.", {"type": ["object", "null"]}),
            _json_query("setup_params", "Non-empty: the server sets the job up itself first.",
                        {"type": "object", "properties": {
                            "job_id": _STRING, "tool_id": _STRING, "tool_version": _STRING}}),
            _json_query("remote_staging", "Server-side staging: `setup` (files the server fetches before the "
                                          "launch), `action_mapper`, `client_outputs` (spec 6.7).",
                        {"type": "object", "properties": {"setup": {"type": "array", "items": _STAGE_IN_ENTRY},
                                                          "action_mapper": {"type": "object"},
                                                          "client_outputs": {"type": "object"}}}),
            _json_query("env", "Environment entries: `{name, value, raw}` (exported; double-quoted unless "
                               "`raw`), `{file, raw}` (sourced) or `{execute}` (a shell line).",
                        {"type": "array", "items": {"anyOf": [
                            {"type": "object", "required": ["name"], "properties": {
                                "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                                "value": {"type": ["string", "number", "boolean"]}, "raw": {"type": "boolean"}}},
                            {"type": "object", "required": ["file"], "properties": {"file": _STRING}},
                            {"type": "object", "required": ["execute"], "properties": {"execute": _STRING}},
                        ]}}),
            _json_query("submit_extras", "Merged over the other arguments (e.g. `touch_outputs`).",
                        {"type": "object", "properties": {"touch_outputs": _STRINGS}}),
            _json_query("dynamic_file_sources", "Files (e.g. galaxy.json) whose text the final status carries.",
                        {"type": ["array", "null"], "items": {
                            "type": "object", "required": ["path"],
                            "properties": {"path": _STRING, "type": _STRING}}}),
            _json_query("token_endpoint", "Where the job may fetch OIDC tokens.",
                        {"type": ["object", "string", "null"]}),
        ),
        links=_after("$request.path.job_id", "status", "cancel", "clean"),
    ),
    (None, "/jobs/{job_id}/status"): Operation(
        "status", "The job's status",
        "Any method.  A job the server does not know is `lost` with 200, never an error: Galaxy keeps "
        "polling through HTTP errors (spec 4.5).",
        {200: _json(_schema("StatusDocument"), "The status document.")},
        links=_after("$request.path.job_id", "download", "clean"),
    ),
    ("GET", "/jobs/{job_id}/files"): Operation(
        "download", "Download a file of the job",
        "Streams the file; one byte range is honoured, `If-Range`/`If-None-Match` compare the `ETag`, "
        "`Want-Repr-Digest: sha-256=...` asks for `Repr-Digest` (RFC 9530).  `output_workdir`, "
        "`output_metadata` and `output_jobdir` read from the working, metadata and job directory, every "
        "other type from `outputs/` (spec 3.7).",
        {
            200: _binary("The whole file."),
            206: _binary("The requested range.", content_range=True),
            304: {"description": "Unchanged (`If-None-Match` matched the `ETag`)."},
            403: None,
            416: _json(_schema("Error"), "The range lies outside the file.",
                       {"Content-Range": {"description": "`bytes */<size>`.", "schema": _STRING}}),
        },
        parameters=(
            _PARAMETERS["name"],
            _query("type", "Which directory to read from (default `output`).", schema=_PATH_TYPE),
            _header("Range", "One byte range (`bytes=<first>-<last>`); others get the whole file."),
            _header("If-Range", "Send the range only if the `ETag` still matches."),
            _header("If-None-Match", "304 if the `ETag` matches."),
            _header("Want-Repr-Digest", "`sha-256=<weight>` asks for `Repr-Digest`."),
        ),
    ),
    ("PUT", "/jobs/{job_id}/cancel"): Operation(
        "cancel", "Cancel the job",
        "Stops the job if it is still going; a no-op for unknown and finished jobs (spec 3.8).",
        {200: _OK},
        links=_after("$request.path.job_id", "status", "clean"),
    ),
    ("DELETE", "/jobs/{job_id}"): Operation(
        "clean", "Delete the job",
        "Stops the job if needed, deletes its directory and forgets it; its status is `lost` from then on "
        "(spec 3.9).",
        {200: _OK},
        links=_after("$request.path.job_id", "status"),
    ),
    ("GET", "/healthz"): Operation(
        "healthz", "Is the server up",
        "No token needed: it answers nothing but the version.",
        {200: _json(_schema("Health"), "The server's version.")},
        authenticated=False,
    ),
    ("GET", "/openapi.json"): Operation(
        "openapi", "This description",
        "No token needed: it is the same for every server of a version and holds no secret.",
        {200: _json({"type": "object"}, "The OpenAPI 3.1 description of this API.")},
        authenticated=False,
    ),
}



# -- the document --------------------------------------------------------------------------


def methods_of(method: str | None) -> tuple[str, ...]:
    """The OpenAPI methods (lower case) a route of `ROUTES` with `method` is described under."""
    return ANY_METHOD if method is None else (method.lower(),)


def document() -> Json:
    """The whole OpenAPI 3.1 description, every route bare and under `/managers/{manager_name}`."""
    paths: Json = {}
    for managed in (False, True):
        for (method, pattern), operation in OPERATIONS.items():
            item = paths.setdefault((MANAGER_PREFIX if managed else "") + pattern, {})
            for verb in methods_of(method):
                item[verb] = _operation(operation, pattern, verb, managed)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Pulsar",
            "version": __version__,
            "description": "Run Galaxy jobs on a remote machine.  Every argument travels in the query string "
                           "(form-encoded UTF-8; the last of a repeated key wins; unknown keys are ignored); "
                           "a wrong method is the same 404 as an unknown path.",
        },
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "responses": {name: _json(_schema("Error"), text) for name, text in _ERRORS.values()},
            "securitySchemes": _SECURITY_SCHEMES,
        },
        "security": _SECURITY,
    }


def _operation_id(name: str, verb: str, any_method: bool, managed: bool) -> str:
    base = f"{name}_{verb}" if any_method and verb != "get" else name
    return f"manager_{base}" if managed else base


def _operation(operation: Operation, pattern: str, verb: str, managed: bool) -> Json:
    any_method = _ROUTE_METHODS[operation.name] is None
    path_variables = [segment[1:-1] for segment in pattern.split("/") if segment.startswith("{")]
    parameters = [_PARAMETERS[name] if name in _PARAMETERS else _path_variable(name) for name in path_variables]
    if managed:
        parameters.insert(0, _PARAMETERS["manager_name"])
    codes = {*operation.responses, *_ALWAYS, *(_AUTHENTICATED if operation.authenticated else ())}
    responses: Json = {}
    for code in sorted(codes):
        given = operation.responses.get(code)
        responses[str(code)] = json.loads(json.dumps(given)) if given else _ref("responses", _ERRORS[code][0])
    if operation.links:
        responses["200"]["links"] = {name: _link(link, managed) for name, link in operation.links.items()}
    described: Json = {
        "operationId": _operation_id(operation.name, verb, any_method, managed),
        "summary": operation.summary,
        "description": operation.description,
        "parameters": [*parameters, *operation.parameters],
        "responses": responses,
    }
    if operation.request_body is not None:
        described["requestBody"] = operation.request_body
    if not operation.authenticated:
        described["security"] = []
    return described


def _path_variable(name: str) -> Json:
    return {"name": name, "in": "path", "required": True, "schema": _STRING}


def _link(link: Link, managed: bool) -> Json:
    parameters = dict(link.parameters)
    if managed:
        parameters["manager_name"] = "$request.path.manager_name"
    return {"operationId": _operation_id(link.target, "get", False, managed), "parameters": parameters}


#: name -> the method of its route (None: any), to name operations and link targets.
_ROUTE_METHODS: dict[str, str | None] = {operation.name: method for (method, _), operation in OPERATIONS.items()}


if __name__ == "__main__":
    json.dump(document(), sys.stdout, indent=2)
    sys.stdout.write("\n")
