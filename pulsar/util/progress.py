"""Progress lines for big transfers: bytes done of the total, rate and time left, at INFO.

Why: an admin watching a Galaxy job stage a 50 GiB input wants to know it is moving and when
it will be done, without a line per block.  A transfer under `ProgressPolicy.threshold`
(64 MiB) logs nothing; a bigger one logs when it starts, at most once per
`ProgressPolicy.interval` seconds while it runs, and once when it is done.  The client
(`pulsar.client.http_api`) and the server's own transfers (`pulsar.jobs.remote_staging`, the
message-queue and remote-transfer modes) both use it, so the lines read the same.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ProgressPolicy:
    """Which transfers are reported (`threshold` bytes and up) and how often (`interval`
    seconds at most between two lines of one transfer, by `clock`)."""

    threshold: int = 64 * MIB
    interval: float = 5.0
    clock: Callable[[], float] = time.monotonic

    def start(self, logger: logging.Logger, what: str, total: int | None, done: int = 0) -> "TransferProgress":
        """A tracker for one transfer of `total` bytes (None: unknown, reported as large
        once `threshold` bytes have gone through) that has `done` bytes already."""
        return TransferProgress(self, logger, what, total, done)


class TransferProgress:
    """Reports one transfer; call it with the running byte count (cheap when nothing is due)."""

    def __init__(self, policy: ProgressPolicy, logger: logging.Logger, what: str, total: int | None, done: int):
        self.policy = policy
        self.log = logger
        self.what = what
        self.total = total
        self.clock = policy.clock
        self.started = self.clock()
        self.first = done  # bytes held before this attempt (a resumed download): not in the rate
        self.done = done
        self.reporting = False
        self.next_report = self.started + policy.interval
        if total is not None and total >= policy.threshold:
            self._begin()

    def _begin(self) -> None:
        self.reporting = True
        size = "unknown size" if self.total is None else _mib(self.total)
        resumed = f", resuming at {_mib(self.first)}" if self.first else ""
        self.log.info("%s: starting, %s%s", self.what, size, resumed)

    def __call__(self, done: int) -> None:
        self.done = done
        if not self.reporting:
            if self.total is not None or done < self.policy.threshold:
                return
            self._begin()
        now = self.clock()
        if now < self.next_report:
            return
        self.next_report = now + self.policy.interval
        rate = self._rate(now)
        if self.total:
            eta = f"{(self.total - done) / rate:.0f} s" if rate > 0 else "unknown"
            self.log.info("%s: %s of %s (%.0f%%), %.1f MiB/s, ETA %s", self.what, _mib(done), _mib(self.total),
                          100.0 * done / self.total, rate / MIB, eta)
        else:
            self.log.info("%s: %s, %.1f MiB/s", self.what, _mib(done), rate / MIB)

    def finish(self, done: int | None = None) -> None:
        """The transfer completed (`done` bytes in all)."""
        if done is not None:
            self.done = done
        if not self.reporting:
            return
        now = self.clock()
        self.log.info("%s: done, %s in %.1f s (%.1f MiB/s)", self.what, _mib(self.done), now - self.started,
                      self._rate(now) / MIB)

    def _rate(self, now: float) -> float:
        return (self.done - self.first) / max(now - self.started, 1e-6)


#: 64 MiB and up, a line every 5 s at most.
DEFAULT_PROGRESS = ProgressPolicy()


def _mib(count: int) -> str:
    return f"{count / MIB:.1f} MiB"


__all__ = ["DEFAULT_PROGRESS", "ProgressPolicy", "TransferProgress"]
