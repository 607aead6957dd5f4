"""sha256 digests of files, remembered by file identity so a file is hashed at most once.

Downloads go out with `sendfile`, which cannot hash on the way, so a digest the server
announces (`Repr-Digest`) costs one extra read of the file, done when a client asks for it
(`Want-Repr-Digest`).  The result is kept by (device, inode, size, mtime), so a resumed or
repeated download of the same file version is not hashed again.

A file rewritten in place with the same size within one tick of the file system's clock keeps
its mtime, so an entry recorded less than `RACY_WINDOW_NS` after the file's mtime is not
trusted (the same rule git applies to its index): it is recomputed until the file is old
enough for its identity to be conclusive.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import threading
import time

#: What tells two versions of a file apart without reading it: (device, inode, size, mtime).
FileIdentity = tuple[int, int, int, int]


def file_identity(info: os.stat_result) -> FileIdentity:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


#: Wider than any file system clock tick (ext4 stamps with the kernel's coarse clock).
RACY_WINDOW_NS = 50_000_000
DEFAULT_CAPACITY = 4096


class DigestCache:
    """A bounded LRU of sha256 hex digests by file identity; safe to share between threads."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        self.capacity = capacity
        self._entries: collections.OrderedDict[FileIdentity, tuple[str, int]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def remember(self, identity: FileIdentity, sha256: str, recorded_ns: int | None = None) -> None:
        """Record that the file version `identity` hashes to `sha256`.  `recorded_ns` is when
        the hashed bytes were last read (default: now)."""
        stamp = time.time_ns() if recorded_ns is None else recorded_ns
        with self._lock:
            self._entries[identity] = (sha256, stamp)
            self._entries.move_to_end(identity)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def lookup(self, info: os.stat_result) -> str | None:
        """The remembered digest of this file version, if one can be trusted."""
        identity = file_identity(info)
        with self._lock:
            entry = self._entries.get(identity)
            if entry is None:
                return None
            self._entries.move_to_end(identity)
        sha256, recorded_ns = entry
        if recorded_ns - info.st_mtime_ns < RACY_WINDOW_NS:
            return None
        return sha256

    def digest(self, handle: io.BufferedReader, info: os.stat_result) -> str:
        """The digest of the open file `handle` (whose `fstat` is `info`): remembered, or
        computed by reading it once from the start.  The handle's position is restored."""
        known = self.lookup(info)
        if known is not None:
            return known
        started_ns = time.time_ns()
        position = handle.tell()
        handle.seek(0)
        try:
            sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        finally:
            handle.seek(position)
        after = os.fstat(handle.fileno())
        if file_identity(after) == file_identity(info):  # unchanged while we read it
            self.remember(file_identity(info), sha256, started_ns)
        return sha256
