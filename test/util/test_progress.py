"""Progress lines of big transfers (`pulsar.util.progress`), on a clock the test turns."""

from __future__ import annotations

import logging

import pytest

from pulsar.util.progress import MIB, ProgressPolicy

log = logging.getLogger("test.progress")


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == log.name and r.levelno == logging.INFO]


def test_small_transfer_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO)
    progress = ProgressPolicy(interval=1.0, clock=clock).start(log, "upload small", 64 * MIB - 1)
    for done in range(0, 64 * MIB, MIB):
        clock.now += 10
        progress(done)
    progress.finish(64 * MIB - 1)
    assert lines(caplog) == []


def test_big_transfer_reports_bytes_rate_and_eta_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO)
    progress = ProgressPolicy(interval=5.0, clock=clock).start(log, "download big", 100 * MIB)
    for step in range(1, 101):  # 1 MiB per second for 100 s
        clock.now += 1
        progress(step * MIB)
    progress.finish(100 * MIB)
    got = lines(caplog)
    assert got[0] == "download big: starting, 100.0 MiB"
    assert got[1] == "download big: 5.0 MiB of 100.0 MiB (5%), 1.0 MiB/s, ETA 95 s"
    assert got[-1] == "download big: done, 100.0 MiB in 100.0 s (1.0 MiB/s)"
    assert len(got) == 2 + 100 // 5  # start, one per 5 s, done


def test_unknown_size_is_reported_once_past_the_threshold(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO)
    progress = ProgressPolicy(threshold=10 * MIB, interval=2.0, clock=clock).start(log, "fetch x", None)
    for step in range(1, 13):
        clock.now += 1
        progress(step * MIB)
    progress.finish()
    got = lines(caplog)
    assert got[0] == "fetch x: starting, unknown size"
    assert got[1:] == ["fetch x: 10.0 MiB, 1.0 MiB/s", "fetch x: 12.0 MiB, 1.0 MiB/s",
                       "fetch x: done, 12.0 MiB in 12.0 s (1.0 MiB/s)"]


def test_resumed_transfer_counts_only_new_bytes_in_its_rate(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO)
    progress = ProgressPolicy(interval=1.0, clock=clock).start(log, "download r", 100 * MIB, done=80 * MIB)
    clock.now += 10
    progress(100 * MIB)
    got = lines(caplog)
    assert got == ["download r: starting, 100.0 MiB, resuming at 80.0 MiB",
                   "download r: 100.0 MiB of 100.0 MiB (100%), 2.0 MiB/s, ETA 0 s"]
