"""The digest cache: computed once per file version, never trusted for a racy version."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from pulsar.util import digests
from pulsar.util.digests import DigestCache, file_identity


def old_file(path: Path, data: bytes) -> os.stat_result:
    """Write `data` and date it well before now, outside the racy window."""
    path.write_bytes(data)
    past = time.time_ns() - 10 * digests.RACY_WINDOW_NS
    os.utime(path, ns=(past, past))
    return os.stat(path)


def test_digest_is_computed_once_and_position_restored(tmp_path: Path, monkeypatch) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    info = old_file(tmp_path / "f", data)
    cache = DigestCache()
    with open(tmp_path / "f", "rb") as handle:
        handle.seek(1000)
        assert cache.digest(handle, info) == hashlib.sha256(data).hexdigest()
        assert handle.tell() == 1000
    assert cache.lookup(info) == hashlib.sha256(data).hexdigest()

    def no_second_read(*args, **kwargs):
        raise AssertionError("hashed again")

    monkeypatch.setattr(digests.hashlib, "file_digest", no_second_read)
    with open(tmp_path / "f", "rb") as handle:
        assert cache.digest(handle, info) == hashlib.sha256(data).hexdigest()


def test_new_version_is_not_confused_with_the_old(tmp_path: Path) -> None:
    cache = DigestCache()
    info = old_file(tmp_path / "f", b"first")
    with open(tmp_path / "f", "rb") as handle:
        cache.digest(handle, info)
    newer = old_file(tmp_path / "f", b"other")  # same size, rewritten in place, other mtime
    assert file_identity(newer)[:3] == file_identity(info)[:3]
    assert cache.lookup(newer) is None
    with open(tmp_path / "f", "rb") as handle:
        assert cache.digest(handle, newer) == hashlib.sha256(b"other").hexdigest()


def test_racy_entry_is_not_trusted(tmp_path: Path) -> None:
    cache = DigestCache()
    (tmp_path / "f").write_bytes(b"fresh")
    info = os.stat(tmp_path / "f")  # mtime is now: a same-size rewrite could keep it
    cache.remember(file_identity(info), "0" * 64)
    assert cache.lookup(info) is None


def test_capacity_is_bounded(tmp_path: Path) -> None:
    cache = DigestCache(capacity=2)
    infos = [old_file(tmp_path / str(i), bytes([i])) for i in range(3)]
    for info in infos:
        cache.remember(file_identity(info), "a" * 64)
    assert cache.lookup(infos[0]) is None
    assert cache.lookup(infos[2]) == "a" * 64
