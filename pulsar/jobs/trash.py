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
import threading
from pathlib import Path

from pulsar.errors import PulsarError
from pulsar.jobs import jobfs
from pulsar.jobs.directory import JobDirectory

log = logging.getLogger(__name__)

TRASH_DIR = ".trash"  # never a job id: ids start with a letter or digit


class Trash:
    """The staging root's `.trash`: job directories renamed there, then deleted by a thread.

    Both steps work through directory fds (`os.rename(src_dir_fd=, dst_dir_fd=)`,
    `shutil.rmtree(dir_fd=)`), so a job that swapped its directory or anything in it for a
    symlink gets the link removed, never what it points at."""

    def __init__(self, staging_root: Path, name: str):
        self.staging_root = staging_root
        self.path = staging_root / TRASH_DIR
        self._name = name
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._counter = itertools.count()

    def start(self) -> None:
        threading.Thread(target=self._empty, name=f"trash-{self._name}", daemon=True).start()

    def stop(self) -> None:
        self._queue.put(None)

    def discard(self, directory: JobDirectory) -> None:
        directory.remove_private()  # small: at once, so a new job of this id starts clean
        if not directory.exists():
            directory.remove()  # a symlink in its place: the link goes, nothing else
            return
        doomed = f"{directory.job_id}.{os.getpid()}.{next(self._counter)}"
        try:
            with jobfs.opened_dir(self.staging_root, []) as root:
                with jobfs.opened_dir(self.staging_root, [TRASH_DIR], create=True) as trash:
                    os.rename(directory.job_id, doomed, src_dir_fd=root, dst_dir_fd=trash)
        except (OSError, PulsarError) as exc:
            log.warning("could not move %s to the trash (%s); deleting it in place", directory.path, exc)
            directory.remove()
            return
        self._queue.put(doomed)

    def _remove(self, name: str) -> None:
        try:
            with jobfs.opened_dir(self.staging_root, [TRASH_DIR]) as trash:
                jobfs.remove(trash, name)
        except Exception as exc:  # e.g. RecursionError in a job's absurdly deep tree: the thread must go on
            log.warning("could not empty %s from the trash: %s", name, exc)

    def _empty(self) -> None:
        try:
            with jobfs.opened_dir(self.staging_root, [TRASH_DIR]) as trash:
                leftovers = os.listdir(trash)  # left over from before a restart
        except (OSError, PulsarError):
            leftovers = []
        for leftover in leftovers:
            self._queue.put(leftover)
        while (doomed := self._queue.get()) is not None:
            self._remove(doomed)
