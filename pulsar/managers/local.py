"""Managers that run job scripts on this machine: `queued_python` and `unqueued`.

`queued_python` runs at most `num_concurrent_jobs` scripts at once ("*" = CPU count):
each worker thread owns one slot from start to exit, so the cap is real.  `unqueued`
starts every job at once.  In both, a thread waits on each process, so its exit is
reported the moment it happens.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any, Mapping

from pulsar.errors import ConfigurationError
from pulsar.managers.base import LaunchSpec, Manager
from pulsar.managers.processes import (
    exit_code_of,
    find_process,
    kill_process_tree,
    process_identity,
    start_job_process,
    wait_for_foreign_process,
)

log = logging.getLogger(__name__)


def parse_concurrency(value: Any) -> int:
    if value in (None, ""):
        return 1
    if value == "*":
        return os.cpu_count() or 1
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"num_concurrent_jobs must be a positive integer or '*', not {value!r}") from None
    if count < 1:
        raise ConfigurationError(f"num_concurrent_jobs must be at least 1, not {count}")
    return count


class _LocalManager(Manager):
    """What both local managers share: run one job in the calling thread until it exits."""

    def __init__(self, name: str, options: Mapping[str, Any]):
        super().__init__(name, options)
        self._cancelled: set[str] = set()
        self._running: dict[str, int] = {}  # job id -> pid, for jobs this process started
        self._cancel_lock = threading.Lock()
        self._stopping = threading.Event()

    def _run(self, spec: LaunchSpec) -> None:
        assert self.events is not None
        # Starting under the lock closes the gap between "not cancelled" and "started":
        # a cancel either lands before (the job never starts) or sees the pid (and kills it).
        with self._cancel_lock:
            if spec.job_id in self._cancelled:
                self._cancelled.discard(spec.job_id)
                return
            try:
                process = start_job_process(spec, self.environment.variables)
            except OSError as exc:
                start_error: OSError | None = exc
            else:
                start_error = None
                self._running[spec.job_id] = process.pid
        if start_error is not None:
            self.events.finished(spec.job_id, failure=f"could not start the job script: {start_error}")
            return
        self.events.started(spec.job_id, process_identity(process.pid))
        returncode = process.wait()
        with self._cancel_lock:
            self._running.pop(spec.job_id, None)
        if self._stopping.is_set():
            return  # the server is going down; the next start re-attaches or completes it
        self.events.finished(spec.job_id, exit_code=exit_code_of(returncode))

    def _attach(self, spec: LaunchSpec, backend: Mapping[str, Any]) -> None:
        """Wait for a job started by an earlier server process."""
        assert self.events is not None
        process = find_process(backend)
        if process is None:
            self.events.vanished(spec.job_id)
            return
        log.info("re-attached to job %s (pid %s)", spec.job_id, process.pid)
        wait_for_foreign_process(process, self._stopping.is_set)
        if self._stopping.is_set():
            return
        self.events.finished(spec.job_id)

    def cancel(self, job_id: str, backend: Mapping[str, Any]) -> None:
        with self._cancel_lock:
            pid = self._running.get(job_id)
            if pid is None and backend.get("pid") is None:
                self._cancelled.add(job_id)  # not started yet: skip it when its turn comes
                return
        kill_process_tree({"pid": pid} if pid is not None else backend)

    def shutdown(self) -> None:
        self._stopping.set()


class QueuedManager(_LocalManager):
    type_name = "queued_python"

    def __init__(self, name: str, options: Mapping[str, Any]):
        super().__init__(name, options)
        self.concurrency = parse_concurrency(options.get("num_concurrent_jobs"))
        self._queue: queue.Queue[tuple[LaunchSpec, Mapping[str, Any] | None] | None] = queue.Queue()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.concurrency):
            worker = threading.Thread(target=self._work, name=f"{self.name}-worker-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stopping.is_set():
                return
            spec, backend = item
            try:
                if backend is None:
                    self._run(spec)
                else:
                    self._attach(spec, backend)
            except Exception:
                log.exception("worker failed on job %s", spec.job_id)
                if self.events is not None and not self._stopping.is_set():
                    self.events.finished(spec.job_id, failure="internal error while running the job")

    def submit(self, spec: LaunchSpec) -> None:
        self._queue.put((spec, None))

    def recover(self, spec: LaunchSpec, backend: Mapping[str, Any], running: bool) -> None:
        if backend.get("pid") is None:
            self._queue.put((spec, None))  # never started: run it when a slot frees
        else:
            self._queue.put((spec, dict(backend)))  # started: the re-attached job holds a slot

    def shutdown(self) -> None:
        super().shutdown()
        for _ in self._workers:
            self._queue.put(None)


class UnqueuedManager(_LocalManager):
    type_name = "unqueued"

    def submit(self, spec: LaunchSpec) -> None:
        threading.Thread(target=self._run, args=(spec,), name=f"job-{spec.job_id}", daemon=True).start()

    def recover(self, spec: LaunchSpec, backend: Mapping[str, Any], running: bool) -> None:
        if backend.get("pid") is None:
            self.submit(spec)
        else:
            threading.Thread(
                target=self._attach, args=(spec, dict(backend)), name=f"job-{spec.job_id}", daemon=True
            ).start()
