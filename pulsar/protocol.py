"""Vocabulary shared by the server and the client: path types, status strings, layout names.

Both sides import this module and nothing else from each other, so the wire contract lives
in exactly one place.  Every string here is an interface fact of the Pulsar protocol and
must not change.
"""

from __future__ import annotations

import enum

# --- job directory layout -------------------------------------------------------------

INPUTS_DIR = "inputs"
WORKING_DIR = "working"
OUTPUTS_DIR = "outputs"
CONFIGS_DIR = "configs"
TOOL_FILES_DIR = "tool_files"
METADATA_DIR = "metadata"
UNSTRUCTURED_DIR = "unstructured"
HOME_DIR = "home"
TMP_DIR = "tmp"

#: Sub-directories created by setup, in the order the reference creates them.
STANDARD_SUBDIRECTORIES = (INPUTS_DIR, WORKING_DIR, OUTPUTS_DIR, CONFIGS_DIR, TOOL_FILES_DIR, METADATA_DIR)

COMMAND_VERSION_FILENAME = "COMMAND_VERSION"
TOOL_STDOUT = "tool_stdout"
TOOL_STDERR = "tool_stderr"
JOB_STDOUT = "job_stdout"
JOB_STDERR = "job_stderr"
RETURN_CODE_FILE = "return_code"
JOB_SCRIPT = "command.sh"


# --- path types -----------------------------------------------------------------------


class PathType(str, enum.Enum):
    """The `type` argument of upload, path lookup and download requests."""

    INPUT = "input"
    UNSTRUCTURED = "unstructured"
    CONFIG = "config"
    TOOL = "tool"
    JOBDIR = "jobdir"
    WORKDIR = "workdir"
    METADATA = "metadata"
    OUTPUT = "output"
    OUTPUT_WORKDIR = "output_workdir"
    OUTPUT_METADATA = "output_metadata"
    OUTPUT_JOBDIR = "output_jobdir"

    def __str__(self) -> str:  # so f-strings and URLs carry the bare value
        return self.value


#: Where each path type lands, relative to the job directory ("" is the job directory itself).
PATH_TYPE_DIRECTORIES: dict[PathType, str] = {
    PathType.INPUT: INPUTS_DIR,
    PathType.UNSTRUCTURED: UNSTRUCTURED_DIR,
    PathType.CONFIG: CONFIGS_DIR,
    PathType.TOOL: TOOL_FILES_DIR,
    PathType.JOBDIR: "",
    PathType.WORKDIR: WORKING_DIR,
    PathType.METADATA: METADATA_DIR,
    PathType.OUTPUT: OUTPUTS_DIR,
    PathType.OUTPUT_WORKDIR: WORKING_DIR,
    PathType.OUTPUT_METADATA: METADATA_DIR,
    PathType.OUTPUT_JOBDIR: "",
}

#: Types whose names may contain sub-directories; all others are flattened to the basename.
NESTED_PATH_TYPES = frozenset(
    {
        PathType.INPUT,
        PathType.UNSTRUCTURED,
        PathType.TOOL,
        PathType.METADATA,
        PathType.OUTPUT,
        PathType.OUTPUT_WORKDIR,
        PathType.OUTPUT_METADATA,
    }
)

#: Types the client downloads (and the server's path lookup treats without creating directories).
OUTPUT_PATH_TYPES = frozenset(
    {PathType.OUTPUT, PathType.OUTPUT_WORKDIR, PathType.OUTPUT_METADATA, PathType.OUTPUT_JOBDIR}
)

#: The reference's `*defaults*` token: every type except `unstructured`.
DEFAULT_PATH_TYPES = tuple(t for t in PathType if t is not PathType.UNSTRUCTURED)
#: The `*any*` token.
ALL_PATH_TYPES = tuple(PathType)


# --- job status -----------------------------------------------------------------------


class Status(str, enum.Enum):
    """Status strings as they appear in the `status` key of a status document."""

    PREPROCESSING = "preprocessing"
    QUEUED = "queued"
    RUNNING = "running"
    POSTPROCESSING = "postprocessing"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    FAILED = "failed"
    LOST = "lost"

    def __str__(self) -> str:
        return self.value

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({Status.COMPLETE, Status.CANCELLED, Status.FAILED, Status.LOST})

#: Default cap on each stdout/stderr stream returned in a terminal status document.
DEFAULT_MAXIMUM_STREAM_SIZE = 1024 * 1024

DEFAULT_MANAGER_NAME = "_default_"
DEFAULT_PORT = 8913
DEFAULT_HOST = "127.0.0.1"
