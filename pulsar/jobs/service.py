"""The job service: what the HTTP routes of one manager do, and the job state machine.

One `JobService` per configured manager.  It owns the job directories under its staging
root, the persisted job records, and the hand-off to its back-end (`pulsar.managers`).
Every state transition is written to the job store before it is acted on, so a restart
finds each job where it was and `recover()` carries it on.  Back-ends report through the
`ManagerEvents` methods below, from their own threads.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from pulsar import protocol
from pulsar.errors import InvalidArgument, NotFound, Refused
from pulsar.jobs import status as status_doc
from pulsar.jobs.directory import JobDirectory, parse_path_type, remove_stale_temp_files
from pulsar.jobs.events import Announcer, Listener
from pulsar.jobs.file_cache import FileCache
from pulsar.jobs.ids import assign_job_id, validate_job_id
from pulsar.jobs.script import launch_spec, prepare_run_directories, write_job_script
from pulsar.jobs.settings import ServiceSettings
from pulsar.jobs.state import JobRecord, JobState
from pulsar.jobs.store import JobStore
from pulsar.jobs.submit import SubmitRequest, load_launch_config, parse_submit_args, save_launch_config
from pulsar.jobs.table import JobTable
from pulsar.jobs.trash import Trash
from pulsar.managers.base import LaunchError, LaunchSpec, Manager
from pulsar.protocol import PathType, Status
from pulsar.util.digests import DigestCache
from pulsar.util.fileio import Readable, StreamResult

log = logging.getLogger(__name__)

#: remote staging hooks: (job directory, remote_staging, is_cancelled) -> ...
StageIn = Callable[[JobDirectory, dict[str, Any], Callable[[], bool]], None]
StageOut = Callable[[JobDirectory, dict[str, Any], Callable[[], bool]], list[str]]


class JobService:
    """All job operations of one named manager.

    Methods raise `pulsar.errors.InvalidArgument` (400), `NotFound` (404) for client
    mistakes; anything else is a server fault.
    """

    def __init__(
        self,
        name: str,
        manager: Manager,
        store: JobStore,
        settings: ServiceSettings,
        *,
        stage_in: StageIn | None = None,
        stage_out: StageOut | None = None,
    ):
        self.name = name
        self.manager = manager
        self.store = store
        self.settings = settings
        self._stage_in = stage_in
        self._stage_out = stage_out
        self.table = JobTable(store)
        self._staging_pool = ThreadPoolExecutor(settings.staging_threads, thread_name_prefix=f"staging-{name}")
        self._documents = status_doc.StatusDocuments(settings.maximum_stream_size, self.system_properties)
        #: sha256 of downloaded files by identity, for `Repr-Digest` (see pulsar.util.digests).
        self.digests = DigestCache()
        self._trash = Trash(settings.staging_root, name)
        self._listeners = Announcer()
        settings.staging_root.mkdir(parents=True, exist_ok=True)
        manager.bind(self)

    # -- plumbing ----------------------------------------------------------------------

    def _directory(self, job_id: str) -> JobDirectory:
        return JobDirectory(self.settings.staging_root, validate_job_id(job_id))

    @property
    def system_properties(self) -> dict[str, Any]:
        return {"separator": os.sep, **self.settings.system_properties}

    # -- setup and files ---------------------------------------------------------------

    def setup(
        self,
        job_id: str,
        tool_id: str | None = None,
        tool_version: str | None = None,
        preserve_galaxy_python_environment: str | None = None,
    ) -> dict[str, Any]:
        """Create the job directory; return the setup document (spec 3.2).  Idempotent.
        Raises `Refused` (403), creating nothing, for a tool the allow-list does not list."""
        server_id = assign_job_id(validate_job_id(job_id), self.settings.assign_ids)
        if self.settings.tool_policy is not None:
            self.settings.tool_policy.check_tool(tool_id, tool_version)
        directory = self._create_directory(server_id, tool_id, tool_version)
        return status_doc.setup_document(directory, self.system_properties, tool_id, tool_version)

    def _create_directory(self, job_id: str, tool_id: str | None, tool_version: str | None) -> JobDirectory:
        directory = self._directory(job_id)
        with self.table.lock(job_id):
            record = self.table.get(job_id)
            if record is not None and record.state.terminal:
                log.info("job %s set up again after it ended; starting afresh", job_id)
                self.table.forget(job_id)
                directory.remove_private()
            directory.create(self.settings.job_directory_mode)
            self._documents.forget(job_id)
            # informational only (nothing reads them back), so not fsynced
            directory.write_atomic(["tool_id"], json.dumps(tool_id or "").encode(), fsync=False)
            directory.write_atomic(["tool_version"], json.dumps(tool_version or "").encode(), fsync=False)
        return directory

    def upload(
        self, job_id: str, path_type: str | None, name: str | None, body: Readable, content_length: int | None
    ) -> tuple[Path, StreamResult]:
        """Stream `body` into the file named by (type, name); the file appears only when complete.

        A job the client set up itself (`jobs_directory`: it computed the layout) gets its
        directory here, at its first file; the submit that follows carries the setup."""
        directory = self._set_up_directory(job_id)
        kind = parse_path_type(path_type, PathType.INPUT)
        target, result = directory.receive(kind, name or "", body, content_length, fsync=self.settings.fsync_uploads)
        self._documents.forget(job_id)
        return target, result

    def place_cached(self, job_id: str, path_type: str | None, name: str | None, cache: FileCache,
                     token: str) -> tuple[Path, StreamResult]:
        """An upload whose content comes from the file cache (`cache_token`): the job gets its
        own copy of the entry (see `pulsar.jobs.file_cache`), and holds the entry while active."""
        directory = self._set_up_directory(job_id)
        kind = parse_path_type(path_type, PathType.INPUT)
        with directory.writable(kind, name or "") as (fd, leaf, path):
            result = cache.place(token, fd, leaf, (self.name, job_id))
        self._documents.forget(job_id)
        return path, result

    def holds_inputs(self, job_id: str) -> bool:
        """True while the job may still read its inputs: set up and not yet submitted, or
        queued, running, staging.  False once it ended or was cleaned."""
        record = self.table.get(job_id)
        if record is None:
            return self._directory(job_id).exists()
        return not record.state.terminal

    def file_path(self, job_id: str, path_type: str | None, name: str | None) -> Path:
        kind = parse_path_type(path_type, PathType.INPUT)
        if kind in protocol.OUTPUT_PATH_TYPES:
            return self._directory(job_id).lookup_path(kind, name or "")
        return self._set_up_directory(job_id).lookup_path(kind, name or "")

    def _set_up_directory(self, job_id: str) -> JobDirectory:
        """The job's directory, created if the client computed the layout itself (see upload)."""
        directory = self._directory(job_id)
        if not directory.exists():
            with self.table.lock(job_id):
                directory.create(self.settings.job_directory_mode)
        return directory

    def output_file(self, job_id: str, path_type: str | None, name: str | None) -> io.BufferedReader:
        """The file to download, already open (see `JobDirectory.open_output`): the caller
        reads from it, never from the name, which the job may point elsewhere meanwhile."""
        return self._directory(job_id).open_output(parse_path_type(path_type, PathType.OUTPUT), name or "")

    # -- submit ------------------------------------------------------------------------

    def submit(self, job_id: str, args: Mapping[str, str]) -> None:
        """Submit with the raw query arguments.  Launch problems surface later as `failed`."""
        self.submit_request(job_id, parse_submit_args(args))

    def submit_request(self, job_id: str, request: SubmitRequest) -> None:
        """Submit a decoded request (HTTP or message queue), setting the job up first when
        it carries `setup_params` (or `setup`); the client's id is used as is.

        On return the request is durably recorded (`launch_config` and the job record), so
        the job runs or ends `failed` even across a crash.  A job that already has a record
        is left alone (a repeated submit).  Raises `InvalidArgument` for a bad id or
        request, `NotFound` when the job was never set up, and `Refused` (403) when the tool
        allow-list or `user_auth` refuses the job: then it is already recorded `failed` with
        the reason (and announced once), and nothing of it has run."""
        validate_job_id(job_id)
        directory = self._directory(job_id)
        if request.setup_params or request.force_setup:
            setup_id = str(request.setup_params.get("job_id") or job_id)
            if setup_id != job_id:
                raise InvalidArgument("setup_params.job_id does not match the job id of the request")
            tool = request.setup_params
            if self.settings.tool_policy is not None:
                with self._refusals_recorded(job_id):
                    self.settings.tool_policy.check_tool(tool.get("tool_id"), tool.get("tool_version"))
            self._create_directory(job_id, tool.get("tool_id"), tool.get("tool_version"))
        request.substitute_directories(directory.path, self.settings.staging_root)
        with self.table.lock(job_id):
            if not directory.exists():
                raise NotFound(f"job {job_id!r} has not been set up")
            record = self.table.get(job_id)
            if record is not None:
                log.warning("job %s submitted again while %s; ignoring the second submit", job_id, record.state.name)
                return
            with self._refusals_recorded(job_id):
                self._authorize(directory, request)
            for name in request.touch_outputs:
                directory.touch(PathType.OUTPUT, name)
            save_launch_config(directory, request)
            if request.remote_staging.get("setup") and self._stage_in is not None:
                record = JobRecord(job_id, JobState.STAGING_IN)
                self.table.save(record)
                self._staging_pool.submit(self._run_stage_in, job_id)
                return
            record = JobRecord(job_id, JobState.SETUP)
            self._launch(directory, record, request)

    def _authorize(self, directory: JobDirectory, request: SubmitRequest) -> None:
        """`user_auth`, then the tool allow-list's checks of the tool files and command line
        (`pulsar.jobs.toolbox.ToolPolicy.check_job`); `Refused` if either says no."""
        if self.settings.user_auth is not None:
            self.settings.user_auth.authorize(request)
        if self.settings.tool_policy is not None:
            self.settings.tool_policy.check_job(directory, request.command_line)

    @contextlib.contextmanager
    def _refusals_recorded(self, job_id: str) -> Iterator[None]:
        """A `Refused` raised inside ends the job `failed` with the reason (one announcement,
        no log line: the caller logs the refusal it passes on) before it propagates."""
        try:
            yield
        except Refused as exc:
            with self.table.lock(job_id):
                self._fail(JobRecord(job_id, JobState.SETUP), exc.detail, quiet=True)
            raise

    def _launch_spec(self, directory: JobDirectory, request: SubmitRequest, attempt: int) -> LaunchSpec:
        spec = launch_spec(directory, request, attempt, self.settings.job_name_template)
        write_job_script(directory, request, spec, self.settings.script, self.manager.script_headers(spec))
        return spec

    def _launch(self, directory: JobDirectory, record: JobRecord, request: SubmitRequest) -> None:
        """Hand the job to the back-end (caller holds the job lock)."""
        record.attempts += 1
        try:
            spec = self._launch_spec(directory, request, record.attempts)
            prepare_run_directories(directory, self.settings.script, first_attempt=record.attempts == 1)
        except OSError as exc:
            self._fail(record, f"could not write the job script: {exc}")
            return
        record.state = JobState.QUEUED
        self.table.save(record)
        try:
            self.manager.submit(spec)
        except LaunchError as exc:
            self._fail(record, f"the {self.manager.type_name} manager could not launch the job: {exc}")
        except Exception as exc:  # a back-end bug must still leave one terminal status
            log.exception("launching job %s failed", record.job_id)
            self._fail(record, f"launching the job failed: {exc}")

    def _is_cancelled(self, job_id: str) -> Callable[[], bool]:
        def cancelled() -> bool:
            record = self.table.get(job_id)
            return record is None or record.state in (JobState.CANCELLED, JobState.FAILED, JobState.LOST)

        return cancelled

    def _run_stage_in(self, job_id: str) -> None:
        directory = self._directory(job_id)
        try:
            request = load_launch_config(directory)
            assert self._stage_in is not None
            self._stage_in(directory, request.remote_staging, self._is_cancelled(job_id))
        except Exception as exc:
            log.debug("staging inputs of job %s failed", job_id, exc_info=True)  # _fail logs the reason
            with self.table.lock(job_id):
                record = self.table.get(job_id)
                if record is not None and record.state is JobState.STAGING_IN:
                    self._fail(record, f"staging inputs failed: {exc}")
            return
        with self.table.lock(job_id):
            record = self.table.get(job_id)
            if record is None or record.state is not JobState.STAGING_IN:
                return  # cancelled or cleaned meanwhile
            if self.settings.tool_policy is not None:
                try:  # the tool files staged in are checked before anything runs
                    self.settings.tool_policy.check_job(directory, request.command_line)
                except Refused as exc:
                    self._fail(record, f"refused: {exc.detail}")
                    return
            self._launch(directory, record, request)

    # -- back-end events (ManagerEvents) -----------------------------------------------

    def submitted(self, job_id: str, backend: dict[str, Any]) -> None:
        with self.table.lock(job_id):
            record = self.table.get(job_id)
            if record is None or record.state.terminal:
                return
            record.backend.update(backend)
            self.table.save(record)

    def started(self, job_id: str, backend: dict[str, Any]) -> None:
        with self.table.lock(job_id):
            record = self.table.get(job_id)
            if record is None or record.state is not JobState.QUEUED and record.state is not JobState.RUNNING:
                return
            record.backend.update(backend)
            if record.state is JobState.QUEUED:
                self._announce(job_id, status_doc.pending_document(job_id, Status.RUNNING))
            record.state = JobState.RUNNING
            # Not fsynced: after a power loss the job's processes are gone anyway, and a
            # record still saying QUEUED is run again, which is what that case needs.
            self.table.save(record, durable=False)

    def finished(self, job_id: str, *, exit_code: int | None = None, failure: str | None = None) -> None:
        with self.table.lock(job_id):
            record = self.table.get(job_id)
            if record is None or record.state not in (JobState.QUEUED, JobState.RUNNING):
                return
            directory = self._directory(job_id)
            return_code = status_doc.read_return_code(directory)
            if return_code is None and failure is None and exit_code is not None and directory.exists():
                directory.write_atomic([protocol.RETURN_CODE_FILE], f"{exit_code}\n".encode())
                return_code = exit_code
            if return_code is None:
                self._fail(record, failure or "the job ended without recording an exit code")
                return
            if failure:
                log.warning("job %s: %s (exit code %s)", job_id, failure, return_code)
            self._after_run(directory, record)

    def vanished(self, job_id: str) -> None:
        with self.table.lock(job_id):
            record = self.table.get(job_id)
            if record is None or record.state not in (JobState.QUEUED, JobState.RUNNING):
                return
            directory = self._directory(job_id)
            if status_doc.read_return_code(directory) is not None:
                self._after_run(directory, record)
                return
            if not directory.exists():
                self._finish(record, JobState.LOST, "the job directory disappeared")
                return
            if record.attempts >= self.settings.max_job_attempts:
                self._fail(
                    record,
                    f"the job was killed without recording an exit code {record.attempts} times "
                    f"(together with the server); giving up",
                )
                return
            log.warning("job %s died with the server (attempt %d); running it again", job_id, record.attempts)
            record.backend = {}
            self._launch(directory, record, load_launch_config(directory))

    def _after_run(self, directory: JobDirectory, record: JobRecord) -> None:
        try:
            request = load_launch_config(directory)
        except (OSError, ValueError):
            request = None
        if request is not None and self._stage_out is not None and request.remote_staging.get("action_mapper"):
            record.state = JobState.STAGING_OUT
            self.table.save(record)
            self._staging_pool.submit(self._run_stage_out, record.job_id)
        else:
            self._finish(record, JobState.COMPLETE)

    def _run_stage_out(self, job_id: str) -> None:
        directory = self._directory(job_id)
        try:
            request = load_launch_config(directory)
            assert self._stage_out is not None
            failures = self._stage_out(directory, request.remote_staging, self._is_cancelled(job_id))
        except Exception as exc:
            log.exception("staging outputs of job %s failed", job_id)
            failures = [str(exc)]
        with self.table.lock(job_id):
            record = self.table.get(job_id)
            if record is None or record.state is not JobState.STAGING_OUT:
                return
            if failures:
                self._fail(record, "staging outputs failed: " + "; ".join(str(f) for f in failures))
            else:
                self._finish(record, JobState.COMPLETE)

    def _fail(self, record: JobRecord, reason: str, *, quiet: bool = False) -> None:
        """End the job `failed`; one that never recorded an exit code (a launch or staging
        failure) gets return code 1, as the reference reports it.  `quiet`: the caller logs."""
        if not quiet:
            log.error("job %s failed: %s", record.job_id, reason)
        directory = self._directory(record.job_id)
        if directory.exists() and status_doc.read_return_code(directory) is None:
            directory.write_atomic([protocol.RETURN_CODE_FILE], b"1\n")
        self._finish(record, JobState.FAILED, reason)

    def record_failure(self, job_id: str, reason: str) -> None:
        """A submission of `job_id` was refused (`reason`) where no reply can say so (the
        message queue): record the job as `failed` with `reason` in its stderr, announced
        like any failure.  A job in progress is left alone."""
        with self.table.lock(validate_job_id(job_id)):
            record = self.table.get(job_id)
            if record is None or record.state.terminal:
                self._fail(JobRecord(job_id, JobState.SETUP), reason)

    def job_state(self, job_id: str) -> JobState | None:
        """The recorded state of the job; None when there is none (never submitted, or cleaned)."""
        record = self.table.get(validate_job_id(job_id))
        return None if record is None else record.state

    def _finish(self, record: JobRecord, state: JobState, reason: str | None = None) -> None:
        if self._listeners and not self.table.closed:
            self._announce(record.job_id, self._documents.terminal(self._directory(record.job_id), state.status, reason))
        record.state = state
        record.reason = reason
        self.table.save(record)
        log.info("job %s is %s", record.job_id, state.status.value)

    def add_listener(self, listener: Listener) -> None:
        """Hear of every job entering `running` or a terminal state (contract:
        `pulsar.jobs.events.Announcer`).  Nothing is announced after `shutdown`.  Register
        before `start`, so recovery's transitions are heard too."""
        self._listeners.add(listener)

    def _announce(self, job_id: str, document: dict[str, Any]) -> None:
        if not self.table.closed:  # after shutdown nothing is recorded either (see _save)
            self._listeners.announce(job_id, document)

    # -- status, cancel, clean ---------------------------------------------------------

    def status(self, job_id: str) -> dict[str, Any]:
        """The status document; unknown or cleaned jobs are `lost`, never an error."""
        return self._documents.of(self._directory(job_id), self.table.get(job_id))

    def cancel(self, job_id: str) -> None:
        """Stop the job if it is still going; a no-op for unknown and finished jobs."""
        directory = self._directory(job_id)
        with self.table.lock(job_id):
            record = self.table.get(job_id)
            if record is None:
                if directory.exists():  # set up, never submitted: a later submit is ignored
                    self._finish(JobRecord(job_id, JobState.CANCELLED), JobState.CANCELLED)
                return
            if record.state.terminal:
                return
            was = record.state
            self._finish(record, JobState.CANCELLED)
        if was in (JobState.QUEUED, JobState.RUNNING):
            self.manager.cancel(job_id, record.backend)

    def clean(self, job_id: str) -> None:
        """Stop the job if needed, delete its directory and forget it."""
        directory = self._directory(job_id)
        if self.settings.debug:
            log.info("debug is set: keeping the directory of job %s", job_id)
            return
        self.cancel(job_id)
        with self.table.lock(job_id):
            self._trash.discard(directory)
            self.table.forget(job_id)
            self._documents.forget(job_id)

    # -- life cycle --------------------------------------------------------------------

    def recover(self) -> int:
        """Carry on with every job the store says was not finished.  Returns how many."""
        records = self.table.load_active()
        for record in records:
            try:
                self._recover_one(record)
            except Exception as exc:
                log.exception("could not recover job %s", record.job_id)
                with self.table.lock(record.job_id):
                    self._finish(record, JobState.LOST, f"could not recover the job after a restart: {exc}")
        return len(records)

    def _recover_one(self, record: JobRecord) -> None:
        directory = self._directory(record.job_id)
        with self.table.lock(record.job_id):
            if not directory.exists():
                self._finish(record, JobState.LOST, "the job directory disappeared while the server was down")
                return
            if record.state is JobState.SETUP:
                self.table.forget(record.job_id)
            elif record.state is JobState.STAGING_IN:
                self._staging_pool.submit(self._run_stage_in, record.job_id)
            elif record.state is JobState.STAGING_OUT:
                self._staging_pool.submit(self._run_stage_out, record.job_id)
            else:
                request = load_launch_config(directory)
                spec = self._launch_spec(directory, request, max(record.attempts, 1))  # script rewritten
                self.manager.recover(spec, record.backend, running=record.state is JobState.RUNNING)

    def remove_stale_temp_files(self) -> int:
        """Delete what uploads cut short by a crash (or `kill -9`) left in the job directories
        (`pulsar.jobs.directory.remove_stale_temp_files`).  Called at start, before anything
        is received, so no temp file in use can be taken."""
        removed = remove_stale_temp_files(self.settings.staging_root)
        if removed:
            log.info("manager %s: removed %d temp file(s) left by interrupted uploads", self.name, removed)
        return removed

    def start(self) -> int:
        """Start the back-end and carry on the unfinished jobs; returns how many there were."""
        self.remove_stale_temp_files()
        self._trash.start()
        self.manager.start()
        count = self.recover()
        if count:
            log.info("manager %s: recovered %d unfinished job(s)", self.name, count)
        return count

    def shutdown(self) -> None:
        if self.table.closed:
            return
        self.table.closed = True
        self._trash.stop()
        self.manager.shutdown()
        self._staging_pool.shutdown(wait=False, cancel_futures=True)
