"""The durable status outbox: every `status_update` the server sends passes through here.

`put` writes the document to `<directory>/<20-digit seq>-<uuid>.json` (atomic, fsynced)
before it returns, so once a job's state is recorded its update can no longer be lost.  One
drain thread publishes the entries in sequence order and deletes each file only after the
broker confirmed it: delivery is at least once and in order (a crash between the confirm
and the delete re-sends that one entry after the restart).  While publishing fails the
thread backs off (with jitter, up to the drain interval) and logs one line per outage;
otherwise it sleeps until the next `put`.  Files are read one at a time, and the directory
is listed in bounded batches, so memory stays flat however many updates wait.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from pulsar.shared.amqp.connection import Backoff
from pulsar.util.fileio import atomic_write_bytes, read_json

log = logging.getLogger(__name__)

#: Publish one document; raise (anything) when the broker did not take it.
Publish = Callable[[dict[str, Any]], None]
#: Called with each terminal document (`complete: "true"`) once the broker confirmed it.
Delivered = Callable[[dict[str, Any]], None]

DEFAULT_DRAIN_INTERVAL = 5.0
#: Entries taken from one directory listing.
BATCH = 256
_SUFFIX = ".json"
_UNREADABLE = ".unreadable"


class Outbox:
    """A FIFO of status documents on disk, drained to `publish` by one thread.

    `max_interval` (the `status_outbox_drain_interval` option) caps the pause between two
    attempts while publishing fails.  `on_delivered` runs in the drain thread; what it
    raises is logged and does not stop the drain.
    """

    def __init__(
        self,
        directory: Path,
        publish: Publish,
        *,
        on_delivered: Delivered | None = None,
        max_interval: float = DEFAULT_DRAIN_INTERVAL,
        name: str = "outbox",
    ):
        self.directory = directory
        self.name = name
        self._publish = publish
        self._on_delivered = on_delivered
        self._backoff = Backoff(initial=min(0.5, max_interval), cap=max_interval)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        directory.mkdir(parents=True, exist_ok=True)
        last = max((_seq_of(name) for name in self._names()), default=0)
        self._seq = itertools.count(last + 1)

    # -- writing -----------------------------------------------------------------------

    def put(self, document: dict[str, Any]) -> None:
        """Append `document`; it is on disk (fsynced) when this returns.  Raises OSError if
        it cannot be written (then nothing was appended)."""
        with self._lock:  # one writer at a time, so files appear in sequence order
            seq = next(self._seq)
            entry = {"seq": seq, "id": uuid.uuid4().hex, "ts": time.time(), "payload": document}
            # not atomic_write_json: that sorts keys, and the document goes out as it came
            atomic_write_bytes(self.directory / f"{seq:020d}-{entry['id']}{_SUFFIX}", json.dumps(entry).encode())
        self._wake.set()

    # -- reading -----------------------------------------------------------------------

    def _names(self) -> list[str]:
        with os.scandir(self.directory) as items:
            return [item.name for item in items if _is_entry(item.name)]

    def _oldest(self, limit: int = BATCH) -> list[str]:
        with os.scandir(self.directory) as items:
            return heapq.nsmallest(limit, (item.name for item in items if _is_entry(item.name)))

    def __len__(self) -> int:
        return len(self._names())

    def pending(self) -> Iterator[dict[str, Any]]:
        """The waiting documents, oldest first, read one at a time (for start-up and tests)."""
        for name in sorted(self._names()):
            entry = self._read(name)
            if entry is not None:
                yield entry["payload"]

    def _read(self, name: str) -> dict[str, Any] | None:
        path = self.directory / name
        try:
            entry = read_json(path)
            if not isinstance(entry, dict) or not isinstance(entry.get("payload"), dict):
                raise ValueError("not an outbox entry")
            return entry
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("%s: setting aside unreadable entry %s: %s", self.name, name, exc)
            try:
                os.replace(path, path.with_name(name + _UNREADABLE))
            except OSError:
                pass
            return None

    # -- draining ----------------------------------------------------------------------

    def drain(self) -> bool:
        """Publish waiting entries in order until the outbox is empty (True) or a publish
        fails (False).  The drain thread runs this; tests may call it directly instead."""
        while not self._stop.is_set():
            self._wake.clear()  # a put after this line is seen by the next listing or wait
            batch = self._oldest()
            if not batch:
                return True
            for name in batch:
                if self._stop.is_set():
                    return False
                if not self._send(name):
                    return False
        return False

    def _send(self, name: str) -> bool:
        entry = self._read(name)
        if entry is None:
            return True
        document = entry["payload"]
        try:
            self._publish(document)
        except Exception as exc:  # any failure: keep the entry, back off, retry
            if not self._failing:
                self._failing = True
                log.warning(
                    "%s: cannot publish status updates (%s); %d waiting, retrying", self.name, exc, len(self)
                )
            return False
        if self._failing:
            self._failing = False
            log.info("%s: publishing status updates again", self.name)
        self._backoff.reset()
        try:
            (self.directory / name).unlink()
        except FileNotFoundError:
            pass
        if self._on_delivered is not None and document.get("complete") == "true":
            try:
                self._on_delivered(document)
            except Exception:
                log.exception("%s: after-delivery step for job %s failed", self.name, document.get("job_id"))
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.drain():
                self._wake.wait()
            else:
                self._stop.wait(self._backoff.next())

    def start(self) -> None:
        """Start the drain thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{self.name}-drain", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the drain thread; waiting entries stay on disk for the next start.  A publish
        in progress is given `timeout` seconds to finish."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _is_entry(name: str) -> bool:
    return name.endswith(_SUFFIX) and not name.startswith(".") and name[:20].isdigit()


def _seq_of(name: str) -> int:
    return int(name[:20])
