"""On-disk uuid stores of the acknowledgement extension (spec §3.6).

* The **publish store** keeps every message this side sent with an ack request until the
  peer's `{"acknowledge_uuid_response": uuid}` arrives; the republisher resends what stays
  unanswered.  A file's mtime is the time it was last sent; its JSON holds the first send
  time (`created`) and the body as sent.
* The **consume store** remembers the uuids this side has processed, so a republished
  duplicate is acknowledged and skipped.

One file per uuid, written atomically (temp file, fsync, rename), so a crash leaves either no
entry or a complete one.  Both stores are pruned after `PRUNE_AGE` (B5: the reference never
forgets).  Uuids are validated before they become file names: a message cannot make us
touch a path outside the store.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid as uuid_module
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pulsar.util.fileio import atomic_write_json, atomic_write_text, read_json

from .naming import DEFAULT_MANAGER

log = logging.getLogger(__name__)

#: Entries older than this (seconds) are forgotten: an ack that never came, a uuid seen long ago.
PRUNE_AGE = 7 * 24 * 3600.0
#: At most one prune pass per this many seconds per `AckStores`.
PRUNE_INTERVAL = 3600.0


def is_valid_uuid(value: object) -> bool:
    """True for a canonical uuid string (what `acknowledge_uuid` must be to name a file)."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid_module.UUID(value)) == value.lower()
    except ValueError:
        return False


def store_directory(persistence_directory: Path, manager_name: str | None, role: str) -> Path:
    """Where a manager's stores live: `amqp_ack-<manager>` for the server (the reference's
    layout), `mq-client-<manager>/ack` for the client, so both can share one directory."""
    manager = quote(manager_name or DEFAULT_MANAGER, safe="")  # one path segment whatever the name
    if role == "client":
        return persistence_directory / f"mq-client-{manager}" / "ack"
    return persistence_directory / f"amqp_ack-{manager}"


class _UuidDirectory:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, uuid: str) -> Path:
        if not is_valid_uuid(uuid):
            raise ValueError(f"not a uuid: {uuid!r}")
        return self.directory / uuid.lower()

    def _entries(self) -> Iterator[tuple[str, float]]:
        """(uuid, mtime) of every entry, read lazily; entries that vanish meanwhile are skipped."""
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not is_valid_uuid(entry.name):
                    continue  # temp files of a write in progress
                try:
                    yield entry.name, entry.stat().st_mtime
                except FileNotFoundError:
                    continue

    def __contains__(self, uuid: object) -> bool:
        return isinstance(uuid, str) and is_valid_uuid(uuid) and self._path(uuid).exists()

    def remove(self, uuid: str) -> bool:
        """Forget `uuid`; False if it was not there."""
        try:
            self._path(uuid).unlink()
            return True
        except FileNotFoundError:
            return False

    def __len__(self) -> int:
        return sum(1 for _ in self._entries())


class PublishStore(_UuidDirectory):
    """Messages sent with an ack request and not yet acknowledged."""

    def put(self, uuid: str, body: dict[str, Any]) -> None:
        """Record `body` (as sent, ack keys included) durably, before it is published."""
        atomic_write_json(self._path(uuid), {"created": time.time(), "body": body})

    def load(self, uuid: str) -> tuple[float, dict[str, Any]] | None:
        """(first send time, body), or None if the entry is gone or unreadable (then it is removed)."""
        try:
            entry = read_json(self._path(uuid))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("Dropping unreadable ack publish-store entry %s: %s", uuid, exc)
            self.remove(uuid)
            return None
        if not (isinstance(entry, dict) and isinstance(entry.get("body"), dict)
                and isinstance(entry.get("created"), (int, float))):
            log.warning("Dropping malformed ack publish-store entry %s", uuid)
            self.remove(uuid)
            return None
        return float(entry["created"]), entry["body"]

    def due(self, older_than: float, now: float | None = None) -> list[str]:
        """Uuids last sent at least `older_than` seconds ago, oldest first."""
        cutoff = (time.time() if now is None else now) - older_than
        return [uuid for uuid, mtime in sorted(self._entries(), key=lambda item: item[1]) if mtime <= cutoff]

    def touch(self, uuid: str) -> None:
        """Mark `uuid` as sent just now (after a republish)."""
        try:
            os.utime(self._path(uuid))
        except FileNotFoundError:
            pass  # acknowledged while we were republishing

    def prune(self, max_age: float, now: float | None = None) -> int:
        """Drop entries first sent more than `max_age` seconds ago; returns how many."""
        cutoff = (time.time() if now is None else now) - max_age
        dropped = 0
        for uuid, mtime in list(self._entries()):
            if mtime > cutoff:
                continue  # sent (or re-sent) recently, so it cannot be older than max_age
            loaded = self.load(uuid)
            if loaded is not None and loaded[0] <= cutoff and self.remove(uuid):
                dropped += 1
        return dropped


class ConsumeStore(_UuidDirectory):
    """Uuids of messages already processed (duplicate suppression)."""

    def record(self, uuid: str) -> None:
        atomic_write_text(self._path(uuid), json.dumps(time.time()))

    def prune(self, max_age: float, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - max_age
        dropped = 0
        for uuid, mtime in list(self._entries()):
            if mtime <= cutoff and self.remove(uuid):
                dropped += 1
        return dropped


class AckStores:
    """The publish and consume stores of one manager on one side, below `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.publish = PublishStore(directory / "publish")
        self.consume = ConsumeStore(directory / "consume")
        self._lock = threading.Lock()
        self._last_prune = 0.0

    def prune(self, max_age: float = PRUNE_AGE, now: float | None = None) -> int:
        """Forget entries older than `max_age` in both stores; returns how many were dropped."""
        now = time.time() if now is None else now
        with self._lock:
            self._last_prune = now
        dropped = self.publish.prune(max_age, now) + self.consume.prune(max_age, now)
        if dropped:
            log.info("Pruned %d ack-store entries older than %.0f days in %s", dropped, max_age / 86400, self.directory)
        return dropped

    def maybe_prune(self, interval: float = PRUNE_INTERVAL) -> None:
        """Prune unless that was done less than `interval` seconds ago (cheap to call often)."""
        with self._lock:
            if time.time() - self._last_prune < interval:
                return
        self.prune()
