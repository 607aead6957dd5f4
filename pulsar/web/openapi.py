"""The OpenAPI 3.1 description of the HTTP API (spec 2-4), built from one table.

`OPERATIONS` describes each route of `pulsar.web.routes.ROUTES`, keyed the same way,
`(method, pattern)`; `document()` turns it into the description `GET /openapi.json` serves.
Every route is written out twice, bare and under `/managers/{manager_name}`, and a route
that takes any method (`method` None) under every OpenAPI method, so the table holds each
route once.  test/web/test_openapi.py keeps the table and `ROUTES` in step, and schemathesis
(test/web/test_schemathesis.py) holds a live server to it.  Adding a route: one `ROUTES`
entry and one `OPERATIONS` entry.

The bodies' JSON schemas, error responses and shared parameters are in
`pulsar.web.openapi_parts`.  Neither module imports the route table or the handlers, so the
route table may import the handler that serves the description.  `python -m
pulsar.web.openapi` prints it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Mapping

from pulsar import __version__
from pulsar.web import openapi_parts as parts
from pulsar.web.openapi_parts import Json

MANAGER_PREFIX = "/managers/{manager_name}"
#: What a route declared without a method (status) is described under: every method OpenAPI knows.
ANY_METHOD = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

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
    `responses` are the route's own, the errors of `parts.ALWAYS` (and `parts.AUTHENTICATED` for an
    authenticated route) are added; an int maps to the error body of `parts.ERRORS`."""

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


#: The client's file, as the cache routes name it.
_CACHE_FILE = (
    parts.query("path", "The file's path on the client.", required=True, schema=parts.TEXT),
    parts.query("size", "Its size (our client), part of the alias so a changed file is uploaded again."),
    parts.query("mtime", "Its modification time (our client), likewise."),
)

_JOB_FOLLOW_UPS = ("upload", "file_path", "submit", "status", "download", "cancel", "clean")

OPERATIONS: dict[tuple[str | None, str], Operation] = {
    ("POST", "/jobs"): Operation(
        "setup", "Set up a job",
        "Creates the job's directory (idempotent) and answers with its layout (spec 3.2).",
        {200: parts.json_content(parts.schema_ref("SetupDocument"), "The setup document."), 403: None},
        parameters=(
            parts.query("job_id", "The client's id for the job.", required=True, schema=parts.PARAMETERS["job_id"]["schema"]),
            parts.query("tool_id", "The tool the job runs (checked against the tool allow-list, if any)."),
            parts.query("tool_version", "The tool's version."),
            parts.query("use_metadata", "Sent by the reference client; ignored."),
            parts.query("preserve_galaxy_python_environment", "Sent by the reference client; ignored over HTTP."),
        ),
        links=_after("$response.body#/job_id", *_JOB_FOLLOW_UPS),
    ),
    ("POST", "/jobs/{job_id}/files"): Operation(
        "upload", "Upload a file into the job",
        "The body is the file, whatever its Content-Type says; it appears under its name only once complete.",
        {200: parts.json_content(parts.schema_ref("Uploaded"), "Stored."), 403: None, 409: None, 411: None,
         501: None},
        parameters=(
            parts.PARAMETERS["name"], parts.PARAMETERS["type"],
            parts.query("cache_token", "Take the file from the server's file cache (the `token` of a ready "
                                       "`cache/status`) instead of the body: 64 hex digits; 501 without a cache.",
                        schema={"type": "string", "pattern": "^[0-9a-f]{64}$"}),
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
        {200: parts.json_content(parts.schema_ref("FilePath"), "The absolute path on the server."), 409: None},
        parameters=(parts.PARAMETERS["name"], parts.PARAMETERS["type"]),
    ),
    ("POST", "/jobs/{job_id}/submit"): Operation(
        "submit", "Submit the job",
        "Launches the job (or stages its inputs first); a repeated submit is ignored.  Problems after the "
        "request is recorded show up as status `failed` (spec 3.5).",
        {200: parts.OK, 403: None},
        parameters=(
            parts.query("command_line", "The shell command to run in the working directory.", required=True,
                   schema={"type": "string", "pattern": "\\S"}),
            parts.json_query("params", "Submit parameters for the back-end (e.g. `native_specification`).",
                        {"type": "object"}),
            parts.json_query("dependencies_description", "Tool requirements to resolve.", {"type": ["object", "null"]}),
            parts.json_query("setup_params", "Non-empty: the server sets the job up itself first.",
                        {"type": "object", "properties": {
                            "job_id": parts.STRING, "tool_id": parts.STRING, "tool_version": parts.STRING}}),
            parts.json_query("remote_staging", "Server-side staging: `setup` (files the server fetches before the "
                                          "launch), `action_mapper`, `client_outputs` (spec 6.7).",
                        {"type": "object", "properties": {"setup": {"type": "array", "items": parts.STAGE_IN_ENTRY},
                                                          "action_mapper": {"type": "object"},
                                                          "client_outputs": {"type": "object"}}}),
            parts.json_query("env", "Environment entries: `{name, value, raw}` (exported; double-quoted unless "
                               "`raw`), `{file, raw}` (sourced) or `{execute}` (a shell line).",
                        {"type": "array", "items": {"anyOf": [
                            {"type": "object", "required": ["name"], "properties": {
                                "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                                "value": {"type": ["string", "number", "boolean"]}, "raw": {"type": "boolean"}}},
                            {"type": "object", "required": ["file"], "properties": {"file": parts.STRING}},
                            {"type": "object", "required": ["execute"], "properties": {"execute": parts.STRING}},
                        ]}}),
            parts.json_query("submit_extras", "Merged over the other arguments (e.g. `touch_outputs`).",
                        {"type": "object", "properties": {"touch_outputs": parts.STRINGS}}),
            parts.json_query("dynamic_file_sources", "Files (e.g. galaxy.json) whose text the final status carries.",
                        {"type": ["array", "null"], "items": {
                            "type": "object", "required": ["path"],
                            "properties": {"path": parts.STRING, "type": parts.STRING}}}),
            parts.json_query("token_endpoint", "Where the job may fetch OIDC tokens.",
                        {"type": ["object", "string", "null"]}),
        ),
        links=_after("$request.path.job_id", "status", "cancel", "clean"),
    ),
    (None, "/jobs/{job_id}/status"): Operation(
        "status", "The job's status",
        "Any method.  A job the server does not know is `lost` with 200, never an error: Galaxy keeps "
        "polling through HTTP errors (spec 4.5).",
        {200: parts.json_content(parts.schema_ref("StatusDocument"), "The status document.")},
        links=_after("$request.path.job_id", "download", "clean"),
    ),
    ("GET", "/jobs/{job_id}/files"): Operation(
        "download", "Download a file of the job",
        "Streams the file; one byte range is honoured, `If-Range`/`If-None-Match` compare the `ETag`, "
        "`Want-Repr-Digest: sha-256=...` asks for `Repr-Digest` (RFC 9530).  `output_workdir`, "
        "`output_metadata` and `output_jobdir` read from the working, metadata and job directory, every "
        "other type from `outputs/` (spec 3.7).",
        {
            200: parts.binary("The whole file."),
            206: parts.binary("The requested range.", content_range=True),
            304: {"description": "Unchanged (`If-None-Match` matched the `ETag`)."},
            403: None,
            416: parts.json_content(parts.schema_ref("Error"), "The range lies outside the file.",
                       {"Content-Range": {"description": "`bytes */<size>`.", "schema": parts.STRING}}),
        },
        parameters=(
            parts.PARAMETERS["name"],
            parts.query("type", "Which directory to read from (default `output`).", schema=parts.PATH_TYPE),
            parts.header("Range", "One byte range (`bytes=<first>-<last>`); others get the whole file."),
            parts.header("If-Range", "Send the range only if the `ETag` still matches."),
            parts.header("If-None-Match", "304 if the `ETag` matches."),
            parts.header("Want-Repr-Digest", "`sha-256=<weight>` asks for `Repr-Digest`."),
        ),
    ),
    ("PUT", "/jobs/{job_id}/cancel"): Operation(
        "cancel", "Cancel the job",
        "Stops the job if it is still going; a no-op for unknown and finished jobs (spec 3.8).",
        {200: parts.OK},
        links=_after("$request.path.job_id", "status", "clean"),
    ),
    ("DELETE", "/jobs/{job_id}"): Operation(
        "clean", "Delete the job",
        "Stops the job if needed, deletes its directory and forgets it; its status is `lost` from then on "
        "(spec 3.9).",
        {200: parts.OK},
        links=_after("$request.path.job_id", "status"),
    ),
    ("GET", "/cache/status"): Operation(
        "cache_status", "Is a file in the input cache",
        "Looks the client's file up by its alias (the client's address, `path`, and `size`/`mtime` when "
        "given); 501 without `file_cache_dir` (spec 3.10).",
        {200: parts.json_content(parts.schema_ref("CacheStatus"), "Whether the file is ready."), 501: None},
        parameters=_CACHE_FILE,
    ),
    ("PUT", "/cache"): Operation(
        "cache_claim", "Claim the insertion of a file into the input cache",
        "`true`: the caller should insert the file; `false`: it is cached or someone else is inserting it.",
        {200: parts.json_content({"type": "boolean"}, "Whether to insert."), 501: None, 507: None},
        parameters=_CACHE_FILE,
    ),
    ("POST", "/cache"): Operation(
        "cache_insert", "Insert a file into the input cache",
        "The body is the file; the entry is named by the sha256 of what arrived and appears only when "
        "complete.  `sha256`, when given, must match.",
        {200: parts.json_content({"type": "null"}, "Stored."), 411: None, 501: None, 507: None},
        parameters=(*_CACHE_FILE, parts.query("sha256", "The file's sha256 (hex), checked on arrival.")),
        request_body={"required": False, "description": "The file's bytes.",
                      "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    ),
    ("GET", "/metrics"): Operation(
        "metrics", "Prometheus metrics",
        "The whole server's metrics in the Prometheus text format (the manager is a label).  Needs the "
        "token unless `metrics_public` lets loopback clients in.",
        {200: {"description": "The Prometheus text exposition.",
               "content": {"text/plain": {"schema": {"type": "string"}}}},
         501: None},
    ),
    ("GET", "/healthz"): Operation(
        "healthz", "Is the server up",
        "No token needed: it answers nothing but the version.",
        {200: parts.json_content(parts.schema_ref("Health"), "The server's version.")},
        authenticated=False,
    ),
    ("GET", "/openapi.json"): Operation(
        "openapi", "This description",
        "No token needed: it is the same for every server of a version and holds no secret.",
        {200: parts.json_content({"type": "object"}, "The OpenAPI 3.1 description of this API.")},
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
            "schemas": parts.SCHEMAS,
            "responses": {name: parts.json_content(parts.schema_ref("Error"), text) for name, text in parts.ERRORS.values()},
            "securitySchemes": parts.SECURITY_SCHEMES,
        },
        "security": parts.SECURITY,
    }


def _operation_id(name: str, verb: str, any_method: bool, managed: bool) -> str:
    base = f"{name}_{verb}" if any_method and verb != "get" else name
    return f"manager_{base}" if managed else base


def _operation(operation: Operation, pattern: str, verb: str, managed: bool) -> Json:
    any_method = _ROUTE_METHODS[operation.name] is None
    path_variables = [segment[1:-1] for segment in pattern.split("/") if segment.startswith("{")]
    parameters = [parts.PARAMETERS[name] if name in parts.PARAMETERS else _path_variable(name) for name in path_variables]
    if managed:
        parameters.insert(0, parts.PARAMETERS["manager_name"])
    codes = {*operation.responses, *parts.ALWAYS, *(parts.AUTHENTICATED if operation.authenticated else ())}
    responses: Json = {}
    for code in sorted(codes):
        given = operation.responses.get(code)
        responses[str(code)] = json.loads(json.dumps(given)) if given else parts.ref("responses", parts.ERRORS[code][0])
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
    return {"name": name, "in": "path", "required": True, "schema": parts.STRING}


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
