"""The output-collection plan (spec 4.6): which remote files go back to which local paths.

The client runs this plan to download outputs; the server runs the same plan for outputs
whose action is remote (`remote_transfer`, `remote_copy`).  Both sides feed it the
client's `ClientOutputs.to_dict()` and the server's directory listings, so they agree on
every file.  The plan is pure: no I/O, no knowledge of actions.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
from typing import Any, Iterable, Mapping, Sequence

from pulsar.protocol import COMMAND_VERSION_FILENAME, PathType
from pulsar.shared.patterns import DEFAULT_DYNAMIC_COLLECTION_PATTERN


@dataclasses.dataclass(frozen=True)
class PlannedFetch:
    """Fetch remote `name` (relative, remote separator) of `output_type` into `local_path`.

    `tolerate_missing`: a missing file is not a failure (explicit working-dir outputs and
    dynamic working-dir candidates).
    """

    name: str
    output_type: str
    local_path: str
    tolerate_missing: bool = False


@dataclasses.dataclass(frozen=True)
class RemoteListing:
    """What the server reports it has (the `*_contents` keys of a terminal status)."""

    working_directory_contents: Sequence[str] = ()
    output_directory_contents: Sequence[str] = ()
    metadata_directory_contents: Sequence[str] = ()
    job_directory_contents: Sequence[str] = ()
    separator: str = os.sep
    realized_dynamic_file_sources: Sequence[Mapping[str, Any]] = ()
    working_directory: str | None = None

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> "RemoteListing":
        properties = status.get("system_properties") or {}
        separator = properties.get("separator") or status.get("path_separator") or os.sep
        return cls(
            working_directory_contents=list(status.get("working_directory_contents") or []),
            output_directory_contents=list(status.get("outputs_directory_contents") or []),
            metadata_directory_contents=list(status.get("metadata_directory_contents") or []),
            job_directory_contents=list(status.get("job_directory_contents") or []),
            separator=separator,
            realized_dynamic_file_sources=list(status.get("realized_dynamic_file_sources") or []),
            working_directory=status.get("working_directory"),
        )


def _local_join(base: str, name: str, separator: str) -> str:
    return os.path.join(base, *[p for p in name.split(separator) if p])


def _strip_dat(basename: str) -> str:
    return basename[: -len(".dat")] if basename.endswith(".dat") else basename


class _DynamicMatcher:
    """Decides whether a listed name is a dynamic output the client wants."""

    def __init__(self, client_outputs: Mapping[str, Any], listing: RemoteListing):
        patterns = client_outputs.get("dynamic_outputs")
        if patterns is None:
            patterns = DEFAULT_DYNAMIC_COLLECTION_PATTERN
        self.patterns = [re.compile(p) for p in patterns]
        self.collectors = list(client_outputs.get("dataset_collector_descriptions") or [])
        self.separator = listing.separator
        self.referenced: set[str] = set()
        self.extra_prefixes: set[str] = set()
        for source in listing.realized_dynamic_file_sources:
            self._read_source(source, listing)

    def _normalize(self, name: str, listing: RemoteListing) -> str:
        sep = self.separator
        working = listing.working_directory
        if working and name.startswith(working.rstrip(sep) + sep):
            name = name[len(working.rstrip(sep) + sep):]
        while name.startswith("." + sep):
            name = name[2:]
        return name

    def _read_source(self, source: Mapping[str, Any], listing: RemoteListing) -> None:
        if source.get("path"):
            self.referenced.add(self._normalize(str(source["path"]), listing))
        contents = source.get("contents") or ""
        documents: list[Any] = []
        if source.get("type") == "legacy_galaxy":
            lines = contents.splitlines()
        else:
            lines = [contents]
        for line in lines:
            if line.strip():
                try:
                    documents.append(json.loads(line))
                except ValueError:
                    continue
        for document in documents:
            for key, value in _walk_items(document):
                if key == "filename" and isinstance(value, str):
                    self.referenced.add(self._normalize(value, listing))
                elif key == "extra_files" and isinstance(value, str):
                    self.extra_prefixes.add(self._normalize(value, listing))

    def __call__(self, name: str) -> bool:
        if any(p.match(name) for p in self.patterns):
            return True
        if name in self.referenced or any(name.startswith(p) for p in self.extra_prefixes):
            return True
        return any(_collector_matches(c, name, self.separator) for c in self.collectors)


def _walk_items(value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield key, item
            yield from _walk_items(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_items(item)


def _collector_matches(description: Mapping[str, Any], name: str, separator: str) -> bool:
    """Galaxy's discover-by-pattern rule: directory, recursion, relative-path matching."""
    if description.get("discover_via", "pattern") != "pattern":
        return False
    directory = description.get("directory")
    remainder = name
    if directory:
        prefix = directory.strip(separator).replace("/", separator) + separator
        if not name.startswith(prefix):
            return False
        remainder = name[len(prefix):]
    if not description.get("recurse") and separator in remainder:
        return False
    pattern = description.get("pattern") or ""
    if pattern.startswith("__") and pattern.endswith("__"):
        return True  # a named Galaxy pattern we do not expand: collecting too much is harmless
    subject = remainder if description.get("match_relative_path") else remainder.rsplit(separator, 1)[-1]
    try:
        return re.match(pattern, subject) is not None
    except re.error:
        return False


def plan_output_collection(client_outputs: Mapping[str, Any], listing: RemoteListing) -> list[PlannedFetch]:
    """The ordered list of fetches (spec 4.6), each (remote name, type) at most once."""
    sep = listing.separator
    plan: list[PlannedFetch] = []
    seen: set[tuple[str, str]] = set()

    def add(name: str, output_type: PathType, local_path: str, tolerate: bool = False) -> None:
        key = (name, output_type.value)
        if key not in seen:
            seen.add(key)
            plan.append(PlannedFetch(name, output_type.value, local_path, tolerate))

    working_directory = client_outputs.get("working_directory")
    output_files = list(client_outputs.get("output_files") or [])
    working_listing = list(listing.working_directory_contents)

    # 1. explicit working-directory outputs (from_work_dir)
    for source, destination in client_outputs.get("work_dir_outputs") or []:
        name = os.path.relpath(source, working_directory) if working_directory else os.path.basename(source)
        name = name.replace(os.sep, sep)
        children = [entry for entry in working_listing if entry.startswith(name + sep)]
        if children:
            for entry in children:
                add(entry, PathType.OUTPUT_WORKDIR, _local_join(destination, entry[len(name) + 1:], sep), True)
        elif name in working_listing:
            add(name, PathType.OUTPUT_WORKDIR, destination, True)
        else:
            matches = [entry for entry in working_listing if fnmatch.fnmatchcase(entry, name)]
            add(matches[0] if matches else name, PathType.OUTPUT_WORKDIR, destination, True)
        if destination in output_files:
            output_files.remove(destination)

    # 2. declared outputs and their extra files
    outputs_listing = list(listing.output_directory_contents)
    for output in output_files:
        basename = os.path.basename(output)
        if basename in outputs_listing:
            add(basename, PathType.OUTPUT, output)
        extras_prefix = _strip_dat(basename) + "_files" + sep
        for entry in outputs_listing:
            if entry.startswith(extras_prefix):
                add(entry, PathType.OUTPUT, _local_join(os.path.dirname(output), entry, sep))

    # 3. the version file
    version_file = client_outputs.get("version_file")
    if version_file and COMMAND_VERSION_FILENAME in outputs_listing:
        add(COMMAND_VERSION_FILENAME, PathType.OUTPUT, version_file)

    matcher = _DynamicMatcher(client_outputs, listing)
    # 4. other working-directory files
    if working_directory:
        for entry in working_listing:
            if matcher(entry):
                add(entry, PathType.OUTPUT_WORKDIR, _local_join(working_directory, entry, sep), True)
    # 5. metadata-directory files
    metadata_directory = client_outputs.get("metadata_directory")
    if metadata_directory:
        for entry in listing.metadata_directory_contents:
            if matcher(entry):
                add(entry, PathType.OUTPUT_METADATA, _local_join(metadata_directory, entry, sep))
    # 6. job-directory files (only when the client names a job directory)
    job_directory = client_outputs.get("job_directory")
    if job_directory:
        for entry in listing.job_directory_contents:
            if matcher(entry):
                add(entry, PathType.OUTPUT_JOBDIR, _local_join(job_directory, entry, sep))
    return plan

