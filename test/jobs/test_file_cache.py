"""`pulsar.jobs.file_cache` on its own: LRU order, holds, aliases, copies (the HTTP side and
the reference client are in test/integration/test_file_cache.py)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from pulsar.errors import InvalidArgument
from pulsar.jobs.file_cache import CacheFull, FileCache, alias_key, check_token
from pulsar.options import byte_size


def insert(cache: FileCache, path: str, data: bytes) -> str:
    return cache.insert(alias_key("127.0.0.1", path), io.BytesIO(data), len(data), fsync=False).sha256


def place(cache: FileCache, sha: str, directory: Path, job: tuple[str, str]) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        cache.place(sha, fd, "copy", job)
    finally:
        os.close(fd)


def test_least_recently_used_goes_first_and_a_held_entry_stays(tmp_path: Path) -> None:
    active = {("m", "job")}
    cache = FileCache(tmp_path / "cache", max_size=30, job_active=lambda manager, job: (manager, job) in active)
    a, b = insert(cache, "/a", b"a" * 10), insert(cache, "/b", b"b" * 10)
    place(cache, a, tmp_path, ("m", "job"))  # a: used last, and held
    c = insert(cache, "/c", b"c" * 10)
    d = insert(cache, "/d", b"d" * 10)  # full: b is the least recently used and not held
    assert a in cache and c in cache and d in cache and b not in cache
    with pytest.raises(CacheFull):
        insert(cache, "/e", b"e" * 25)  # only c and d could go: not enough
    active.clear()
    insert(cache, "/e", b"e" * 25)
    assert a not in cache and cache.total_size <= 30


def test_entries_and_aliases_survive_a_new_instance(tmp_path: Path) -> None:
    first = FileCache(tmp_path / "cache")
    sha = insert(first, "/x", b"x")
    second = FileCache(tmp_path / "cache")
    assert second.status(alias_key("127.0.0.1", "/x")) == {"token": sha, "ready": True}
    assert second.claim(alias_key("127.0.0.1", "/x")) is False
    assert second.status(alias_key("127.0.0.2", "/x"))["ready"] is False  # another client address


def test_the_copy_is_independent_of_the_entry(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache")
    sha = insert(cache, "/x", b"original")
    place(cache, sha, tmp_path, ("m", "j"))
    copy = tmp_path / "copy"
    assert copy.read_bytes() == b"original" and copy.stat().st_nlink == 1
    copy.write_bytes(b"changed")
    assert (tmp_path / "cache" / "entries" / sha).read_bytes() == b"original"


@pytest.mark.parametrize("token", ["../x", "A" * 63, "z" * 64, ""])
def test_tokens_are_64_hex(token: str) -> None:
    with pytest.raises(InvalidArgument):
        check_token(token)
    assert check_token("AB" * 32) == "ab" * 32


def test_size_and_mtime_must_be_numbers() -> None:
    with pytest.raises(InvalidArgument):
        alias_key("ip", "/p", size="1;2")
    assert alias_key("ip", "/p", "1", "2") != alias_key("ip", "/p")


@pytest.mark.parametrize(("text", "value"), [("512M", 512 * 2**20), ("10G", 10 * 2**30), ("1000", 1000),
                                             ("2 GiB", 2 * 2**30), (4096, 4096)])
def test_byte_sizes(text: object, value: int) -> None:
    assert byte_size(text) == value


@pytest.mark.parametrize("text", ["", "0", "-1", "1.5G", "ten", True])
def test_bad_byte_sizes(text: object) -> None:
    with pytest.raises(ValueError):
        byte_size(text)
