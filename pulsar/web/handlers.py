"""One function per route.  Each parses its own arguments and calls one service method.

Handlers raise `pulsar.errors.PulsarError` subclasses for client mistakes; `pulsar.web.app`
turns those into JSON error responses.
"""

from __future__ import annotations

import os
import stat
import time

from webob import Response

from pulsar.errors import InvalidArgument, NotFound
from pulsar.jobs.file_cache import CacheDisabled, FileCache, alias_key, check_token
from pulsar.telemetry import CONTENT_TYPE as METRICS_TYPE
from pulsar.web import openapi
from pulsar.web.digest_headers import repr_digest, wants_sha256
from pulsar.web.ranges import RangeNotSatisfiable, entity_tag, settle_range
from pulsar.web.request import Request
from pulsar.web.responses import error_response, file_response, json_response, metrics_response, ok_response


def setup(request: Request) -> Response:
    """`POST /jobs`.  `preserve_galaxy_python_environment` is ignored over HTTP, as in the reference."""
    service = request.service()
    args = request.args
    document = service.setup(
        args.required("job_id"),
        tool_id=args.optional("tool_id"),
        tool_version=args.optional("tool_version"),
    )
    return json_response(document)


def upload(request: Request) -> Response:
    """`POST /jobs/{job_id}/files`: the body is the file, whatever its Content-Type says.

    `type` is required like `name`: without it the server would have to guess which
    directory the client meant (every client of the protocol sends it)."""
    service = request.service()
    args = request.args
    name = args.required("name")
    path_type = _required_type(request)
    token = args.optional("cache_token")
    if token:  # the body is ignored (the reference client sends none): the file comes from the cache
        path, result = service.place_cached(args.required("job_id"), path_type, name, _file_cache(request),
                                            check_token(token))
        return json_response({"path": str(path), "size": result.size, "sha256": result.sha256})
    length = request.body_length()
    started = time.monotonic()
    path, result = service.upload(args.required("job_id"), path_type, name, request.body, length)
    request.app.metrics.transferred(service.name, "in", "http", result.size, time.monotonic() - started)
    return json_response({"path": str(path), "size": result.size, "sha256": result.sha256})


def file_path(request: Request) -> Response:
    """`GET /jobs/{job_id}/files/path`; `type` is required as for an upload."""
    service = request.service()
    args = request.args
    path = service.file_path(args.required("job_id"), _required_type(request), args.required("name"))
    return json_response({"path": str(path)})


def _required_type(request: Request) -> str:
    """The `type` of an upload or a path question (spec 3: required): missing or blank is a
    400, never a guess at `input`."""
    path_type = request.args.required("type")
    if not path_type:
        raise InvalidArgument("argument 'type' must not be empty")
    return path_type


def submit(request: Request) -> Response:
    """`POST /jobs/{job_id}/submit`: the raw arguments go to the service, which decodes the
    JSON ones -- after the nesting check, so a 100,000-deep array is a 400, not a
    RecursionError in the decoder."""
    service = request.service()
    args = request.args
    args.required("command_line")
    args.check_nesting()
    service.submit(args.required("job_id"), args)
    return ok_response()


def status(request: Request) -> Response:
    """`/jobs/{job_id}/status`, any method; unknown jobs are `lost` with 200 (spec 4.5)."""
    service = request.service()
    return json_response(service.status(request.args.required("job_id")))


def cancel(request: Request) -> Response:
    service = request.service()
    service.cancel(request.args.required("job_id"))
    return ok_response()


def clean(request: Request) -> Response:
    service = request.service()
    service.clean(request.args.required("job_id"))
    return ok_response()


def download(request: Request) -> Response:
    """`GET /jobs/{job_id}/files`: stream one file, honouring a single byte range (WebOb's
    conditional response serves it, `pulsar.web.ranges` decides which one it may see).

    Every answer carries a strong `ETag` naming the file version, so a client resuming a
    broken download sends `If-Range` and gets the rest only if the file is unchanged (the
    whole file otherwise).  A client that asks with `Want-Repr-Digest: sha-256=...`
    (RFC 9530) gets `Repr-Digest`, the sha256 of the whole file, computed once per file
    version and remembered.

    The service hands over the file already open (opened component by component without
    following a symlink, regular files only: `pulsar.jobs.jobfs`), and every byte sent comes
    from that fd, so a job swapping the name for a symlink mid-download cannot redirect it.
    A symlink, FIFO or device under the name is 400 `not_a_regular_file`, a missing file 404.
    """
    service = request.service()
    args = request.args
    handle = service.output_file(args.required("job_id"), args.optional("type"), args.required("name"))
    try:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):  # output_file guarantees it; a cheap second look
            raise NotFound(f"{args['name']!r} is not a regular file")
        response = file_response(handle, info.st_size, entity_tag(info))
        try:
            settle_range(request.http, response)
        except RangeNotSatisfiable as exc:
            handle.close()
            return error_response(416, "range_not_satisfiable", str(exc),
                                  [("Content-Range", f"bytes */{exc.size}"), ("Accept-Ranges", "bytes"),
                                   ("ETag", response.headers["ETag"])])
        sha256: str | None
        if wants_sha256(request.http.headers.get("Want-Repr-Digest")):
            sha256 = service.digests.digest(handle, info)
        else:
            sha256 = service.digests.lookup(info)
        if sha256 is not None:
            response.headers["Repr-Digest"] = repr_digest(sha256)
    except BaseException:
        handle.close()
        raise
    return response


def _file_cache(request: Request) -> FileCache:
    """The app's file cache; 501 `cache_disabled` without `file_cache_dir`.  The manager in
    the URL is checked first (an unknown one is 404, as on every route)."""
    request.service()
    cache = request.app.file_cache
    if cache is None:
        raise CacheDisabled("this server has no input file cache (file_cache_dir is not set)")
    return cache


def _cache_alias(request: Request) -> str:
    """The alias of the client's file: its socket address (not X-Forwarded-For), `path`, and
    the `size`/`mtime` our client adds so a changed file is uploaded again."""
    args = request.args
    return alias_key(str(request.http.remote_addr or ""), args.required("path"), args.optional("size"),
                     args.optional("mtime"))


def cache_status(request: Request) -> Response:
    """`GET /cache/status?path=`: `{"token": ..., "ready": bool}` (spec 3.10)."""
    cache = _file_cache(request)
    return json_response(cache.status(_cache_alias(request)))


def cache_claim(request: Request) -> Response:
    """`PUT /cache?path=`: `true` if the caller should insert the file, else `false`."""
    cache = _file_cache(request)
    return json_response(cache.claim(_cache_alias(request)))


def cache_insert(request: Request) -> Response:
    """`POST /cache?path=` with the file as body: `null`, as the reference answers.  Our
    client may add `sha256`, checked against what arrived."""
    cache = _file_cache(request)
    alias = _cache_alias(request)
    cache.insert(alias, request.body, request.body_length(), expected_sha256=request.args.optional("sha256"),
                 fsync=request.service().settings.fsync_uploads)
    return json_response(None)


def healthz(request: Request) -> Response:
    """`GET /healthz`: no token, no manager lookup, nothing but the version."""
    return json_response({"version": request.app.version})


def metrics(request: Request) -> Response:
    """`GET /metrics`: the whole server's Prometheus metrics (under `/managers/{name}/` the
    same, like `/healthz`; the manager is a label inside)."""
    return metrics_response(request.app.metrics.exposition(), METRICS_TYPE)


def openapi_description(request: Request) -> Response:
    """`GET /openapi.json`: the OpenAPI description of this API (`pulsar.web.openapi`).  No
    token, no manager lookup, like `/healthz`: it is the same for every server of a version
    (anyone can build it from the source), names no secret, and tools fetch it before they
    hold a token."""
    return json_response(openapi.document())
