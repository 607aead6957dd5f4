"""The job directory: its layout, and names confined to it.

Every file name that arrives over the network is turned into a path here and nowhere else.
A name is accepted only if, after resolving symlinks, it stays inside the directory of its
path type, so nothing outside the staging root is ever read, written or deleted.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path
from typing import Iterator

from pulsar import protocol
from pulsar.errors import InvalidArgument, NotFound
from pulsar.jobs.ids import validate_job_id
from pulsar.protocol import PathType

MAX_NAME_LENGTH = 4096


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
        return [last]
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidArgument(f"name {name!r} points outside its directory")
            parts.pop()
        else:
            parts.append(part)
    if not parts:
        raise InvalidArgument(f"name {name!r} does not name a file")
    return parts


def is_within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


class JobDirectory:
    """One job's directory, `<staging root>/<job id>`."""

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
        return self.path.is_dir()

    def create(self, mode: int | None = None) -> None:
        """Create the directory and the standard sub-directories (idempotent)."""
        self._check_job_path()
        for sub in ("",) + protocol.STANDARD_SUBDIRECTORIES:
            target = self.sub(sub)
            try:
                target.mkdir(mode=mode if mode is not None else 0o777)
            except FileExistsError:
                if not target.is_dir() or target.is_symlink():
                    raise InvalidArgument(f"{target} exists and is not a directory") from None
            else:
                if mode is not None:
                    os.chmod(target, mode)

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

    # -- confined paths ----------------------------------------------------------------

    def _check_job_path(self) -> None:
        """The job directory itself must be a real directory directly under the staging root."""
        if self.path.is_symlink():
            raise InvalidArgument(f"job directory of {self.job_id!r} is a symbolic link")

    def _resolve(self, path_type: PathType, name: str, *, create_parents: bool) -> Path:
        self._check_job_path()
        base = self.sub(protocol.PATH_TYPE_DIRECTORIES[path_type])
        parts = relative_parts(name, nested=path_type in protocol.NESTED_PATH_TYPES)
        candidate = base.joinpath(*parts)
        if create_parents and not candidate.parent.exists():
            if not base.is_dir():
                if path_type is PathType.UNSTRUCTURED and self.path.is_dir():
                    base.mkdir(exist_ok=True)
                else:
                    raise NotFound(f"job {self.job_id!r} has not been set up")
            # Create parents one level at a time, each checked, so a planted symlink in the
            # middle of the name cannot redirect the creation.
            current = base
            for part in parts[:-1]:
                current = current / part
                if not current.exists():
                    current.mkdir()
        self._confine(candidate, base, name)
        return candidate

    def _confine(self, candidate: Path, base: Path, name: str) -> None:
        real_base = os.path.realpath(base)
        real_root = os.path.realpath(self.path)
        if not is_within(real_base, real_root):
            raise InvalidArgument(f"{base.name} directory of job {self.job_id!r} points outside the job directory")
        real = os.path.realpath(candidate)
        if not is_within(real, real_base) or real == real_base:
            raise InvalidArgument(f"name {name!r} points outside its directory")

    def upload_target(self, path_type: PathType, name: str) -> Path:
        """Where an uploaded file of this type and name goes (parents created)."""
        target = self._resolve(path_type, name, create_parents=True)
        if target.is_dir() and not target.is_symlink():
            raise InvalidArgument(f"name {name!r} is a directory")
        return target

    def lookup_path(self, path_type: PathType, name: str) -> Path:
        """The `files/path` answer: outputs are only computed, inputs as for upload."""
        if path_type in protocol.OUTPUT_PATH_TYPES:
            target = self._resolve(path_type, name, create_parents=False)
            if path_type is PathType.OUTPUT_WORKDIR and any(c in name for c in "*?"):
                matches = sorted(glob.glob(glob.escape(str(target.parent)) + "/" + target.name))
                if not matches:
                    raise NotFound(f"no file in the working directory matches {name!r}")
                target = Path(matches[0])
                self._confine(target, self.working, name)
            return target
        return self.upload_target(path_type, name)

    def download_source(self, path_type: PathType, name: str) -> Path:
        """An existing regular file to send back; `NotFound` if there is none."""
        if path_type is PathType.OUTPUT_WORKDIR:
            base_type = PathType.OUTPUT_WORKDIR
        elif path_type is PathType.OUTPUT_METADATA:
            base_type = PathType.OUTPUT_METADATA
        elif path_type is PathType.OUTPUT_JOBDIR:
            base_type = PathType.OUTPUT_JOBDIR
        else:
            base_type = PathType.OUTPUT
        if not self.path.is_dir():
            raise NotFound(f"job {self.job_id!r} does not exist")
        source = self._resolve(base_type, name, create_parents=False)
        real = Path(os.path.realpath(source))
        if not real.is_file():
            raise NotFound(f"{base_type.value} file {name!r} does not exist")
        return real

    # -- listings ----------------------------------------------------------------------

    def list_files(self, sub: str, separator: str = os.sep) -> list[str]:
        """Every regular file below `sub`, recursively, relative and joined with `separator`.

        Symlinks are reported only when they point at a file inside the job directory;
        directory symlinks are not followed, so a job cannot make the server walk the disk.
        """
        base = self.sub(sub)
        real_root = os.path.realpath(self.path)
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = os.path.relpath(dirpath, base)
            prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, separator) + separator
            for filename in filenames:
                full = os.path.join(dirpath, filename)
                if os.path.islink(full):
                    if not (os.path.isfile(full) and is_within(os.path.realpath(full), real_root)):
                        continue
                found.append(prefix + filename)
            dirnames.sort()
        return found

    def list_top(self) -> list[str]:
        try:
            return sorted(os.listdir(self.path))
        except FileNotFoundError:
            return []

    def iter_state_files(self) -> Iterator[Path]:
        yield from (p for p in self.path.iterdir() if p.is_file())

    # -- removal -----------------------------------------------------------------------

    def remove(self) -> bool:
        """Delete the job directory; True if something was removed.  Never follows symlinks."""
        real_root = os.path.realpath(self.staging_root)
        if self.path.is_symlink():
            self.path.unlink()
            return True
        if not self.path.is_dir():
            return False
        if os.path.dirname(os.path.realpath(self.path)) != real_root:
            raise InvalidArgument(f"job directory of {self.job_id!r} is not inside the staging directory")
        shutil.rmtree(self.path, ignore_errors=True)
        return True
