"""What the message-queue client remembers about its jobs (no broker code here).

Galaxy 26.1 trusts every `status_update` it is handed, so this module is where our client
improves on the reference without touching the wire (spec mq-protocol B12, B19, B25, B26):

* **Status cache** (`cache`, Galaxy's `status_cache`): the last update per job, read by
  `full_status()` in Galaxy's finish step.  A job launched with `assign_ids: uuid` is cached
  under the uuid *and* the Galaxy id, because Galaxy finishes it by the Galaxy id (B12).
  Entries of terminal jobs are dropped by `clean()` or, failing that, `retention` seconds
  after the terminal update (B19: Galaxy never cleans failed or lost jobs).
* **Duplicates** (B25): after a terminal update for a job, every later update for it
  (a repeated terminal, or a regression such as a late `running`) is dropped.  Terminal
  marks are kept for `DONE_RETENTION` (7 days); launching the same id again forgets the mark.
* **Active jobs** (B26): every launched job is recorded until its terminal update was handed
  to Galaxy, so a restarted client can ask the server for the status of each.

With a `directory` the active and terminal marks are files (`active/`, `done/`, one JSON
file per job, written atomically), so they survive a restart; without one they live in
memory only.  Job ids come from the network, so file names are percent-encoded (no path
traversal) and hashed when long.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from pulsar.protocol import TERMINAL_STATUSES
from pulsar.util.fileio import atomic_write_json, read_json

log = logging.getLogger(__name__)

#: How long a terminal job's status stays cached when Galaxy never calls `clean()`.
DEFAULT_CACHE_RETENTION = 6 * 3600.0
#: How long a terminal mark suppresses duplicates (the server's stores prune at 7 days too).
DONE_RETENTION = 7 * 24 * 3600.0
#: In-memory terminal marks kept at most (oldest dropped first); bounds memory without a directory.
MAX_MEMORY_MARKS = 100_000
#: How often the `done/` directory is swept for expired marks.
PRUNE_INTERVAL = 3600.0

TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)


def job_file_name(job_id: str) -> str:
    """A safe, unique file name for a job id taken from a message."""
    encoded = quote(job_id, safe="")
    if len(encoded) > 150:
        encoded = "sha256-" + hashlib.sha256(job_id.encode("utf-8")).hexdigest()
    return encoded + ".json"


class JobTracker:
    """The per-manager memory of the MQ client; thread-safe (Galaxy's threads call `launched`,
    `forget`, `lookup`; the status consumer calls `accept` and `finished`)."""

    def __init__(self, directory: Path | None, *, retention: float = DEFAULT_CACHE_RETENTION,
                 clock: Callable[[], float] = time.monotonic):
        self.directory = directory
        self.retention = retention
        self._clock = clock
        self._lock = threading.RLock()
        #: job id -> last status document (Galaxy's `status_cache`).
        self.cache: dict[str, dict[str, Any]] = {}
        self._aliases: dict[str, str] = {}  # uuid -> Galaxy id, and Galaxy id -> uuid
        self._terminal_cached: OrderedDict[str, float] = OrderedDict()  # job id -> time cached
        self._done: OrderedDict[str, float] = OrderedDict()  # job id -> time of the terminal mark
        self._next_prune = 0.0
        if directory is not None:
            (directory / "active").mkdir(parents=True, exist_ok=True)
            (directory / "done").mkdir(parents=True, exist_ok=True)
            self._prune_done_files()

    # -- launching ------------------------------------------------------------------------

    def launched(self, job_id: str, galaxy_job_id: str | None = None) -> None:
        """Record a job about to be published (before the publish, so a crash cannot lose it).

        A previous terminal mark and cache entry for the same id are forgotten: this is a new job.
        """
        with self._lock:
            self._forget_locked(job_id)
            self._done.pop(job_id, None)
            if galaxy_job_id is not None and galaxy_job_id != job_id:
                self._aliases[job_id] = galaxy_job_id
                self._aliases[galaxy_job_id] = job_id
            if self.directory is not None:
                (self.directory / "done" / job_file_name(job_id)).unlink(missing_ok=True)
                record = {"job_id": job_id, "galaxy_job_id": galaxy_job_id, "launched_at": time.time()}
                atomic_write_json(self.directory / "active" / job_file_name(job_id), record)

    def launch_failed(self, job_id: str) -> None:
        """The setup was never confirmed by the broker: stop tracking the job."""
        with self._lock:
            self._drop_alias(job_id)
            if self.directory is not None:
                (self.directory / "active" / job_file_name(job_id)).unlink(missing_ok=True)

    def active_jobs(self) -> list[str]:
        """Ids of jobs launched but not yet seen terminal (persisted ones, oldest first)."""
        if self.directory is None:
            return []
        records: list[tuple[float, str]] = []
        for entry in os.scandir(self.directory / "active"):
            if entry.name.startswith(".") or not entry.name.endswith(".json"):
                continue  # a temp file of an interrupted write
            record = _read_record(Path(entry.path))
            if record is None:
                continue
            job_id = str(record["job_id"])
            if (self.directory / "done" / entry.name).exists():
                Path(entry.path).unlink(missing_ok=True)  # crashed between writing done/ and removing active/
                continue
            galaxy_id = record.get("galaxy_job_id")
            with self._lock:
                if isinstance(galaxy_id, str) and galaxy_id != job_id:
                    self._aliases[job_id] = galaxy_id
                    self._aliases[galaxy_id] = job_id
            launched_at = record.get("launched_at")
            records.append((launched_at if isinstance(launched_at, (int, float)) else 0.0, job_id))
        return [job_id for _, job_id in sorted(records)]

    # -- status updates -------------------------------------------------------------------

    def accept(self, job_id: str, document: dict[str, Any]) -> bool:
        """Cache an incoming update unless it follows a terminal one (then return False: drop it).

        A terminal update is marked in memory at once, so a duplicate right behind it is
        dropped even before `finished` persisted the mark.
        """
        with self._lock:
            if self._is_done(job_id):
                return False
            self.cache[job_id] = document
            alias = self._aliases.get(job_id)
            if alias is not None:
                self.cache[alias] = document
            if document.get("status") in TERMINAL:
                now = self._clock()
                self._mark_done(job_id, now)
                self._terminal_cached[job_id] = now
                self._terminal_cached.move_to_end(job_id)
            self._prune_locked()
            return True

    def finished(self, job_id: str, status: str) -> None:
        """The terminal update was handed to Galaxy: persist the mark, stop tracking the job."""
        if self.directory is None:
            return
        name = job_file_name(job_id)
        atomic_write_json(self.directory / "done" / name, {"job_id": job_id, "status": status, "at": time.time()})
        (self.directory / "active" / name).unlink(missing_ok=True)

    # -- Galaxy's reads and clean-up ------------------------------------------------------

    def lookup(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self.cache.get(job_id)

    def forget(self, job_id: str) -> None:
        """`clean()`: drop the cached status under every id of the job (and, once the job is
        terminal, the uuid/Galaxy id pairing)."""
        with self._lock:
            self._forget_locked(job_id)
            alias = self._aliases.get(job_id)
            if self._is_done(job_id) or (alias is not None and self._is_done(alias)):
                self._drop_alias(job_id)

    # -- internals ------------------------------------------------------------------------

    def _forget_locked(self, job_id: str) -> None:
        alias = self._aliases.get(job_id)
        for key in (job_id, alias):
            if key is not None:
                self.cache.pop(key, None)
                self._terminal_cached.pop(key, None)

    def _drop_alias(self, job_id: str) -> None:
        alias = self._aliases.pop(job_id, None)
        if alias is not None and self._aliases.get(alias) == job_id:
            del self._aliases[alias]

    def _is_done(self, job_id: str) -> bool:
        if job_id in self._done:
            return True
        return self.directory is not None and (self.directory / "done" / job_file_name(job_id)).exists()

    def _mark_done(self, job_id: str, now: float) -> None:
        self._done[job_id] = now
        self._done.move_to_end(job_id)
        while len(self._done) > MAX_MEMORY_MARKS:
            self._done.popitem(last=False)

    def _prune_locked(self) -> None:
        now = self._clock()
        while self._terminal_cached:
            job_id, cached_at = next(iter(self._terminal_cached.items()))
            if now - cached_at < self.retention:
                break
            del self._terminal_cached[job_id]
            log.debug("dropping cached terminal status of job %s after %.0f s", job_id, now - cached_at)
            alias = self._aliases.get(job_id)
            self.cache.pop(job_id, None)
            if alias is not None:
                self.cache.pop(alias, None)
            self._drop_alias(job_id)
        while self._done:
            job_id, marked_at = next(iter(self._done.items()))
            if now - marked_at < DONE_RETENTION:
                break
            del self._done[job_id]
        if self.directory is not None and now >= self._next_prune:
            self._prune_done_files()

    def _prune_done_files(self) -> None:
        """Remove persisted terminal marks older than `DONE_RETENTION`."""
        assert self.directory is not None
        self._next_prune = self._clock() + PRUNE_INTERVAL
        horizon = time.time() - DONE_RETENTION
        for entry in os.scandir(self.directory / "done"):
            try:
                if entry.stat().st_mtime < horizon:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable job record %s: %s", path, exc)
        return None
    if not isinstance(record, dict) or not isinstance(record.get("job_id"), str):
        log.warning("ignoring job record %s without a job_id", path)
        return None
    return record
