"""Deleting job directories off the request path.

`discard` takes a directory out of the staging area with one rename (atomic, same file
system), so a clean answers at once and the job id is free again; a background thread does
the recursive delete.  Leftovers from before a restart are deleted on start.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import shutil
import threading
from pathlib import Path

from pulsar.jobs.directory import JobDirectory

log = logging.getLogger(__name__)

TRASH_DIR = ".trash"  # never a job id: ids start with a letter or digit


class Trash:
    def __init__(self, staging_root: Path, name: str):
        self.path = staging_root / TRASH_DIR
        self._name = name
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._counter = itertools.count()

    def start(self) -> None:
        threading.Thread(target=self._empty, name=f"trash-{self._name}", daemon=True).start()

    def stop(self) -> None:
        self._queue.put(None)

    def discard(self, directory: JobDirectory) -> None:
        if not directory.exists() or directory.path.is_symlink():
            directory.remove()
            return
        self.path.mkdir(exist_ok=True)
        doomed = self.path / f"{directory.job_id}.{os.getpid()}.{next(self._counter)}"
        try:
            os.rename(directory.path, doomed)
        except OSError as exc:
            log.warning("could not move %s to the trash (%s); deleting it in place", directory.path, exc)
            directory.remove()
            return
        self._queue.put(doomed)

    def _empty(self) -> None:
        if self.path.is_dir():  # left over from before a restart
            for leftover in self.path.iterdir():
                self._queue.put(leftover)
        while (doomed := self._queue.get()) is not None:
            shutil.rmtree(doomed, ignore_errors=True)
