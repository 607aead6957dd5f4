"""What the server remembers about each job that arrived over the message queue.

One small JSON file per job, `<persistence>/<manager>-mq-jobs/<job_id>.json`, written
atomically (temp file, fsync, rename) before anything acts on it:

* `digest`: sha256 of the setup message (ack keys left out), so a redelivered or
  republished setup is recognised as the same request, while a *new* request that reuses a
  job id (a fresh Galaxy database) is not;
* `received`: when the setup was accepted;
* `cancelled`: when the job was cancelled (nothing is published for that, mq-protocol B6);
* `settled`: when the client needed nothing more: its terminal status was confirmed by the
  broker, or a cancelled job's grace period ended.  Settled entries are the duplicate guard
  after the job directory is gone, and are pruned after `RETENTION`.

Jobs submitted over HTTP (mixed mode) have no entry: their directories belong to their
HTTP client, which cleans them itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from pulsar.util.fileio import atomic_write_json, read_json

log = logging.getLogger(__name__)

#: Keys the ack extension adds to a message (mq-protocol 3.6); not part of the request.
ACK_KEYS = frozenset({"acknowledge_uuid", "acknowledge_queue", "acknowledge_submit_queue", "force_noack"})
#: How long settled entries (and orphans) are kept: a redelivery later than this is not expected.
RETENTION = 7 * 24 * 3600.0


def setup_digest(body: Mapping[str, Any]) -> str:
    """A stable fingerprint of a setup message: the same for a broker redelivery and for an
    ack republish (which adds `force_noack`), different for any other change."""
    request = {key: value for key, value in body.items() if key not in ACK_KEYS}
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode("utf-8")).hexdigest()


@dataclasses.dataclass
class LedgerEntry:
    job_id: str
    digest: str | None
    received: float
    cancelled: float | None = None
    settled: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LedgerEntry":
        return cls(
            job_id=str(data["job_id"]),
            digest=data.get("digest"),
            received=float(data.get("received") or 0.0),
            cancelled=data.get("cancelled"),
            settled=data.get("settled"),
        )


class JobLedger:
    """The entries of one manager's message-queue jobs.  Thread-safe: each change is one
    read-modify-write under a lock, ending in one atomic file replace."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    def _file(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.json"

    def get(self, job_id: str) -> LedgerEntry | None:
        try:
            return LedgerEntry.from_json(read_json(self._file(job_id)))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("unreadable message-queue job entry %s: %s", self._file(job_id), exc)
            return None

    def _write(self, entry: LedgerEntry) -> None:
        atomic_write_json(self._file(entry.job_id), entry.to_json())

    def received(self, job_id: str, digest: str) -> None:
        """Record an accepted setup (a fresh entry: any earlier one for this id is replaced)."""
        with self._lock:
            self._write(LedgerEntry(job_id, digest, time.time()))

    def cancelled(self, job_id: str) -> bool:
        """Note that the job was cancelled; False when it is not a message-queue job."""
        with self._lock:
            entry = self.get(job_id)
            if entry is None:
                return False
            if entry.cancelled is None:
                entry.cancelled = time.time()
                self._write(entry)
            return True

    def settle(self, job_id: str) -> LedgerEntry | None:
        """Mark the job settled (see the module docstring); returns the entry as it was
        before, or None when the job has no entry (nothing to do for it)."""
        with self._lock:
            entry = self.get(job_id)
            if entry is None or entry.settled is not None:
                return entry
            before = dataclasses.replace(entry)
            entry.settled = time.time()
            self._write(entry)
            return before

    def forget(self, job_id: str) -> None:
        with self._lock:
            try:
                self._file(job_id).unlink()
            except FileNotFoundError:
                pass

    def entries(self) -> Iterator[LedgerEntry]:
        """Every entry, read one file at a time (memory stays flat however many there are)."""
        with os.scandir(self.directory) as names:
            for item in names:
                if item.name.endswith(".json") and not item.name.startswith("."):
                    entry = self.get(item.name[: -len(".json")])
                    if entry is not None:
                        yield entry
