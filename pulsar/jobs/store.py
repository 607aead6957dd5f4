"""Durable job records under `persistence_directory`.

Layout: `<persistence>/<manager>/active/<job_id>.json` for jobs not yet terminal and
`<persistence>/<manager>/finished/<job_id>.json` for terminal ones, so a restart reads only
the active set.  Every write is atomic (temp file, fsync, rename) and happens before the
transition is acted on.  A job moves to `finished/` first and leaves `active/` second: a
crash in between leaves both, and loading prefers the finished record.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from pulsar.jobs.state import JobRecord
from pulsar.util.fileio import atomic_write_json, read_json

log = logging.getLogger(__name__)


class JobStore:
    """Records of one manager's jobs.  `directory=None` keeps them in memory only."""

    def __init__(self, directory: Path | None, *, fsync: bool = True):
        self.directory = directory
        self.fsync = fsync
        self._memory: dict[str, JobRecord] = {}
        self._lock = threading.Lock()
        if directory is not None:
            (directory / "active").mkdir(parents=True, exist_ok=True)
            (directory / "finished").mkdir(parents=True, exist_ok=True)

    def _file(self, job_id: str, finished: bool) -> Path:
        assert self.directory is not None
        return self.directory / ("finished" if finished else "active") / f"{job_id}.json"

    def save(self, record: JobRecord, *, durable: bool = True) -> None:
        """Persist `record`; with `durable` (the default) it returns only once the record
        would survive a power loss, otherwise once any later reader (even after a crash of
        this process) will see it."""
        if self.directory is None:
            with self._lock:
                self._memory[record.job_id] = record
            return
        terminal = record.state.terminal
        atomic_write_json(self._file(record.job_id, terminal), record.to_json(), fsync=self.fsync and durable)
        if terminal:
            _unlink(self._file(record.job_id, False))
        else:
            _unlink(self._file(record.job_id, True))

    def load(self, job_id: str) -> JobRecord | None:
        if self.directory is None:
            with self._lock:
                return self._memory.get(job_id)
        for finished in (True, False):
            try:
                return JobRecord.from_json(read_json(self._file(job_id, finished)))
            except FileNotFoundError:
                continue
            except (ValueError, KeyError) as exc:
                log.error("unreadable job record %s: %s", self._file(job_id, finished), exc)
                continue
        return None

    def delete(self, job_id: str) -> None:
        if self.directory is None:
            with self._lock:
                self._memory.pop(job_id, None)
            return
        _unlink(self._file(job_id, True))
        _unlink(self._file(job_id, False))

    def active(self) -> list[JobRecord]:
        """Every persisted non-terminal record (what a restart must pick up again)."""
        if self.directory is None:
            with self._lock:
                return [r for r in self._memory.values() if not r.state.terminal]
        records = []
        finished_dir = self.directory / "finished"
        with os.scandir(self.directory / "active") as entries:
            for entry in entries:
                if not entry.name.endswith(".json") or entry.name.startswith("."):
                    continue
                if (finished_dir / entry.name).exists():
                    _unlink(Path(entry.path))  # crashed between the two steps of a terminal save
                    continue
                try:
                    records.append(JobRecord.from_json(read_json(entry.path)))
                except (OSError, ValueError, KeyError) as exc:
                    log.error("skipping unreadable job record %s: %s", entry.path, exc)
        return records


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
