"""Staging files to and from Pulsar; the constants Galaxy imports from here.

The implementation modules are `inputs` (input descriptions), `models` (job description,
expected and reported outputs), `up` (`submit_job`) and `down` (`finish_job`).
"""

from pulsar.shared.patterns import (
    COMMAND_VERSION_FILENAME,
    DEFAULT_DYNAMIC_COLLECTION_PATTERN,
    EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN,
)

__all__ = ["COMMAND_VERSION_FILENAME", "DEFAULT_DYNAMIC_COLLECTION_PATTERN", "EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN"]
