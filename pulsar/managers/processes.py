"""Starting, watching and killing local job-script processes.

A job script runs in its own session (so it outlives a server restart and can be killed
as a group), with stdout/stderr going straight to files (so nothing depends on the server
reading a pipe).  A process is identified by pid *and* start time, so a recycled pid is
never mistaken for the job.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

import psutil

from pulsar.errors import PulsarError
from pulsar.jobs import jobfs
from pulsar.managers.base import LaunchSpec

log = logging.getLogger(__name__)


def _open_log(spec: LaunchSpec, path: Path) -> BinaryIO:
    """`path` (in the job directory) open for appending, through `pulsar.jobs.jobfs`: a job run
    again after a restart may have left a symlink or FIFO there, which must not make the
    server append to another file or hang.  Refusals are `OSError`s (the job fails to start)."""
    try:
        with jobfs.opened_parent(spec.job_directory, path) as (dir_fd, name):
            fd = jobfs.open_for_writing(dir_fd, name, append=True)
    except PulsarError as exc:
        raise OSError(f"{path.name}: {exc.detail}") from None
    return os.fdopen(fd, "ab")


def start_job_process(spec: LaunchSpec, environment: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start the job script with exactly `environment` (the server's, secrets withheld:
    see `pulsar.managers.environment`), never this process's own."""
    with _open_log(spec, spec.stdout_path) as stdout, _open_log(spec, spec.stderr_path) as stderr:
        return subprocess.Popen(
            ["/bin/bash", str(spec.script)],
            cwd=str(spec.working_directory),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
            env=dict(environment),
        )


def process_identity(pid: int) -> dict[str, Any]:
    """What to persist to find this process again: pid and start time."""
    try:
        return {"pid": pid, "create_time": psutil.Process(pid).create_time()}
    except psutil.Error:
        return {"pid": pid, "create_time": None}


def find_process(backend: Mapping[str, Any]) -> psutil.Process | None:
    """The live process described by a persisted identity, or None (gone, zombie, or pid reused)."""
    pid = backend.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        expected = backend.get("create_time")
        if expected is not None and abs(process.create_time() - float(expected)) > 0.05:
            return None
        return process
    except psutil.Error:
        return None


def exit_code_of(returncode: int) -> int:
    """Popen's negative signal numbers as the shell would report them (128 + signal)."""
    return 128 - returncode if returncode < 0 else returncode


def wait_for_foreign_process(process: psutil.Process, stop_polling: Callable[[], bool] | None = None) -> None:
    """Block until a process that is not our child exits.

    Uses a pidfd where the kernel offers one, so the exit is noticed at once; otherwise
    falls back to polling.
    """
    try:
        fd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not poller.poll(1000):
                if stop_polling is not None and stop_polling():
                    return
        finally:
            os.close(fd)
        return
    while process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
        if stop_polling is not None and stop_polling():
            return
        time.sleep(0.1)


def kill_process_tree(backend: Mapping[str, Any], grace: float = 1.0) -> bool:
    """SIGTERM the job's process group and every descendant, SIGKILL what is left after `grace`."""
    process = find_process(backend)
    if process is None:
        return False
    try:
        members = [process] + process.children(recursive=True)
    except psutil.Error:
        members = [process]
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except OSError:
        pass
    for member in members:
        try:
            member.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(members, timeout=grace)
    if alive:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
        for member in alive:
            try:
                member.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=grace)
    return True
