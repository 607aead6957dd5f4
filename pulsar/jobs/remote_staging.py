"""Server side of remote staging (spec 6.7, 6.8): the server moves files itself.

`stage_in` runs `remote_staging.setup` before launch: each entry names a target (type,
name) in the job directory and an action saying where the bytes come from (Galaxy's
job-files endpoint, a path on a shared mount, the client's host over ssh, or literal
contents).  `stage_out` runs the client's own output-collection plan against this job
directory and sends back every file whose action is remote.  HTTP goes through `requests`,
streaming in large blocks; scp and rsync through `pulsar.jobs.ssh_transfer`.  Only transient
failures are retried.  This module imports `pulsar.shared`, never `pulsar.client`.
"""

from __future__ import annotations

import dataclasses
import functools
import http.client
import logging
import os
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import requests

from pulsar import protocol
from pulsar.errors import NotFound
from pulsar.jobs import jobfs, ssh_transfer
from pulsar.jobs.directory import JobDirectory
from pulsar.jobs.ssh_transfer import SshSettings, SshTransferError
from pulsar.protocol import PathType
from pulsar.shared import actions
from pulsar.shared.action_mapper import FileActionMapper
from pulsar.shared.actions import ActionError, FileAction
from pulsar.shared.collection import RemoteListing, plan_output_collection
from pulsar.shared.multipart import MultipartFileBody
from pulsar.util.fileio import BLOCK_SIZE, atomic_write_bytes, copy_file, stream_to_file
from pulsar.util.logsafe import printable
from pulsar.util.progress import DEFAULT_PROGRESS, ProgressPolicy, TransferProgress
from pulsar.util.retry import RetryActionExecutor

log = logging.getLogger(__name__)

#: (bytes, seconds) of one file staged (`pulsar.telemetry.TransferObserver`).
Transferred = Callable[[int, float], None]

TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Connect and read timeouts for transfers (seconds).
TIMEOUT = (30.0, 300.0)
#: Which transfers log progress lines, how often (tests shorten the interval).
PROGRESS: ProgressPolicy = DEFAULT_PROGRESS
#: How much of a dynamic file source (galaxy.json) is read to find referenced outputs.
DYNAMIC_SOURCE_LIMIT = 16 * 1024 * 1024


class TransferError(Exception):
    """A transfer failed; `http_status` is set when the other side answered."""

    def __init__(self, message: str, http_status: int | None = None):
        super().__init__(message)
        self.http_status = http_status

    @property
    def transient(self) -> bool:
        return self.http_status is None or self.http_status in TRANSIENT_HTTP_STATUSES


class UnsupportedAction(Exception):
    """This server cannot perform the action (e.g. object store)."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (UnsupportedAction, ActionError, NotFound)):
        return False
    if isinstance(exc, (TransferError, SshTransferError)):
        return exc.transient
    return True  # connection errors, timeouts, I/O hiccups


def retry_executor(options: Mapping[str, Any] | None = None, prefix: str = "preprocess_action_") -> RetryActionExecutor:
    """Build the executor from manager options (`<prefix>max_retries` etc., spec 7.3).

    Manager semantics: `max_retries` -1 (default) never retries, 0 retries forever.
    """
    options = options or {}
    max_retries = int(options.get(prefix + "max_retries", -1))
    return RetryActionExecutor(
        max_retries=max_retries,
        interval_start=float(options.get(prefix + "interval_start", 2)),
        interval_step=float(options.get(prefix + "interval_step", 2)),
        interval_max=float(options.get(prefix + "interval_max", 30)),
        catch=_retryable,
    )


def _check(response: requests.Response, what: str) -> None:
    if response.status_code >= 400:
        try:
            detail = response.raw.read(500, decode_content=True).decode("utf-8", "replace")
        except Exception:
            detail = ""
        response.close()
        raise TransferError(f"{what}: HTTP {response.status_code} {detail}".strip(), response.status_code)


# -- stage in -----------------------------------------------------------------------------


class _Decoded:
    """The response body with any Content-Encoding undone (should Galaxy compress anyway)."""

    def __init__(self, raw: Any):
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size, decode_content=True) or b""


def _fetch_url(url: str, target: Path, dir_fd: int | None = None) -> None:
    try:
        response = requests.get(url, stream=True, timeout=TIMEOUT, headers={"Accept-Encoding": "identity"})
    except requests.RequestException as exc:
        raise TransferError(f"GET {_redact(url)} failed: {exc}") from exc
    with response:
        _check(response, f"GET {_redact(url)}")
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and not response.headers.get("Content-Encoding") else None
        progress = PROGRESS.start(log, f"fetch {printable(target.name)} from {_redact(url)}", length)
        try:
            result = stream_to_file(_Decoded(response.raw), target, length=length, dir_fd=dir_fd, on_progress=progress)
        except (OSError, requests.RequestException) as exc:
            raise TransferError(f"GET {_redact(url)} interrupted: {exc}") from exc
        progress.finish(result.size)


def write_to_path(action: FileAction, job_directory: JobDirectory, path_type: PathType, name: str,
                  ssh: SshSettings | None = None) -> int:
    """Materialise one setup entry at (type, name) inside the job directory, written through
    the parent's directory fd (`JobDirectory.writable`), so a symlink the job planted on the
    way is refused and one under the name itself is replaced, never written through.  `ssh`:
    the host-key policy for scp/rsync actions (default: trust on first use, ssh's own file).
    Returns the size of the file written."""
    kind = action.action_type
    if kind in actions.SSH_ACTIONS:
        with job_directory.writable(path_type, name) as (dir_fd, leaf, _):
            ssh_transfer.fetch(action, ssh or SshSettings(), dir_fd, leaf)
            return jobfs.size_of(dir_fd, leaf)
    if kind not in (actions.MESSAGE, actions.REMOTE_COPY, *actions.URL_ACTIONS):
        raise UnsupportedAction(f"this server cannot perform {kind!r} actions")
    if kind in actions.URL_ACTIONS and not action.url:
        raise ActionError(f"{kind} action for {action.path} has no url")
    with job_directory.writable(path_type, name) as (dir_fd, leaf, _):
        if kind == actions.MESSAGE:
            atomic_write_bytes(leaf, (action.contents or "").encode("utf-8"), dir_fd=dir_fd)
        elif kind == actions.REMOTE_COPY:
            copy_file(str(action.path), Path(leaf), dir_fd=dir_fd)
        else:
            assert action.url is not None
            _fetch_url(action.url, Path(leaf), dir_fd)
        return jobfs.size_of(dir_fd, leaf)


def with_ssh_key(action: FileAction, path_type: str, remote_staging: Mapping[str, Any]) -> FileAction:
    """An scp/rsync action with its key, which never travels inside the action (spec 6.5):
    the key of the file-action rule matching the path, else the mapper's (the destination's
    `ssh_key`), else `remote_staging.ssh_key` (message queue)."""
    if action.action_type not in actions.SSH_ACTIONS or action.ssh_key:
        return action
    key = None
    mapper_dict = remote_staging.get("action_mapper")
    if mapper_dict:
        mapper = FileActionMapper.from_dict(mapper_dict)
        rule = mapper.rule_for(action.path, path_type) if action.path else None
        key = (rule.ssh_key if rule is not None else None) or mapper.ssh_key
    return dataclasses.replace(action, ssh_key=key or remote_staging.get("ssh_key"))


def stage_in(job_directory: JobDirectory, remote_staging: Mapping[str, Any], is_cancelled: Callable[[], bool],
             *, retry: RetryActionExecutor | None = None, ssh: SshSettings | None = None,
             transferred: Transferred | None = None) -> None:
    """Run `remote_staging.setup` in order; raise on the first failure.  Returns early,
    without error, once `is_cancelled()` is true.  `ssh`: host-key policy of scp/rsync.
    `transferred(size, seconds)` hears of each file staged (retries included in the time)."""
    executor = retry or retry_executor()
    for entry in remote_staging.get("setup") or []:
        if is_cancelled():
            log.info("job %s cancelled; input staging stopped", job_directory.job_id)
            return
        action = with_ssh_key(FileAction.from_dict(entry["action"]), str(entry["type"]), remote_staging)
        if action.action_type not in actions.SERVER_SETUP_ACTIONS:
            raise ActionError(f"action {action.action_type!r} cannot be staged by the server")
        path_type, name = PathType(entry["type"]), str(entry["name"])
        job_directory.upload_target(path_type, name)  # a bad name fails here, before any transfer
        log.debug("job %s: staging %s %s via %s", job_directory.job_id, printable(entry["type"]), printable(entry["name"]),
                  printable(action.action_type))
        started = time.monotonic()
        size = executor.execute(functools.partial(write_to_path, action, job_directory, path_type, name, ssh))
        if transferred is not None:
            transferred(size, time.monotonic() - started)


# -- stage out ----------------------------------------------------------------------------


def _post_file(url: str, source: Path, filename: str | None = None) -> None:
    if _post_plain(url, source, filename):
        return
    body = _multipart_body(url, source, filename)
    try:
        response = requests.post(url, data=body, headers={"Content-Type": body.content_type}, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise TransferError(f"POST {_redact(url)} failed: {exc}") from exc
    finally:
        body.close()
    with response:
        _check(response, f"POST {_redact(url)}")
    _finished(body)


def _multipart_body(url: str, source: Path, filename: str | None) -> MultipartFileBody:
    """The POST body of one output, reporting progress when it is big."""
    body = MultipartFileBody(str(source), field_name="file", filename=filename, block_size=BLOCK_SIZE)
    name = printable(filename or source.name)
    body.on_progress = PROGRESS.start(log, f"send {name} to {_redact(url)}", body.file_size)
    return body


def _finished(body: MultipartFileBody) -> None:
    if isinstance(body.on_progress, TransferProgress):
        body.on_progress.finish(body.file_sent)


def _post_plain(url: str, source: Path, filename: str | None = None) -> bool:
    """POST over a new `http.client` connection when `url` is plain http and no proxy is
    configured; False (nothing sent) otherwise, and for a redirect, which `requests` then
    follows.  Why: `requests.post` costs ~1.1 ms of CPU per small file against ~0.3 ms here
    (its session, adapters and environment merging are built for each call), and Galaxy
    gets a few files back per job.  Like `requests`, the body goes in our large blocks with a
    Content-Length; unlike it, `~/.netrc` is not consulted."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if parts.scheme != "http" or not parts.hostname or "@" in parts.netloc or "http" in proxies or "all" in proxies:
        return False
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body = _multipart_body(url, source, filename)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT[0])
    try:
        with body:
            connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(TIMEOUT[1])
            headers = {"Content-Type": body.content_type, "Content-Length": str(len(body)), "Connection": "close"}
            connection.request("POST", path, body=iter(body), headers=headers)
            response = connection.getresponse()
            detail = response.read(500)
        if 300 <= response.status < 400:
            return False
        if response.status >= 400:
            text = detail.decode("utf-8", "replace")
            raise TransferError(f"POST {_redact(url)}: HTTP {response.status} {text}".strip(), response.status)
        _finished(body)
        return True
    except (OSError, http.client.HTTPException) as exc:
        raise TransferError(f"POST {_redact(url)} failed: {exc}") from exc
    finally:
        connection.close()


def write_from_path(action: FileAction, source: Path, filename: str | None = None,
                    ssh: SshSettings | None = None) -> None:
    """Send one output file (`source`) where the client wants it.  For a job's output,
    `source` is `/proc/self/fd/N` of the file `JobDirectory.open_output` opened: reopening
    it gives that same file (not whatever the name points at by then), from its start, on
    every retry; `filename` is the name the multipart body reports.  `ssh`: host-key policy
    of scp/rsync (default: trust on first use, ssh's own file)."""
    kind = action.action_type
    if kind in actions.SSH_ACTIONS:
        ssh_transfer.send(action, ssh or SshSettings(), source)
    elif kind == actions.REMOTE_COPY:
        copy_file(source, str(action.path), make_parents=True)
    elif kind in actions.URL_ACTIONS:
        if not action.url:
            raise ActionError(f"{kind} action for {action.path} has no url")
        _post_file(action.url, source, filename)
    else:
        raise UnsupportedAction(f"this server cannot send outputs back with {kind!r}")


def _has_remote_actions(mapper: FileActionMapper) -> bool:
    remote = {a for a, s in actions.STAGING_OF_ACTION.items() if s == actions.STAGING_REMOTE}
    return mapper.default_action in remote or any(rule.action in remote for rule in mapper.rules)


def _listing(job_directory: JobDirectory, client_outputs: Mapping[str, Any]) -> RemoteListing:
    realized = []
    for source in client_outputs.get("dynamic_file_sources") or []:
        path = source.get("path")
        if not path:
            continue
        try:
            file_path = job_directory.lookup_path(PathType.OUTPUT_WORKDIR, str(path))
        except Exception:
            continue
        data = job_directory.read_capped(file_path.relative_to(job_directory.path).parts, DYNAMIC_SOURCE_LIMIT,
                                         missing=None)
        if data is not None:
            realized.append({**source, "contents": data.decode("utf-8", "replace")})
    return RemoteListing(
        working_directory_contents=job_directory.list_files(protocol.WORKING_DIR, "/"),
        output_directory_contents=job_directory.list_files(protocol.OUTPUTS_DIR, "/"),
        metadata_directory_contents=job_directory.list_files(protocol.METADATA_DIR, "/"),
        job_directory_contents=job_directory.list_top(),
        separator="/",
        realized_dynamic_file_sources=realized,
        working_directory=str(job_directory.working),
    )


def stage_out(job_directory: JobDirectory, remote_staging: Mapping[str, Any], is_cancelled: Callable[[], bool],
              *, retry: RetryActionExecutor | None = None, ssh: SshSettings | None = None,
              transferred: Transferred | None = None) -> list[str]:
    """Send back every collected output whose action is remote; return failure messages.
    `transferred(size, seconds)` hears of each file sent (retries included in the time).

    HTTP 403 from Galaxy (a purged dataset) is not a failure; neither is a missing file the
    plan marks as optional.  `ssh`: host-key policy of scp/rsync.  An scp/rsync action
    without a key of its own uses `remote_staging.ssh_key` (message queue).
    """
    mapper_dict = remote_staging.get("action_mapper")
    if not mapper_dict:
        return []
    mapper = FileActionMapper.from_dict(mapper_dict)
    if not _has_remote_actions(mapper):
        return []
    mapper.ssh_key = mapper.ssh_key or remote_staging.get("ssh_key")
    executor = retry or retry_executor(prefix="postprocess_action_")
    client_outputs = remote_staging.get("client_outputs") or {}
    plan = plan_output_collection(client_outputs, _listing(job_directory, client_outputs))
    failures: list[str] = []
    for fetch in plan:
        if is_cancelled():
            log.info("job %s cancelled; output staging stopped", job_directory.job_id)
            break
        try:
            action = mapper.action(fetch.local_path, fetch.output_type)
            if not action.is_remote:
                continue
            try:
                handle = job_directory.open_output(PathType(fetch.output_type), fetch.name)
            except NotFound:
                if fetch.tolerate_missing:
                    continue
                raise
            with handle:
                source = Path(f"/proc/self/fd/{handle.fileno()}")
                started = time.monotonic()
                executor.execute(functools.partial(write_from_path, action, source, Path(fetch.name).name, ssh))
                if transferred is not None:
                    transferred(os.fstat(handle.fileno()).st_size, time.monotonic() - started)
        except TransferError as exc:
            if exc.http_status == 403:
                log.info("job %s: %s refused with 403 (dataset deleted?); skipped", job_directory.job_id, printable(fetch.name))
                continue
            failures.append(f"{fetch.name}: {exc}")
        except Exception as exc:
            failures.append(f"{fetch.name}: {exc}")
    for failure in failures:
        log.warning("job %s: output staging failed: %s", job_directory.job_id, printable(failure))
    return failures


def _redact(url: str) -> str:
    """URLs carry Galaxy job keys; keep them out of logs and messages."""
    return url.split("?", 1)[0]
