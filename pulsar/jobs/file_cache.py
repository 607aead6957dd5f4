"""The input file cache behind the `/cache` routes (spec 3.10): inputs many jobs share
cross the network once.

Entries are addressed by the sha256 of their content, computed while the insert streams
in, so an entry's name is its proof of content and the `cache_token` a client sends back is
that digest (64 hex characters, checked before it becomes a file name).  Clients name files
by their own path, so `path` maps to an entry through an *alias*: the sha256 of the client's
socket address (never `X-Forwarded-For`, which anyone can write), its path and, when the
client sends them (our `pulsar.client` does), the file's `size` and `mtime`.  A file changed
at the same path then has a new alias and is uploaded again.  The reference client sends
only `path`, so for it a changed file at an unchanged path keeps its alias (the reference's
own behaviour); see README "Input file cache".

Layout under `file_cache_dir`: `entries/<sha256>` (read-only files; their mtime is the last
use, so LRU order survives a restart), `aliases/<alias>` (the sha256 of the entry, written
atomically).  An insert streams into a temp file inside `entries/` and is renamed onto its
digest only when complete and verified, so no partial entry is ever visible; two concurrent
inserts of one file end as one entry.

Placing an entry into a job (`place`) makes a copy the job owns: a reflink where the file
system shares extents copy-on-write, otherwise a kernel copy.  Never a symlink, and never a
hard link: a job usually runs as the server's user, and writing through a shared inode would
change the entry for every later job.

With `max_size` set, the entries' total stays within it: least recently used entries go
first, but an entry placed into a job that is still queued or running (`job_active`) is
kept; an insert that cannot fit even then is refused (`CacheFull`, 507).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Callable

from pulsar.errors import InvalidArgument, NotFound, PulsarError
from pulsar.util.fileio import PartialFile, Readable, StreamResult, TruncatedStream, atomic_write_text, clone_file

log = logging.getLogger(__name__)

TOKEN = re.compile(r"[0-9a-f]{64}")

#: A claim (`PUT /cache` answered true) nobody follows with an insert is forgotten after
#: this long, so a client that died after claiming does not block the file for ever.
CLAIM_TIMEOUT = 600.0

#: (manager name, job id) -> is the job still queued or running (or set up, not yet submitted)?
JobActive = Callable[[str, str], bool]


class CacheDisabled(PulsarError):
    """The server has no `file_cache_dir`: the cache routes exist but are not provided."""

    http_status = 501
    error = "cache_disabled"


class CacheFull(PulsarError):
    """The entry does not fit in `file_cache_max_size`, even after evicting every entry no
    active job holds."""

    http_status = 507
    error = "cache_full"


def check_token(token: str) -> str:
    """A `cache_token` is an entry's sha256: 64 hex characters, nothing else becomes a name."""
    value = token.strip().lower()
    if not TOKEN.fullmatch(value):
        raise InvalidArgument("cache_token must be 64 hexadecimal characters (a sha256)")
    return value


def alias_key(client: str, path: str, size: str | None = None, mtime: str | None = None) -> str:
    """The lookup key of a client's file: its address and path, plus size and mtime when sent."""
    if not path:
        raise InvalidArgument("argument 'path' must not be empty")
    for name, value in (("size", size), ("mtime", mtime)):
        if value is not None and not re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
            raise InvalidArgument(f"argument {name!r} must be a non-negative number, got {value!r}")
    return hashlib.sha256(json.dumps([client, path, size, mtime]).encode("utf-8")).hexdigest()


class FileCache:
    """One cache directory, shared by every manager of the server.  Thread-safe."""

    def __init__(self, directory: Path, max_size: int | None = None, job_active: JobActive | None = None):
        self.directory = Path(directory)
        self.entries = self.directory / "entries"
        self.aliases = self.directory / "aliases"
        self.max_size = max_size
        self._job_active: JobActive = job_active or (lambda manager, job_id: False)
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}  # sha256 -> size of every complete entry
        self._last_use: dict[str, float] = {}
        self._pins: dict[str, set[tuple[str, str]]] = {}  # sha256 -> jobs it was placed into
        self._claims: dict[str, float] = {}  # alias -> when claimed
        self._reserved = 0  # bytes of inserts in flight
        for path in (self.entries, self.aliases):
            path.mkdir(parents=True, exist_ok=True)
        self._scan()

    def _scan(self) -> None:
        stale = 0
        for entry in os.scandir(self.entries):
            if TOKEN.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                self._sizes[entry.name] = info.st_size
                self._last_use[entry.name] = info.st_mtime
            elif entry.name.startswith("."):  # an insert the last run did not finish
                os.unlink(entry.path)
                stale += 1
        for alias in os.scandir(self.aliases):  # aliases of evicted entries, and stale temp files
            if not TOKEN.fullmatch(alias.name) or self._resolve(alias.name) is None:
                os.unlink(alias.path)
        log.info("file cache %s: %d entries, %d bytes%s", self.directory, len(self._sizes), self.total_size,
                 f", {stale} unfinished inserts removed" if stale else "")

    @property
    def total_size(self) -> int:
        return sum(self._sizes.values())

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self._sizes

    # -- the three cache routes ----------------------------------------------------------

    def claim(self, alias: str) -> bool:
        """`PUT /cache`: True if the caller should insert the file (nobody has, nobody is)."""
        now = time.time()
        with self._lock:
            if self._resolve(alias) is not None:
                return False
            claimed = self._claims.get(alias)
            if claimed is not None and now - claimed < CLAIM_TIMEOUT:
                return False
            self._claims[alias] = now
            return True

    def status(self, alias: str) -> dict[str, object]:
        """`GET /cache/status`: ready with the entry's sha256 as token, or not ready (the
        token is then the alias, which names no entry).  A ready entry counts as used now, so
        it is the last to be evicted before the caller places it."""
        with self._lock:
            sha256 = self._resolve(alias)
            if sha256 is None:
                return {"token": alias, "ready": False}
            self._touch(sha256)
        return {"token": sha256, "ready": True}

    def insert(self, alias: str, body: Readable, length: int | None, *, expected_sha256: str | None = None,
               fsync: bool = True) -> StreamResult:
        """`POST /cache`: stream `body` into an entry named by its sha256, then point the alias
        at it.  `expected_sha256` (optional) must match what arrived, or nothing is kept."""
        if expected_sha256 is not None:
            expected_sha256 = check_token(expected_sha256)
        reserved = 0
        try:
            reserved = self._reserve(length or 0)
            with PartialFile(self.entries / "incoming", fsync=False, suffix=".part", mode=0o444) as partial:
                try:
                    partial.receive(body, length)
                except TruncatedStream as exc:
                    raise InvalidArgument(f"cache insert body ended early: {exc}") from None
                sha256 = partial.sha256
                if expected_sha256 is not None and sha256 != expected_sha256:
                    raise InvalidArgument(f"cache insert: content has sha256 {sha256}, the client announced "
                                          f"{expected_sha256}")
                if fsync:
                    partial.flush()  # before taking the lock: it can take seconds
                with self._lock:
                    self._reserved -= reserved
                    reserved = 0
                    if sha256 in self._sizes:
                        log.info("file cache: %s already held; the duplicate insert is dropped", sha256)
                        result = StreamResult(partial.received, sha256)
                    else:
                        self._make_room(partial.received)
                        partial.target = self.entries / sha256
                        result = partial.commit()
                        self._sizes[sha256] = result.size
                    self._touch(sha256)
                    # under the lock: a claim between entry and alias would upload the file again
                    atomic_write_text(self.aliases / alias, sha256, fsync=fsync)
                    self._claims.pop(alias, None)
            log.info("file cache: stored %s (%d bytes)", sha256, result.size)
            return result
        finally:
            with self._lock:
                self._reserved -= reserved
                self._claims.pop(alias, None)

    # -- placing an entry into a job -----------------------------------------------------

    def place(self, sha256: str, dir_fd: int, name: str, job: tuple[str, str]) -> StreamResult:
        """Copy (or reflink) entry `sha256` to `name` in the directory `dir_fd`; `job` (manager,
        job id) holds the entry from now on until it is no longer active."""
        sha256 = check_token(sha256)
        with self._lock:
            if sha256 not in self._sizes:
                raise NotFound(f"no cache entry {sha256}")
            self._pins.setdefault(sha256, set()).add(job)
            self._touch(sha256)
        try:
            source = os.open(self.entries / sha256, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"no cache entry {sha256}") from None
        try:
            size = clone_file(source, name, dir_fd=dir_fd)
        finally:
            os.close(source)
        return StreamResult(size, sha256)

    # -- bookkeeping (under the lock) ----------------------------------------------------

    def _resolve(self, alias: str) -> str | None:
        try:
            sha256 = (self.aliases / alias).read_text().strip()
        except FileNotFoundError:
            return None
        return sha256 if sha256 in self._sizes else None

    def _touch(self, sha256: str) -> None:
        now = time.time()
        self._last_use[sha256] = now
        try:
            os.utime(self.entries / sha256, (now, now))
        except FileNotFoundError:
            pass

    def _reserve(self, size: int) -> int:
        with self._lock:
            self._make_room(size)
            self._reserved += size
            return size

    def _held(self, sha256: str) -> bool:
        jobs = self._pins.get(sha256)
        if not jobs:
            return False
        for job in list(jobs):
            if not self._job_active(*job):
                jobs.discard(job)
        if not jobs:
            del self._pins[sha256]
        return bool(jobs)

    def _make_room(self, size: int) -> None:
        """Evict least recently used, unheld entries until `size` more bytes fit."""
        if self.max_size is None:
            return
        if size > self.max_size:
            raise CacheFull(f"a {size}-byte file does not fit in the cache (file_cache_max_size {self.max_size})")
        excess = self.total_size + self._reserved + size - self.max_size
        if excess <= 0:
            return
        for sha256 in sorted(self._sizes, key=lambda s: self._last_use.get(s, 0.0)):
            if excess <= 0:
                break
            if self._held(sha256):
                continue
            excess -= self._evict(sha256)
        if excess > 0:
            raise CacheFull(f"no room for {size} more bytes: the cache holds {self.total_size} of "
                            f"{self.max_size} bytes in entries that queued or running jobs use")

    def _evict(self, sha256: str) -> int:
        size = self._sizes.pop(sha256)
        self._last_use.pop(sha256, None)
        try:
            os.unlink(self.entries / sha256)
        except FileNotFoundError:
            pass
        log.info("file cache: evicted %s (%d bytes, least recently used)", sha256, size)
        return size
