"""Galaxy's side of the status updates in MQ tests: a callback for
`MessageQueueClientManager.ensure_has_status_update_callback` that records every document
it is handed (from the consumer thread) for the test to inspect."""

from __future__ import annotations

import threading
from typing import Any


class StatusUpdates:
    """Every status document received, in order; safe to read while the consumer appends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.received.append(body)

    def terminal(self, job_id: str) -> list[dict[str, Any]]:
        """Every terminal document of `job_id` (more than one would be a duplicate)."""
        with self._lock:
            return [b for b in self.received if b.get("job_id") == job_id and b.get("complete") == "true"]

    def final(self, job_id: str) -> dict[str, Any] | None:
        found = self.terminal(job_id)
        return found[0] if found else None

    def saw(self, job_id: str, status: str) -> bool:
        with self._lock:
            return any(b.get("job_id") == job_id and b.get("status") == status for b in self.received)
