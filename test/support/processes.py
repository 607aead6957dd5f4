"""Process checks for tests."""

from __future__ import annotations


def process_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by a lazy init) counts as gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            return "\nState:\tZ" not in handle.read()
    except FileNotFoundError:
        return False
