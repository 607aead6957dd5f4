"""The documents that describe a job to a client: the setup document (spec 3.2) and the
status document (spec 4.5) that `GET /jobs/{id}/status` and `status_update` messages carry."""

from __future__ import annotations

import collections
import logging
import os
import threading
from typing import Any, Mapping, Sequence

from pulsar import __version__, protocol
from pulsar.errors import InvalidArgument
from pulsar.jobs.directory import JobDirectory, relative_parts
from pulsar.jobs.state import JobRecord
from pulsar.jobs.submit import load_launch_config
from pulsar.protocol import Status
from pulsar.util.logsafe import printable

log = logging.getLogger(__name__)

#: galaxy.json and friends are metadata, not data; refuse to inline anything larger.
MAX_DYNAMIC_SOURCE_BYTES = 64 * 1024 * 1024


def setup_document(
    directory: JobDirectory, system_properties: Mapping[str, Any], tool_id: str | None, tool_version: str | None
) -> dict[str, Any]:
    """What setup answers: the directory layout and what the server tells the client about itself."""
    document: dict[str, Any] = dict(directory.layout())
    document.update(
        {
            "path_separator": os.sep,
            "job_id": directory.job_id,
            "system_properties": dict(system_properties),
            "pulsar_version": __version__,
            "preserve_galaxy_python_environment": None,
        }
    )
    if tool_id:
        document["tool_id"] = tool_id
    if tool_version:
        document["tool_version"] = tool_version
    return document


def head_and_tail(text: str, cap: int, marker: str = "\n..\n") -> str:
    """`text` if it has at most `cap` characters, else its head and tail joined by `marker`,
    `cap` characters in all (the message-queue cap of the tool streams, mq-protocol 3.5)."""
    if len(text) <= cap:
        return text
    keep = cap - len(marker)
    return text[: keep - keep // 2] + marker + text[len(text) - keep // 2 :]


def pending_document(job_id: str, status: Status) -> dict[str, Any]:
    return {"complete": "false", "status": status.value, "job_id": job_id}


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def read_return_code(job_directory: JobDirectory) -> int | None:
    raw = job_directory.read_capped([protocol.RETURN_CODE_FILE], 64).strip()
    try:
        return int(raw)
    except ValueError:
        return None


def _tool_stream(job_directory: JobDirectory, name: str, limit: int) -> str:
    """The tool's stream `name`: metadata/ first, then the job directory (the first that is a
    regular file wins, even empty).  Read through `pulsar.jobs.jobfs`, so a symlink or FIFO
    planted under the name reads as absent; never more than `limit` bytes (or
    `MAX_DYNAMIC_SOURCE_BYTES` when the configured limit is 0, "no limit")."""
    cap = limit if limit > 0 else MAX_DYNAMIC_SOURCE_BYTES
    for parts in ([protocol.METADATA_DIR, name], [name]):
        data = job_directory.read_capped(parts, cap, missing=None)
        if data is not None:
            return _decode(data)
    return ""


def _capped(job_directory: JobDirectory, parts: list[str], limit: int) -> str:
    return _decode(job_directory.read_capped(parts, limit if limit > 0 else MAX_DYNAMIC_SOURCE_BYTES))


def realized_dynamic_file_sources(
    job_directory: JobDirectory, sources: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Each declared source that is a regular file in the working directory, with its text as
    `contents`; one larger than `MAX_DYNAMIC_SOURCE_BYTES` is left out (metadata, not data)."""
    realized = []
    for source in sources:
        rel = source.get("path")
        if not isinstance(rel, str) or not rel:
            continue
        try:
            parts = [protocol.WORKING_DIR, *relative_parts(rel, nested=True)]
        except InvalidArgument:
            continue
        data = job_directory.read_whole(parts, MAX_DYNAMIC_SOURCE_BYTES)
        if data is None:
            if job_directory.read_capped(parts, 1):
                log.warning("dynamic file source %s of job %s is too large to inline", printable(rel), job_directory.job_id)
            continue
        entry = dict(source)
        entry["contents"] = _decode(data)
        realized.append(entry)
    return realized


def terminal_document(
    job_directory: JobDirectory,
    status: Status,
    *,
    maximum_stream_size: int,
    system_properties: Mapping[str, Any],
    dynamic_file_sources: Sequence[Mapping[str, Any]] = (),
    reason: str | None = None,
) -> dict[str, Any]:
    """The full document of a job in a terminal state; works for a missing directory too."""
    separator = str(system_properties.get("separator", os.sep))
    exists = job_directory.exists()
    limit = maximum_stream_size
    stderr = _tool_stream(job_directory, protocol.TOOL_STDERR, limit) if exists else ""
    if reason:
        stderr = (stderr + ("\n" if stderr and not stderr.endswith("\n") else "") + reason) if stderr else reason
    return {
        "job_id": job_directory.job_id,
        "complete": "true",
        "status": status.value,
        "returncode": read_return_code(job_directory) if exists else None,
        "stdout": _tool_stream(job_directory, protocol.TOOL_STDOUT, limit) if exists else "",
        "stderr": stderr,
        "job_stdout": _capped(job_directory, [protocol.METADATA_DIR, protocol.JOB_STDOUT], limit) if exists else "",
        "job_stderr": _capped(job_directory, [protocol.METADATA_DIR, protocol.JOB_STDERR], limit) if exists else "",
        "working_directory": str(job_directory.working),
        "metadata_directory": str(job_directory.metadata),
        "job_directory": str(job_directory.path),
        "working_directory_contents": job_directory.list_files(protocol.WORKING_DIR, separator) if exists else [],
        "metadata_directory_contents": job_directory.list_files(protocol.METADATA_DIR, separator) if exists else [],
        "outputs_directory_contents": job_directory.list_files(protocol.OUTPUTS_DIR, separator) if exists else [],
        "job_directory_contents": job_directory.list_top(),
        "system_properties": dict(system_properties),
        "pulsar_version": __version__,
        "realized_dynamic_file_sources": realized_dynamic_file_sources(job_directory, dynamic_file_sources)
        if exists
        else [],
    }


def job_terminal_document(
    job_directory: JobDirectory,
    status: Status,
    *,
    maximum_stream_size: int,
    system_properties: Mapping[str, Any],
    reason: str | None = None,
) -> dict[str, Any]:
    """`terminal_document` with the dynamic file sources the job was submitted with."""
    try:
        sources = load_launch_config(job_directory).dynamic_file_sources
    except (OSError, ValueError):
        sources = []
    return terminal_document(
        job_directory,
        status,
        maximum_stream_size=maximum_stream_size,
        system_properties=system_properties,
        dynamic_file_sources=sources,
        reason=reason,
    )


class DocumentCache:
    """Recent terminal status documents: they never change until setup, upload or clean,
    which call `forget`."""

    def __init__(self, size: int = 1024):
        self._size = size
        self._documents: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            document = self._documents.get(job_id)
            if document is not None:
                self._documents.move_to_end(job_id)
            return document

    def put(self, job_id: str, document: dict[str, Any]) -> None:
        with self._lock:
            self._documents[job_id] = document
            if len(self._documents) > self._size:
                self._documents.popitem(last=False)

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._documents.pop(job_id, None)


class StatusDocuments:
    """The status documents of one manager's jobs (spec 4.5), from the job directory and its
    record; the terminal ones remembered (a `DocumentCache`) until setup, upload or clean
    call `forget`.  Why a class: the job service only says which job and when."""

    def __init__(self, maximum_stream_size: int, system_properties: Mapping[str, Any]):
        self._maximum_stream_size = maximum_stream_size
        self._system_properties = system_properties
        self._cache = DocumentCache()

    def terminal(self, directory: JobDirectory, status: Status, reason: str | None = None) -> dict[str, Any]:
        """A fresh terminal document (what a status listener is told)."""
        return job_terminal_document(directory, status, maximum_stream_size=self._maximum_stream_size,
                                     system_properties=self._system_properties, reason=reason)

    def of(self, directory: JobDirectory, record: JobRecord | None) -> dict[str, Any]:
        """The document a status request gets; a job without a record is being set up (its
        directory exists) or `lost` (unknown or cleaned), never an error."""
        job_id = directory.job_id
        if record is None:
            if directory.exists():
                return pending_document(job_id, Status.PREPROCESSING)
            return self.terminal(directory, Status.LOST)
        if not record.state.terminal:
            return pending_document(job_id, record.state.status)
        document = self._cache.get(job_id)
        if document is None:
            document = self.terminal(directory, record.state.status, record.reason)
            self._cache.put(job_id, document)
        return document

    def forget(self, job_id: str) -> None:
        self._cache.forget(job_id)
