"""The one way the server touches anything inside a job directory.

A job runs code the server did not write, and while it runs it owns its directory: it can
replace any file or directory there by a symbolic link (to `/etc`, to another job), a FIFO,
or swap the two back and forth while the server works.  Checking a path and then opening it
by name (`realpath`, `is_file`, then `open`) loses that race.  So everything here works on
open directory file descriptors, one component at a time:

* the staging root is the admin's and trusted, so it is opened by path; every component
  below it (the job id included) is opened relative to its parent's fd with `O_NOFOLLOW`, so
  a symlink anywhere fails the open instead of being followed;
* files are opened `O_NOFOLLOW | O_NONBLOCK` (a FIFO then opens at once instead of hanging
  the thread) and accepted only if `fstat` of the open fd says regular file; readers then
  read from that fd, which keeps naming the same file whatever happens to the name;
* writes go to a temp file created beside the target through the parent's fd and renamed
  with `os.replace(src_dir_fd=, dst_dir_fd=)`; a rename replaces a planted symlink, it never
  writes through it.  Deletes use `shutil.rmtree(name, dir_fd=)`, which never follows links.

Failures are client-facing errors: `NotFound` (404) for a missing name, `NotRegularFile`
(400) for a symlink, FIFO, socket or device where a file or directory was expected, and
`InvalidArgument` (400) for a component longer than the file system allows (NAME_MAX).
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import re
import shutil
import stat
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from pulsar import errors
from pulsar.errors import InvalidArgument, NotFound, PulsarError
from pulsar.util.logsafe import printable

log = logging.getLogger(__name__)

#: The longest file name component Linux file systems accept (bytes, not characters).
NAME_MAX = 255

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

#: How deep listings and the temp-file sweep go: a job's tree deeper than this is its own
#: business (a walk holds one fd per level, and recursion is bounded).
MAX_DEPTH = 64

#: Names of our own temp files (`pulsar.util.fileio.create_temp_beside`):
#: `.<name>.<pid>.<counter>.part|.tmp`.  Never listed, and removed at start (stale).
TEMP_NAME = re.compile(r"\..*\.[0-9]+\.[0-9]+\.(?:part|tmp)", re.DOTALL)


class NotRegularFile(InvalidArgument):
    """A symlink, FIFO, socket or device sits where a regular file or directory was expected."""

    error = "not_a_regular_file"


class Forbidden(errors.Forbidden):
    """The server may not read or write the name (a job in real-user mode took the permission away)."""


def is_temp_name(name: str) -> bool:
    """True for the names of our own upload/atomic-write temp files."""
    return TEMP_NAME.fullmatch(name) is not None


def check_component(name: str) -> str:
    """`name` if it is one usable file name component; `InvalidArgument` otherwise.

    Why here: a too-long name would otherwise surface as ENAMETOOLONG deep in an `open`,
    which is the client's mistake, not a server fault."""
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise InvalidArgument(f"{name[:64]!r} is not a file name")
    try:
        size = len(os.fsencode(name))
    except UnicodeError:
        raise InvalidArgument(f"{name[:64]!r} cannot be encoded as a file name") from None
    if size > NAME_MAX:
        raise InvalidArgument(f"name component {name[:64]!r}... is longer than {NAME_MAX} bytes")
    return name


def _kind(dir_fd: int, name: str) -> int | None:
    """The file type bits of `name` (not followed), None if it is gone."""
    try:
        return stat.S_IFMT(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return None


def _describe(kind: int | None) -> str:
    if kind == stat.S_IFLNK:
        return "a symbolic link"
    if kind == stat.S_IFIFO:
        return "a FIFO"
    if kind == stat.S_IFSOCK:
        return "a socket"
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        return "a device"
    if kind == stat.S_IFDIR:
        return "a directory"
    if kind == stat.S_IFREG:
        return "a regular file"
    return "not a regular file"


def _translate(exc: OSError, dir_fd: int, name: str, *, want: str) -> PulsarError:
    """The client-facing error for a failed open of `name` (expected to be `want`)."""
    code = exc.errno
    if code == errno.ENOENT:
        return NotFound(f"{name!r} does not exist")
    if code in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO):
        kind = _kind(dir_fd, name)
        if kind is None:
            return NotFound(f"{name!r} does not exist")
        if kind == stat.S_IFDIR and want == "file" or kind == stat.S_IFREG and want == "directory":
            return NotFound(f"{name!r} is not a {want}")
        return NotRegularFile(f"{name!r} is {_describe(kind)}, not a {want}")
    if code in (errno.EACCES, errno.EPERM):
        return Forbidden(f"{name!r} is not accessible to the server")
    if code == errno.ENAMETOOLONG:
        return InvalidArgument(f"{name[:64]!r}... is too long for the file system")
    raise exc


# -- directories ------------------------------------------------------------------------


def open_child_dir(dir_fd: int, name: str, *, create: bool = False, mode: int = 0o777) -> int:
    """Open the directory `name` inside `dir_fd` without following a symlink; with `create`,
    make it first if missing.  Returns a new fd the caller closes."""
    check_component(name)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise NotFound(f"directory {name!r} does not exist") from None
    except OSError as exc:
        raise _translate(exc, dir_fd, name, want="directory") from None
    try:
        os.mkdir(name, mode, dir_fd=dir_fd)
    except FileExistsError:
        pass  # made meanwhile: the open below checks what it is
    except OSError as exc:
        raise _translate(exc, dir_fd, name, want="directory") from None
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise _translate(exc, dir_fd, name, want="directory") from None


def open_root(root: Path) -> int:
    """Open the trusted staging root (by path: it is the admin's, symlinks allowed there)."""
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"{root} does not exist") from None


def open_subdir(dir_fd: int, parts: Sequence[str], *, create: bool = False, mode: int = 0o777) -> int:
    """A new fd of `dir_fd/parts...`, each component opened without following links (and
    created when `create`)."""
    fd = os.dup(dir_fd)
    try:
        for part in parts:
            child = open_child_dir(fd, part, create=create, mode=mode)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def opened_dir(root: Path, parts: Sequence[str], *, create: bool = False, mode: int = 0o777) -> Iterator[int]:
    """An fd of `root/parts...`, every component of `parts` opened without following links
    (created when `create`); closed on exit."""
    root_fd = open_root(root)
    try:
        fd = open_subdir(root_fd, parts, create=create, mode=mode)
    finally:
        os.close(root_fd)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def opened_parent(job_directory: Path, path: Path) -> Iterator[tuple[int, str]]:
    """(fd of the directory holding `path`, the file name of `path`) for a `path` inside
    `job_directory`; the job directory's parent (the staging root) is trusted, everything
    from the job directory down is opened without following links.  For code that is
    handed paths (the launch spec of a manager) rather than a `JobDirectory`."""
    try:
        relative = path.relative_to(job_directory).parts
    except ValueError:
        raise InvalidArgument(f"{path} is not inside {job_directory}") from None
    if not relative:
        raise InvalidArgument(f"{path} names the job directory itself, not a file in it")
    with opened_dir(job_directory.parent, [job_directory.name, *relative[:-1]]) as fd:
        yield fd, relative[-1]


def kind_of(dir_fd: int, name: str) -> int | None:
    """`stat.S_IFMT` of `name` in `dir_fd`, the link itself for a symlink; None if missing."""
    return _kind(dir_fd, name)


def size_of(dir_fd: int, name: str) -> int:
    """Size of the regular file `name` in `dir_fd` (the link itself is never followed); 0 for
    anything else or nothing (what a transfer wrote, for the metrics)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


# -- files ------------------------------------------------------------------------------


def open_regular(dir_fd: int, name: str) -> int:
    """An fd of the regular file `name` in `dir_fd`, read-only; never a symlink's target,
    never blocks on a FIFO.  The fd is in blocking mode again on return."""
    check_component(name)
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise _translate(exc, dir_fd, name, want="file") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise NotFound(f"{name!r} is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"{name!r} is {_describe(stat.S_IFMT(mode))}, not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(dir_fd: int, name: str) -> io.BufferedReader:
    """`open_regular` as a binary file object (what `open(path, "rb")` would give)."""
    handle = os.fdopen(open_regular(dir_fd, name), "rb")
    assert isinstance(handle, io.BufferedReader)
    return handle


def read_capped(dir_fd: int, name: str, limit: int) -> bytes:
    """At most `limit` bytes of the regular file `name`; b"" when it is missing or is not a
    regular file (a status document reports what is there, it does not fail for a job's mess)."""
    try:
        fd = open_regular(dir_fd, name)
    except (NotFound, NotRegularFile, Forbidden):
        return b""
    with os.fdopen(fd, "rb", buffering=0) as handle:
        return read_up_to(handle, limit)


def read_whole(dir_fd: int, name: str, maximum: int) -> bytes | None:
    """The whole regular file `name` if it has at most `maximum` bytes; None if it is
    missing, not a regular file, or larger (checked on the open fd, and the read is capped
    too, so a file that grows meanwhile cannot blow memory up)."""
    try:
        fd = open_regular(dir_fd, name)
    except (NotFound, NotRegularFile, Forbidden):
        return None
    with os.fdopen(fd, "rb", buffering=0) as handle:
        if os.fstat(fd).st_size > maximum:
            return None
        data = read_up_to(handle, maximum + 1)
    return None if len(data) > maximum else data


def read_up_to(handle: BinaryIO, limit: int) -> bytes:
    """At most `limit` bytes of `handle` (fewer only at its end), in bounded reads."""
    chunks = []
    left = limit
    while left > 0:
        chunk = handle.read(min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def open_for_writing(dir_fd: int, name: str, *, append: bool = False, mode: int = 0o666) -> int:
    """An fd to write the regular file `name` (created if missing; appended to or left as
    is, never truncated); a planted symlink or FIFO is refused, not followed or waited on."""
    check_component(name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    if append:
        flags |= os.O_APPEND
    try:
        fd = os.open(name, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        raise _translate(exc, dir_fd, name, want="file") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(f"{name!r} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def touch(dir_fd: int, name: str) -> None:
    """Create the empty regular file `name` unless it exists (contents kept)."""
    os.close(open_for_writing(dir_fd, name))


def unlink(dir_fd: int, name: str) -> None:
    """Remove the non-directory `name` (a symlink itself, never its target); no error if missing."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def remove(dir_fd: int, name: str) -> bool:
    """Remove `name` whatever it is, a directory recursively, never following a symlink.
    True if something was removed."""
    kind = _kind(dir_fd, name)
    if kind is None:
        return False
    if kind == stat.S_IFDIR:
        # rmtree with dir_fd walks by fds and refuses to follow links (Python >= 3.11).
        shutil.rmtree(name, dir_fd=dir_fd, ignore_errors=True)
    else:
        unlink(dir_fd, name)
    return True


# -- listings ---------------------------------------------------------------------------


def list_names(dir_fd: int) -> list[str]:
    """The sorted names of the regular files and directories in `dir_fd` (symlinks, FIFOs,
    sockets, devices and our temp files left out: a client would only fail to fetch them)."""
    names = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            try:
                if is_temp_name(entry.name):
                    continue
                if entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False):
                    names.append(entry.name)
            except OSError:
                continue
    return sorted(names)


def list_regular_files(dir_fd: int, separator: str = os.sep) -> list[str]:
    """Every regular file below `dir_fd`, recursively, relative and joined with `separator`.

    Symlinks, FIFOs, sockets and devices are skipped; a subdirectory is entered only through
    an `O_NOFOLLOW` open of its own, so one swapped for a symlink meanwhile is skipped too.
    Nothing deeper than `MAX_DEPTH` levels is listed (one open fd per level).
    """
    found: list[str] = []
    _scan(dir_fd, "", separator, found, MAX_DEPTH)
    return found


def _scan(dir_fd: int, prefix: str, separator: str, found: list[str], depth: int) -> None:
    files = []
    subdirectories = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    if not is_temp_name(entry.name):
                        files.append(entry.name)
                elif entry.is_dir(follow_symlinks=False):
                    subdirectories.append(entry.name)
            except OSError:
                continue
    found.extend(prefix + name for name in sorted(files))
    if depth <= 0:
        if subdirectories:
            log.warning("not listing below %s: deeper than %d levels", printable(prefix or "."), MAX_DEPTH)
        return
    for name in sorted(subdirectories):
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            continue  # gone or swapped for a link since the scan
        try:
            _scan(child, prefix + name + separator, separator, found, depth - 1)
        finally:
            os.close(child)


# -- crash leftovers --------------------------------------------------------------------


def remove_temp_files(dir_fd: int, *, recursive: bool, depth: int | None = None) -> int:
    """Delete our own temp files (`is_temp_name`) in `dir_fd` (and below, if `recursive`);
    return how many.  Why: an upload cut by a crash or `kill -9` leaves its `.part` file,
    which nothing else would ever remove.  Links are never followed."""
    depth = MAX_DEPTH if depth is None else depth
    removed = 0
    subdirectories = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirectories.append(entry.name)
                elif is_temp_name(entry.name) and entry.is_file(follow_symlinks=False):
                    unlink(dir_fd, entry.name)
                    removed += 1
            except OSError:
                continue
    if recursive and depth > 0:
        for name in subdirectories:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                removed += remove_temp_files(child, recursive=True, depth=depth - 1)
            finally:
                os.close(child)
    return removed
