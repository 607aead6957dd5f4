"""The job directory: its layout, and names confined to it.

Every file name that arrives over the network is turned into path components here and
nowhere else, and every read, listing, write and delete below `<staging root>/<job id>` goes
through `pulsar.jobs.jobfs` (directory fds, `O_NOFOLLOW`, regular files only): the job owns
its directory while it runs and may plant symlinks or FIFOs anywhere in it, so no path in
it is ever resolved by name.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import logging
import os
import stat
from pathlib import Path
from typing import Iterator, Sequence, overload

from pulsar import protocol
from pulsar.errors import InvalidArgument, NotFound
from pulsar.jobs import jobfs
from pulsar.jobs.ids import validate_job_id
from pulsar.protocol import PathType
from pulsar.util.fileio import Readable, StreamResult, atomic_write_bytes, stream_to_file

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 4096
#: `<staging root>/.private/<job id>/`: the server's own files of a job, out of the job's reach
#: (never a job id: ids start with a letter or digit).
PRIVATE_DIR = ".private"


def parse_path_type(value: str | None, default: PathType | None = None) -> PathType:
    if value is None or value == "":
        if default is None:
            raise InvalidArgument("type is required")
        return default
    try:
        return PathType(value)
    except ValueError:
        raise InvalidArgument(f"unknown file type {value!r}; expected one of {[t.value for t in PathType]}") from None


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name == "":
        raise InvalidArgument("name is required")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"name is longer than {MAX_NAME_LENGTH} characters")
    if "\x00" in name or any(ord(c) < 32 for c in name):
        raise InvalidArgument("name contains a NUL or control character")
    return name


def relative_parts(name: str, nested: bool) -> list[str]:
    """Split a client-supplied name into path components that cannot climb out.

    Nested names are read as POSIX relative paths (a leading "/" is dropped, "a/../b" is
    "b"); for flat types only the last component counts.  A name that would climb above
    its directory is rejected rather than silently clamped.
    """
    name = _check_name(name)
    if not nested:
        last = name.rsplit("/", 1)[-1]
        if last in ("", ".", ".."):
            raise InvalidArgument(f"name {name!r} does not name a file")
        return [jobfs.check_component(last)]
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidArgument(f"name {name!r} points outside its directory")
            parts.pop()
        else:
            parts.append(jobfs.check_component(part))
    if not parts:
        raise InvalidArgument(f"name {name!r} does not name a file")
    return parts


class JobDirectory:
    """One job's directory, `<staging root>/<job id>`.

    The `Path` properties are for what the server tells others (the setup document, the
    launch spec); the methods are how the server itself reads and writes inside it.
    """

    def __init__(self, staging_root: Path, job_id: str):
        self.job_id = validate_job_id(job_id)
        self.staging_root = staging_root
        self.path = staging_root / job_id

    # -- layout ------------------------------------------------------------------------

    def sub(self, name: str) -> Path:
        return self.path / name if name else self.path

    @property
    def working(self) -> Path:
        return self.path / protocol.WORKING_DIR

    @property
    def metadata(self) -> Path:
        return self.path / protocol.METADATA_DIR

    @property
    def outputs(self) -> Path:
        return self.path / protocol.OUTPUTS_DIR

    def exists(self) -> bool:
        """True if the job directory is a real directory (a symlink in its place is not)."""
        try:
            return stat.S_ISDIR(os.lstat(self.path).st_mode)
        except OSError:
            return False

    def create(self, mode: int | None = None) -> None:
        """Create the directory and the standard sub-directories (idempotent).  One that a
        job replaced by a symlink, FIFO or file is replaced by a fresh directory (the link
        goes, its target is never touched); if it is swapped again meanwhile, `InvalidArgument`."""
        with jobfs.opened_dir(self.staging_root, []) as root:
            job_fd = self._make_dir(root, self.job_id, mode)
            try:
                for sub in protocol.STANDARD_SUBDIRECTORIES:
                    os.close(self._make_dir(job_fd, sub, mode))
            finally:
                os.close(job_fd)

    @staticmethod
    def _make_dir(parent_fd: int, name: str, mode: int | None) -> int:
        kind = jobfs.kind_of(parent_fd, name)
        if kind is not None and kind != stat.S_IFDIR:
            # A job replaced the directory by a symlink (or a FIFO, a file): setting up
            # again starts it afresh.  Unlinking removes the link itself, never its target.
            log.warning("%s in the staging directory was not a directory; replaced by a fresh one", name)
            jobfs.unlink(parent_fd, name)
        try:
            os.mkdir(name, 0o777 if mode is None else mode, dir_fd=parent_fd)
            created = True
        except FileExistsError:
            created = False
        try:
            fd = jobfs.open_child_dir(parent_fd, name)
        except NotFound:
            raise InvalidArgument(f"{name!r} exists and is not a directory") from None
        if created and mode is not None:
            os.chmod(fd, mode)  # exactly `mode`, whatever the umask
        return fd

    def layout(self) -> dict[str, str]:
        """The absolute paths the setup reply advertises."""
        return {
            "job_directory": str(self.path),
            "working_directory": str(self.working),
            "metadata_directory": str(self.metadata),
            "outputs_directory": str(self.outputs),
            "configs_directory": str(self.sub(protocol.CONFIGS_DIR)),
            "tools_directory": str(self.sub(protocol.TOOL_FILES_DIR)),
            "inputs_directory": str(self.sub(protocol.INPUTS_DIR)),
            "unstructured_files_directory": str(self.sub(protocol.UNSTRUCTURED_DIR)),
        }

    # -- opening -----------------------------------------------------------------------

    @contextlib.contextmanager
    def opened(self, *parts: str, create: bool = False) -> Iterator[int]:
        """An fd of the job directory, or of the directory `parts` below it, every component
        opened without following a symlink (created with `create`).  `NotFound` if missing,
        `jobfs.NotRegularFile` if a component is a symlink or not a directory."""
        with jobfs.opened_dir(self.staging_root, [self.job_id, *(p for p in parts if p)], create=create) as fd:
            yield fd

    def _split(self, path_type: PathType, name: str) -> tuple[list[str], str]:
        """(directories below the job directory, file name) of a client's (type, name)."""
        parts = relative_parts(name, nested=path_type in protocol.NESTED_PATH_TYPES)
        if jobfs.is_temp_name(parts[-1]):
            # removed at start as crash leftovers, so they can be neither inputs nor outputs
            raise InvalidArgument(f"name {name!r} has the form of the server's temp files (.NAME.PID.N.part/.tmp)")
        base = protocol.PATH_TYPE_DIRECTORIES[path_type]
        return ([base] if base else []) + parts[:-1], parts[-1]

    @contextlib.contextmanager
    def writable(self, path_type: PathType, name: str) -> Iterator[tuple[int, str, Path]]:
        """(parent directory fd, file name, path to report) for writing (type, name), parents
        created one checked component at a time."""
        directories, leaf = self._split(path_type, name)
        base = directories[:1] if protocol.PATH_TYPE_DIRECTORIES[path_type] else []
        rest = directories[len(base):]
        create_base = path_type is PathType.UNSTRUCTURED
        try:
            with jobfs.opened_dir(self.staging_root, [self.job_id]) as fd:
                with contextlib.ExitStack() as stack:
                    base_fd = jobfs.open_subdir(fd, base, create=create_base)
                    stack.callback(os.close, base_fd)
                    parent = jobfs.open_subdir(base_fd, rest, create=True)
                    stack.callback(os.close, parent)
                    if jobfs.kind_of(parent, leaf) == stat.S_IFDIR:
                        raise InvalidArgument(f"name {name!r} is a directory")
                    yield parent, leaf, self.path.joinpath(*directories, leaf)
        except NotFound:
            raise NotFound(f"job {self.job_id!r} has not been set up") from None

    def upload_target(self, path_type: PathType, name: str) -> Path:
        """Where an uploaded file of this type and name goes (parents created)."""
        with self.writable(path_type, name) as (_, _, path):
            return path

    def receive(
        self, path_type: PathType, name: str, body: Readable, length: int | None, *, fsync: bool = True
    ) -> tuple[Path, StreamResult]:
        """Stream `body` into (type, name): the file appears, by rename through the parent's
        fd, only when complete."""
        with self.writable(path_type, name) as (fd, leaf, path):
            return path, stream_to_file(body, leaf, length=length, fsync=fsync, dir_fd=fd)

    def touch(self, path_type: PathType, name: str) -> None:
        """Create (type, name) empty unless it exists (`touch_outputs`)."""
        with self.writable(path_type, name) as (fd, leaf, _):
            jobfs.touch(fd, leaf)

    def lookup_path(self, path_type: PathType, name: str) -> Path:
        """The `files/path` answer: outputs are only computed, inputs as for upload."""
        if path_type in protocol.OUTPUT_PATH_TYPES:
            directories, leaf = self._split(path_type, name)
            if path_type is PathType.OUTPUT_WORKDIR and any(c in leaf for c in "*?["):
                leaf = self._first_match(directories, leaf, name)
            return self.path.joinpath(*directories, leaf)
        return self.upload_target(path_type, name)

    def _first_match(self, directories: Sequence[str], pattern: str, name: str) -> str:
        """The first (sorted) regular file in `directories` matching the glob `pattern`;
        hidden files only for a pattern that starts with a dot, as `glob` does."""
        try:
            with self.opened(*directories) as fd:
                names = sorted(os.listdir(fd))
                matches = [
                    n for n in names
                    if fnmatch.fnmatchcase(n, pattern) and (pattern.startswith(".") or not n.startswith("."))
                    and not jobfs.is_temp_name(n) and jobfs.kind_of(fd, n) == stat.S_IFREG
                ]
        except (NotFound, jobfs.NotRegularFile):
            matches = []
        if not matches:
            raise NotFound(f"no file in the working directory matches {name!r}")
        return matches[0]

    def open_output(self, path_type: PathType, name: str) -> io.BufferedReader:
        """The existing regular file (type, name), open for reading: `NotFound` if there is
        none (or it is a directory), `jobfs.NotRegularFile` (400) for a symlink, FIFO, socket
        or device at the name or on the way to it.  Read from the returned file: the name
        may point elsewhere a moment later."""
        if path_type not in (PathType.OUTPUT_WORKDIR, PathType.OUTPUT_METADATA, PathType.OUTPUT_JOBDIR):
            path_type = PathType.OUTPUT
        directories, leaf = self._split(path_type, name)
        if not self.exists():
            raise NotFound(f"job {self.job_id!r} does not exist")
        with self.opened(*directories) as fd:
            return jobfs.open_file(fd, leaf)

    # -- the server's own files ----------------------------------------------------------

    @overload
    def read_capped(self, parts: Sequence[str], limit: int) -> bytes: ...

    @overload
    def read_capped(self, parts: Sequence[str], limit: int, *, missing: None) -> bytes | None: ...

    def read_capped(self, parts: Sequence[str], limit: int, *, missing: bytes | None = b"") -> bytes | None:
        """At most `limit` bytes of the regular file `parts` below the job directory;
        `missing` if it is missing or anything but a regular file reached without a symlink."""
        try:
            with self.opened(*parts[:-1]) as fd:
                handle = jobfs.open_file(fd, parts[-1])
        except (NotFound, jobfs.NotRegularFile, jobfs.Forbidden):
            return missing
        with handle:
            return jobfs.read_up_to(handle, limit)

    def read_whole(self, parts: Sequence[str], maximum: int) -> bytes | None:
        """The whole regular file `parts` if it exists and has at most `maximum` bytes."""
        try:
            with self.opened(*parts[:-1]) as fd:
                return jobfs.read_whole(fd, parts[-1], maximum)
        except (NotFound, jobfs.NotRegularFile, jobfs.Forbidden):
            return None

    def write_atomic(self, parts: Sequence[str], data: bytes, *, fsync: bool = True, mode: int | None = None) -> None:
        """Replace the file `parts` below the job directory (its directory must exist)."""
        with self.opened(*parts[:-1]) as fd:
            atomic_write_bytes(parts[-1], data, fsync=fsync, mode=mode, dir_fd=fd)

    def remove_entry(self, parts: Sequence[str]) -> None:
        """Remove `parts` below the job directory, recursively, never following a symlink."""
        try:
            with self.opened(*parts[:-1]) as fd:
                jobfs.remove(fd, parts[-1])
        except (NotFound, jobfs.NotRegularFile):
            pass

    def make_subdirectory(self, name: str) -> None:
        """Create the directory `name` in the job directory if missing."""
        with self.opened() as fd:
            os.close(jobfs.open_child_dir(fd, name, create=True))

    # -- listings ----------------------------------------------------------------------

    def list_files(self, sub: str, separator: str = os.sep) -> list[str]:
        """Every regular file below `sub`, recursively, relative and joined with `separator`.

        Symlinks, FIFOs, sockets and devices are not listed and symlinked directories are
        not entered (a `sub` that is itself a symlink lists nothing), so a job cannot make
        the server walk or report the rest of the disk."""
        try:
            with self.opened(sub) as fd:
                return jobfs.list_regular_files(fd, separator)
        except (NotFound, jobfs.NotRegularFile, jobfs.Forbidden):
            return []

    def list_top(self) -> list[str]:
        try:
            with self.opened() as fd:
                return jobfs.list_names(fd)
        except (NotFound, jobfs.NotRegularFile, jobfs.Forbidden):
            return []

    # -- the server's private files of this job ----------------------------------------
    # What the server acts on later (the accepted request, which may carry ssh keys and
    # Galaxy URLs) is kept outside the job directory: a job owns its directory (with the
    # chown helper, as another user), so it could read it or rewrite what the server does
    # after the job ends.

    def _private(self, create: bool = False) -> contextlib.AbstractContextManager[int]:
        return jobfs.opened_dir(self.staging_root, [PRIVATE_DIR, self.job_id], create=create, mode=0o700)

    def write_private(self, name: str, data: bytes) -> None:
        """Replace the server-only file `name` of this job (mode 0600, in a 0700 directory)."""
        with self._private(create=True) as fd:
            atomic_write_bytes(name, data, mode=0o600, dir_fd=fd)

    def read_private(self, name: str, maximum: int) -> bytes | None:
        """The server-only file `name` of this job, or None."""
        try:
            with self._private() as fd:
                return jobfs.read_whole(fd, name, maximum)
        except (NotFound, jobfs.NotRegularFile, jobfs.Forbidden):
            return None

    def remove_private(self) -> None:
        try:
            with jobfs.opened_dir(self.staging_root, [PRIVATE_DIR]) as fd:
                jobfs.remove(fd, self.job_id)
        except NotFound:
            pass

    # -- removal -----------------------------------------------------------------------

    def remove(self) -> bool:
        """Delete the job directory and its private files; True if the directory was
        removed.  Never follows symlinks."""
        self.remove_private()
        try:
            with jobfs.opened_dir(self.staging_root, []) as root:
                return jobfs.remove(root, self.job_id)
        except NotFound:
            return False

    def remove_stale_temp_files(self) -> int:
        """Delete the temp files of uploads and writes cut short by a crash; return how many.
        Only our own temp-name pattern, only where uploads and the server write."""
        removed = 0
        try:
            with self.opened() as fd:
                removed += jobfs.remove_temp_files(fd, recursive=False)
                for sub in (*protocol.STANDARD_SUBDIRECTORIES, protocol.UNSTRUCTURED_DIR):
                    try:
                        child = jobfs.open_subdir(fd, [sub])
                    except (NotFound, jobfs.NotRegularFile, jobfs.Forbidden):
                        continue
                    try:
                        removed += jobfs.remove_temp_files(child, recursive=True)
                    finally:
                        os.close(child)
        except (NotFound, jobfs.NotRegularFile, jobfs.Forbidden):
            pass
        return removed


def remove_stale_temp_files(staging_root: Path) -> int:
    """Sweep every job directory under `staging_root` for the temp files of uploads and
    writes cut short by a crash (`JobDirectory.remove_stale_temp_files`); how many went."""
    try:
        names = os.listdir(staging_root)
    except OSError:
        return 0
    removed = 0
    for name in names:
        try:
            directory = JobDirectory(staging_root, name)
        except InvalidArgument:
            continue  # not a job (the trash, a stray file)
        removed += directory.remove_stale_temp_files()
    return removed
