"""Job identifiers: validation (they become directory names) and assignment."""

from __future__ import annotations

import re
import uuid

from pulsar.errors import InvalidArgument

MAX_JOB_ID_LENGTH = 128
# Must start with a letter or digit (so never ".", ".." or a hidden name) and contain only
# characters that are safe in a path segment and a URL.  Galaxy sends integers, "<int>_<int>"
# for task splits, or 32-character hex UUIDs; all fit.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")

ASSIGN_IDS_CHOICES = ("galaxy", "uuid", "none")


def validate_job_id(job_id: object) -> str:
    """Return `job_id` if it is safe to use as a directory name, else raise `InvalidArgument`."""
    if not isinstance(job_id, str) or not job_id:
        raise InvalidArgument("job_id is required")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise InvalidArgument(f"job_id is longer than {MAX_JOB_ID_LENGTH} characters")
    if not _JOB_ID.fullmatch(job_id):
        raise InvalidArgument(
            "job_id may contain only letters, digits, '_', '-' and '.', and must start with a letter or digit"
        )
    return job_id


def assign_job_id(requested: str, assign_ids: str) -> str:
    """Map the client's id to the server's: pass it through (`galaxy`) or a fresh `uuid`."""
    if assign_ids == "uuid":
        return uuid.uuid4().hex
    return validate_job_id(requested)
