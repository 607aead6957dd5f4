"""The MQ client's job memory: duplicates (B25), uuid aliases (B12), pruning (B19), active jobs (B26)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pulsar.client.mq_tracking import DONE_RETENTION, JobTracker, job_file_name


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def running(job_id: str) -> dict[str, str]:
    return {"complete": "false", "status": "running", "job_id": job_id}


def complete(job_id: str, status: str = "complete") -> dict[str, object]:
    return {"job_id": job_id, "complete": "true", "status": status, "returncode": 0}


def test_terminal_duplicates_and_regressions_are_dropped() -> None:
    tracker = JobTracker(None)
    assert tracker.accept("1", running("1"))
    assert tracker.accept("1", running("1"))  # a status reply may repeat running
    assert tracker.accept("1", complete("1"))
    assert not tracker.accept("1", complete("1"))
    assert not tracker.accept("1", running("1"))
    assert not tracker.accept("1", complete("1", "failed"))
    assert tracker.lookup("1") == complete("1")
    tracker.launched("1")  # the same id launched again is a new job
    assert tracker.lookup("1") is None
    assert tracker.accept("1", running("1"))


def test_uuid_jobs_are_cached_under_both_ids_and_cleaned_by_either() -> None:
    tracker = JobTracker(None)
    tracker.launched("a" * 32, "42")
    tracker.accept("a" * 32, complete("a" * 32))
    assert tracker.lookup("42") is tracker.lookup("a" * 32) is not None
    tracker.forget("42")
    assert tracker.cache == {}
    assert not tracker.accept("a" * 32, complete("a" * 32))


def test_terminal_entries_are_pruned_after_the_retention() -> None:
    clock = Clock()
    tracker = JobTracker(None, retention=60, clock=clock)
    tracker.launched("u" * 32, "7")
    tracker.accept("u" * 32, complete("u" * 32))
    tracker.accept("8", running("8"))
    clock.now += 61
    tracker.accept("9", complete("9"))  # any update prunes
    assert set(tracker.cache) == {"8", "9"}  # non-terminal entries stay
    assert not tracker.accept("u" * 32, complete("u" * 32))  # pruned from the cache, still a duplicate


def test_active_jobs_survive_a_restart(tmp_path: Path) -> None:
    tracker = JobTracker(tmp_path)
    tracker.launched("1")
    tracker.launched("b" * 32, "2")
    tracker.launched("3")
    tracker.launch_failed("3")
    tracker.accept("1", complete("1"))
    tracker.finished("1", "complete")
    restarted = JobTracker(tmp_path)
    assert restarted.active_jobs() == ["b" * 32]
    restarted.accept("b" * 32, running("b" * 32))
    assert restarted.lookup("2") == running("b" * 32)  # the alias came back from disk
    assert not restarted.accept("1", complete("1"))  # the terminal mark came back too


def test_crash_between_done_and_active_is_repaired(tmp_path: Path) -> None:
    tracker = JobTracker(tmp_path)
    tracker.launched("5")
    (tmp_path / "done" / job_file_name("5")).write_text('{"job_id": "5", "status": "complete"}')
    assert JobTracker(tmp_path).active_jobs() == []
    assert not (tmp_path / "active" / job_file_name("5")).exists()


def test_hostile_job_ids_stay_inside_the_directory(tmp_path: Path) -> None:
    tracker = JobTracker(tmp_path / "store")
    for job_id in ("../../escape", "/etc/passwd", "..", "x" * 1000):
        tracker.launched(job_id)
        tracker.accept(job_id, complete(job_id))
        tracker.finished(job_id, "complete")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert all(len(name) < 200 for name in os.listdir(tmp_path / "store" / "done"))


def test_unreadable_records_are_skipped(tmp_path: Path) -> None:
    tracker = JobTracker(tmp_path)
    tracker.launched("1")
    (tmp_path / "active" / "junk.json").write_text("{not json")
    (tmp_path / "active" / ".tmp-partial").write_text("")
    assert JobTracker(tmp_path).active_jobs() == ["1"]


def test_old_done_marks_are_pruned_at_start(tmp_path: Path) -> None:
    tracker = JobTracker(tmp_path)
    tracker.accept("1", complete("1"))
    tracker.finished("1", "complete")
    mark = tmp_path / "done" / job_file_name("1")
    old = time.time() - DONE_RETENTION - 10
    os.utime(mark, (old, old))
    JobTracker(tmp_path)
    assert not mark.exists()
