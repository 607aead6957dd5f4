"""Which working/metadata-directory files count as outputs by default.

`pulsar.client.staging` re-exports these under the names Galaxy imports.  Galaxy copies
the default list with `[:]` and appends its own regexes, so it is a plain list of strings.
"""

from __future__ import annotations

from pulsar.protocol import COMMAND_VERSION_FILENAME

_DEFAULT_ALTERNATIVES = [
    r"primary_.*",
    r"galaxy.json",
    r"metadata_.*",
    r"dataset_\d+\.dat",
    r"__instrument_.*",
    r"dataset_\d+_files.+",
    r"outputs_populated/.*",
    r"tool_stdout",
    r"tool_stderr",
]

#: One regex (an alternation), matched from the start of each relative name.
DEFAULT_DYNAMIC_COLLECTION_PATTERN: list[str] = ["(" + "|".join(_DEFAULT_ALTERNATIVES) + ")"]
#: With extended metadata set remotely, only the populated-outputs tree comes back.
EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN: list[str] = [r"outputs_populated/.*"]

__all__ = ["COMMAND_VERSION_FILENAME", "DEFAULT_DYNAMIC_COLLECTION_PATTERN", "EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN"]
