"""The one boolean parser for options: strict, so a typo stops the start instead of quietly
meaning false (`fsync_uploads: ture` once turned fsync off)."""

from __future__ import annotations

from typing import Any

TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})


def parse_bool(value: Any, key: str | None = None) -> bool:
    """A bool, 0/1, or one of true/yes/on/1 and false/no/off/0 (any case, surrounding blanks
    ignored); anything else raises ValueError naming `key` when given."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
    prefix = f"{key}: " if key else ""
    raise ValueError(f"{prefix}expected true or false, got {value!r}")
