"""Durable, streaming file writes.

Everything that writes a file other code may read concurrently goes through here, so a
reader sees either the old content or the complete new content, never a partial file.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import json
import os
import queue
import threading
from pathlib import Path
from typing import IO, Any, Callable, Protocol

#: Block size for streaming copies: large enough to keep syscalls cheap, small enough to
#: keep memory flat whatever the file size.
BLOCK_SIZE = 4 * 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class TruncatedStream(IOError):
    """The source ended before the number of bytes it promised."""

    def __init__(self, expected: int, received: int):
        super().__init__(f"stream ended after {received} of {expected} bytes")
        self.expected = expected
        self.received = received


_temp_counter = itertools.count()


def _temp_stem(name: str) -> str:
    """`name`, cut so that `.<name>.<pid>.<counter>.part` still fits in NAME_MAX (255 bytes):
    a client may upload under a 255-byte name, and its temp file must not fail for that."""
    encoded = os.fsencode(name)
    if len(encoded) <= 200:
        return name
    return os.fsdecode(encoded[:200])


def create_temp_beside(path: Path, suffix: str, mode: int = 0o666, *, dir_fd: int | None = None) -> tuple[int, str]:
    """Open a new, exclusive temp file next to `path` (same directory, so a rename is atomic).

    Names are unique per process and call (pid + counter), so one O_EXCL open suffices;
    `tempfile.mkstemp`'s random names cost more than the write of a small file.  `mode` is
    filtered by the umask, as for any new file.  With `dir_fd`, `path` is a bare name in that
    directory and the returned name is relative to it (no path is resolved again: see
    `pulsar.jobs.jobfs`).
    """
    parent = "" if dir_fd is not None else str(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        name = os.path.join(parent, f".{_temp_stem(path.name)}.{os.getpid()}.{next(_temp_counter)}{suffix}")
        try:
            return os.open(name, flags, mode, dir_fd=dir_fd), name
        except FileExistsError:  # left behind by an earlier process with the same pid
            continue


def atomic_write_bytes(path: Path | str, data: bytes, *, fsync: bool = True, mode: int | None = None,
                       dir_fd: int | None = None) -> None:
    """Replace `path` with `data` atomically (temp file in the same directory, then rename).

    With `dir_fd`, `path` is a name in that directory; a symlink planted under the name is
    replaced, never written through."""

    def fill(fd: int) -> None:
        _write_all(fd, memoryview(data))
        if fsync:
            os.fsync(fd)

    _replace_with(Path(path), ".tmp", 0o666 if mode is None else mode, dir_fd, fill)


def _replace_with(path: Path, suffix: str, mode: int, dir_fd: int | None, fill: Callable[[int], None]) -> None:
    """Create a temp file beside `path`, `fill(fd)` it, rename it onto `path`; on any
    failure the temp file goes and `path` is untouched."""
    fd, tmp_name = create_temp_beside(path, suffix, mode, dir_fd=dir_fd)
    try:
        try:
            fill(fd)
        finally:
            os.close(fd)
        if dir_fd is None:
            os.replace(tmp_name, path)
        else:
            os.replace(tmp_name, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        _unlink_quietly(tmp_name, dir_fd)
        raise


def atomic_write_text(path: Path | str, text: str, *, fsync: bool = True, mode: int | None = None,
                      dir_fd: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync, mode=mode, dir_fd=dir_fd)


def atomic_write_json(path: Path | str, value: Any, *, fsync: bool = True, dir_fd: int | None = None) -> None:
    atomic_write_bytes(path, json.dumps(value, sort_keys=True).encode("utf-8"), fsync=fsync, dir_fd=dir_fd)


def read_json(path: Path | str) -> Any:
    with open(path, "rb") as handle:
        return json.loads(handle.read())


class StreamResult:
    """What `stream_to_file` wrote: the byte count and the sha256 computed on the way."""

    __slots__ = ("size", "sha256")

    def __init__(self, size: int, sha256: str):
        self.size = size
        self.sha256 = sha256

    def __repr__(self) -> str:
        return f"StreamResult(size={self.size}, sha256={self.sha256!r})"


def stream_to_file(
    source: Readable,
    target: Path | str,
    *,
    length: int | None,
    fsync: bool = True,
    block_size: int = BLOCK_SIZE,
    on_progress: Callable[[int], None] | None = None,
    dir_fd: int | None = None,
) -> StreamResult:
    """Copy `source` into `target` through a temp file in the target's directory.

    With `length` set, exactly that many bytes are read and a shorter source raises
    `TruncatedStream`; with `length=None` the source is read until it returns b"".
    The target appears (atomically, by rename) only when the copy is complete, so a failed
    or interrupted transfer never leaves a partial file under the final name.  The sha256
    is computed while streaming, never by a second read.  With `dir_fd`, `target` is a name
    in that directory (see `PartialFile`).
    """
    with PartialFile(target, fsync=fsync, dir_fd=dir_fd) as partial:
        partial.receive(source, length, block_size=block_size, on_progress=on_progress)
        return partial.commit()


def copy_file(source: Path | str, target: Path | str, *, fsync: bool = True, dir_fd: int | None = None,
              make_parents: bool = False) -> StreamResult:
    """The one file copy: streamed through a uniquely named temp file beside `target`
    (concurrent copies to one target cannot collide) and renamed when complete."""
    if make_parents and dir_fd is None:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    with open(source, "rb") as handle:
        return stream_to_file(handle, target, length=os.fstat(handle.fileno()).st_size, fsync=fsync, dir_fd=dir_fd)


class PartialFile:
    """A file being received into a temp file beside its target.

    It outlives a broken source: after `TruncatedStream` (or any read error) the bytes
    received so far and their running sha256 are kept, so a transfer can carry on from
    `received` (an HTTP download resumed with `Range`) and still hash every byte exactly
    once.  `commit` renames the temp file onto the target; leaving the `with` block without
    committing removes it.

    A source with `readinto` is read into a few reusable buffers while a second thread
    writes the previous one, so receiving and hashing overlap with writing; memory stays
    at `PIPELINE_DEPTH` buffers whatever the size.

    With `dir_fd`, `target` is a bare name in that directory: the temp file is created, and
    renamed onto the name, through (a duplicate of) that fd, so no path is resolved again and
    a symlink planted under the name is replaced rather than written through.
    """

    def __init__(self, target: Path | str, *, fsync: bool = True, suffix: str = ".part", dir_fd: int | None = None,
                 mode: int = 0o666):
        self.target = Path(target)
        self.fsync = fsync
        self._dir_fd = None if dir_fd is None else os.dup(dir_fd)
        try:
            self._fd, self.temp_name = create_temp_beside(self.target, suffix, mode, dir_fd=self._dir_fd)
        except BaseException:
            self._close_dir()
            raise
        self._digest = hashlib.sha256()
        self.received = 0
        self._open = True

    def __enter__(self) -> "PartialFile":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()

    def receive(self, source: Readable, length: int | None, *, block_size: int = BLOCK_SIZE,
                on_progress: Callable[[int], None] | None = None) -> int:
        """Append `length` bytes of `source` (all of it if None); raise `TruncatedStream` if
        it ends early.  `on_progress` gets the running total over every `receive`."""
        readinto = _readinto_of(source)

        def on_block(count: int) -> None:  # called once a block is hashed and handed to the writer
            self.received += count
            if on_progress is not None:
                on_progress(self.received)

        before = self.received
        try:
            if length is None or length > PIPELINE_BLOCK:
                _pipelined_copy(readinto, self._fd, length, self._digest, on_block)
            else:
                _buffered_copy(readinto, self._fd, length, self._digest, block_size, on_block)
        except BaseException:
            # A failed write leaves fewer bytes on disk than were hashed: then the kept part
            # is useless, so start over rather than resume into a file with a hole.
            if os.fstat(self._fd).st_size != self.received:
                self.restart()
            raise
        copied = self.received - before
        if length is not None and copied != length:
            raise TruncatedStream(length, copied)
        return copied

    def restart(self) -> None:
        """Forget everything received (the source changed under us): empty file, fresh digest."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._digest = hashlib.sha256()
        self.received = 0

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def flush(self) -> None:
        """fsync now (a caller that commits under a lock does the slow part first)."""
        os.fsync(self._fd)
        self.fsync = False

    def commit(self) -> StreamResult:
        """fsync (if asked), close and rename onto the target; the result names the new file."""
        if self.fsync:
            os.fsync(self._fd)
        self._close()
        try:
            if self._dir_fd is None:
                os.replace(self.temp_name, self.target)
            else:
                os.replace(self.temp_name, self.target.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except BaseException:
            _unlink_quietly(self.temp_name, self._dir_fd)
            self.temp_name = ""
            self._close_dir()
            raise
        self.temp_name = ""
        self._close_dir()
        return StreamResult(self.received, self._digest.hexdigest())

    def discard(self) -> None:
        """Close and remove the temp file unless committed; safe to call twice."""
        self._close()
        if self.temp_name:
            _unlink_quietly(self.temp_name, self._dir_fd)
            self.temp_name = ""
        self._close_dir()

    def _close(self) -> None:
        if self._open:
            self._open = False
            os.close(self._fd)

    def _close_dir(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None


#: Buffer size and count of the pipelined copy: 3 x 2 MiB keeps memory flat and small.
PIPELINE_BLOCK = 2 * 1024 * 1024
PIPELINE_DEPTH = 3


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _readinto_of(source: Readable) -> Callable[[memoryview], int | None]:
    """The source's `readinto`, or one made from its `read` (one extra copy per block)."""
    readinto = getattr(source, "readinto", None)
    if readinto is not None:
        return readinto  # type: ignore[no-any-return]

    def read_into(view: memoryview) -> int:
        chunk = source.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    return read_into


def _buffered_copy(
    readinto: Callable[[memoryview], int | None],
    fd: int,
    length: int | None,
    digest: Any,
    block_size: int,
    on_block: Callable[[int], None],
) -> None:
    """Copy through one reused buffer on the calling thread (small transfers)."""
    buffer = memoryview(bytearray(block_size if length is None else max(min(block_size, length), 1)))
    received = 0
    while length is None or received < length:
        want = len(buffer) if length is None else min(len(buffer), length - received)
        count = readinto(buffer[:want])
        if not count:
            break
        block = buffer[:count]
        _write_all(fd, block)
        digest.update(block)
        received += count
        on_block(count)


def _fill(readinto: Callable[[memoryview], int | None], view: memoryview) -> int:
    """Fill `view` from a `readinto` that may return short counts; fewer bytes only at EOF."""
    filled = 0
    while filled < len(view):
        count = readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def _pipelined_copy(
    readinto: Callable[[memoryview], int | None],
    fd: int,
    length: int | None,
    digest: Any,
    on_block: Callable[[int], None],
) -> None:
    free: queue.Queue[bytearray] = queue.Queue()
    filled: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
    for _ in range(PIPELINE_DEPTH):
        free.put(bytearray(PIPELINE_BLOCK))
    errors: list[BaseException] = []

    def write_blocks() -> None:
        while (item := filled.get()) is not None:
            buffer, count = item
            try:
                if not errors:
                    _write_all(fd, memoryview(buffer)[:count])
            except BaseException as exc:  # handed to the reading thread
                errors.append(exc)
            free.put(buffer)

    writer = threading.Thread(target=write_blocks, name="stream-writer", daemon=True)
    writer.start()
    received = 0
    try:
        while (length is None or received < length) and not errors:
            buffer = free.get()
            want = PIPELINE_BLOCK if length is None else min(PIPELINE_BLOCK, length - received)
            view = memoryview(buffer)[:want]
            count = _fill(readinto, view)
            if count:
                digest.update(view[:count])
                received += count
                filled.put((buffer, count))
                on_block(count)
            else:
                free.put(buffer)
            view.release()
            if count < want:
                break  # end of the source
    finally:
        filled.put(None)
        writer.join()
    if errors:
        raise errors[0]


def clone_file(source_fd: int, target: Path | str, *, dir_fd: int | None = None) -> int:
    """Copy the open regular file `source_fd` to `target` (a name in `dir_fd` if given) through
    a temp file and a rename; return the size.  A reflink (FICLONE: extents shared
    copy-on-write, so writes to either file never reach the other) where the file system
    offers it, else the kernel's copy_file_range, else a plain streamed copy.  Never a link
    that writes through."""
    size = os.fstat(source_fd).st_size

    def fill(fd: int) -> None:
        if not _reflink(source_fd, fd):
            _kernel_copy(source_fd, fd, size)

    _replace_with(Path(target), ".part", 0o666, dir_fd, fill)
    return size


#: ioctl FICLONE (linux/fs.h): make the target share the source's extents copy-on-write.
_FICLONE = 0x40049409


def _reflink(source_fd: int, target_fd: int) -> bool:
    try:
        fcntl.ioctl(target_fd, _FICLONE, source_fd)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM):
            return False
        raise
    return True


def _kernel_copy(source_fd: int, target_fd: int, size: int) -> None:
    offset = 0
    try:
        while offset < size:
            copied = os.copy_file_range(source_fd, target_fd, size - offset, offset, offset)
            if copied == 0:
                break
            offset += copied
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
    if offset < size:  # no in-kernel copy here: stream the rest
        os.lseek(source_fd, offset, os.SEEK_SET)
        os.lseek(target_fd, offset, os.SEEK_SET)
        while True:
            block = os.read(source_fd, BLOCK_SIZE)
            if not block:
                break
            _write_all(target_fd, memoryview(block))
            offset += len(block)
    if offset != size:
        raise TruncatedStream(size, offset)


def sha256_of_file(path: Path | str, block_size: int = BLOCK_SIZE) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(block_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_capped(path: Path | str, limit: int) -> bytes:
    """Read at most `limit` bytes of `path` (the whole file if `limit` <= 0); b"" if missing."""
    try:
        with open(path, "rb") as handle:
            return handle.read(limit) if limit > 0 else handle.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return b""


def copy_stream(source: IO[bytes], sink: IO[bytes], block_size: int = BLOCK_SIZE) -> int:
    total = 0
    while chunk := source.read(block_size):
        sink.write(chunk)
        total += len(chunk)
    return total


def _unlink_quietly(name: str, dir_fd: int | None = None) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
