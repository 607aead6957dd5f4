import hashlib
import io
import os

import pytest

from pulsar.util import fileio
from pulsar.util.fileio import TruncatedStream, atomic_write_json, read_json, stream_to_file


class Trickle(io.RawIOBase):
    """A readinto source that returns short counts, like a socket."""

    def __init__(self, data: bytes, step: int):
        self.data = memoryview(data)
        self.step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(self.step, len(self.data), len(buffer))
        buffer[:count] = self.data[:count]
        self.data = self.data[count:]
        return count


@pytest.mark.parametrize("length_known", [True, False])
@pytest.mark.parametrize("size", [0, 1, fileio.PIPELINE_BLOCK, 3 * fileio.PIPELINE_BLOCK + 17])
def test_stream_to_file_copies_and_hashes(tmp_path, size, length_known):
    data = os.urandom(size)
    target = tmp_path / "out"
    result = stream_to_file(Trickle(data, 300_001), target, length=size if length_known else None, fsync=False)
    assert target.read_bytes() == data
    assert (result.size, result.sha256) == (size, hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("source", [lambda d: Trickle(d, 65536), io.BytesIO])
def test_short_source_leaves_no_file(tmp_path, source):
    target = tmp_path / "out"
    target.write_bytes(b"previous")
    with pytest.raises(TruncatedStream):
        stream_to_file(source(os.urandom(5 * 1024 * 1024)), target, length=6 * 1024 * 1024)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def fail_second_write(monkeypatch) -> None:
    """The disk fills up after the first block."""
    calls = {"n": 0}
    real_write = os.write

    def failing_write(fd, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(fileio.os, "write", failing_write)


def test_write_errors_surface_and_clean_up(tmp_path, monkeypatch):
    fail_second_write(monkeypatch)
    with pytest.raises(OSError, match="No space"):
        stream_to_file(Trickle(os.urandom(8 * 1024 * 1024), 1 << 20), tmp_path / "out", length=None)
    assert list(tmp_path.iterdir()) == []


def test_atomic_json(tmp_path):
    atomic_write_json(tmp_path / "x.json", {"a": [1, 2]})
    assert read_json(tmp_path / "x.json") == {"a": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_partial_file_continues_after_a_broken_source(tmp_path):
    data = os.urandom(5 * 1024 * 1024 + 3)
    target = tmp_path / "out"
    with fileio.PartialFile(target, fsync=False) as partial:
        with pytest.raises(TruncatedStream):
            partial.receive(Trickle(data[:3_000_000], 65536), len(data))
        assert partial.received == 3_000_000
        partial.receive(Trickle(data[partial.received:], 100_000), len(data) - partial.received)
        result = partial.commit()
    assert target.read_bytes() == data
    assert (result.size, result.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_partial_file_restart_and_discard(tmp_path):
    target = tmp_path / "out"
    with fileio.PartialFile(target, fsync=False) as partial:
        partial.receive(io.BytesIO(b"stale bytes"), None)
        partial.restart()
        partial.receive(io.BytesIO(b"fresh"), 5)
        assert partial.sha256 == hashlib.sha256(b"fresh").hexdigest()
    assert list(tmp_path.iterdir()) == []  # not committed: nothing left


def test_partial_file_starts_over_after_a_failed_write(tmp_path, monkeypatch):
    fail_second_write(monkeypatch)
    with fileio.PartialFile(tmp_path / "out", fsync=False) as partial:
        with pytest.raises(OSError):
            partial.receive(Trickle(os.urandom(8 * 1024 * 1024), 1 << 20), None)
        assert partial.received == 0  # what was hashed never all reached the disk
