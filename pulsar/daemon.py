"""Run a process in the background with a pid file, and stop it again.

`daemonize` detaches with the classic double fork, but unlike a bare fork it keeps a pipe
back to the launching process: the launcher only exits once the daemon says it is serving
(exit 0) or why it could not (exit 1).  A caller that gets its prompt back can rely on the
server answering.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import time
from pathlib import Path

import psutil

from pulsar.util.fileio import atomic_write_text

log = logging.getLogger(__name__)

#: How long the launcher waits for the daemon to report; generous because starting managers
#: (e.g. a DRMAA session) can take a while on a loaded machine.
READY_TIMEOUT = 180.0
_READY = "ready"
_ERROR = "error"


class DaemonError(Exception):
    """The daemon cannot be started or stopped; the message says why."""


class Daemon:
    """The detached process's end of the launch: report readiness, clean up the pid file."""

    def __init__(self, pid_file: Path, report_fd: int):
        self.pid_file = pid_file
        self._report_fd: int | None = report_fd

    def ready(self) -> None:
        self._report(f"{_READY} {os.getpid()}")

    def failed(self, message: str) -> None:
        self._report(f"{_ERROR} {message}")

    def remove_pid_file(self) -> None:
        """Remove the pid file if it still names this process (a newer daemon may own it)."""
        if read_pid(self.pid_file) == os.getpid():
            self.pid_file.unlink(missing_ok=True)

    def _report(self, message: str) -> None:
        if self._report_fd is None:
            return
        try:
            os.write(self._report_fd, message.encode("utf-8", "replace") + b"\n")
        except OSError:  # the launcher went away; nothing to tell
            pass
        finally:
            os.close(self._report_fd)
            self._report_fd = None


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def is_running(pid: int, expect: str | None = None) -> bool:
    """True if `pid` is a live (non-zombie) process; with `expect`, its command line must also
    mention that word (guards against a recycled pid)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if expect is not None and not any(expect in part for part in process.cmdline()):
            return False
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def daemonize(pid_file: Path, log_file: Path, *, expect: str = "pulsar") -> Daemon:
    """Detach from the terminal.  Returns only in the daemon, with stdin from /dev/null,
    stdout/stderr appended to `log_file`, the working directory unchanged and `pid_file`
    written.  The launching process never returns: it waits for `Daemon.ready()` or
    `Daemon.failed()` and exits 0 or 1 with a one-line message.
    """
    pid_file = pid_file.resolve()
    log_file = log_file.resolve()
    existing = read_pid(pid_file)
    if existing is not None and is_running(existing, expect):
        raise DaemonError(f"already running as pid {existing} (pid file {pid_file})")
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()

    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first > 0:  # the launcher
        os.close(write_fd)
        os.waitpid(first, 0)
        sys.exit(_await_report(read_fd, log_file))

    # first child: new session, then fork again so the daemon can never reacquire a terminal
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)

    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    atomic_write_text(pid_file, f"{os.getpid()}\n")
    return Daemon(pid_file, write_fd)


def _await_report(read_fd: int, log_file: Path) -> int:
    deadline = time.monotonic() + READY_TIMEOUT
    chunks = []
    with os.fdopen(read_fd, "rb") as pipe:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([pipe], [], [], remaining)[0]:
                print(f"pulsar: the daemon did not report ready within {READY_TIMEOUT:.0f}s; see {log_file}",
                      file=sys.stderr)
                return 1
            chunk = pipe.read1(4096)
            if not chunk:
                break
            chunks.append(chunk)
    message = b"".join(chunks).decode("utf-8", "replace").strip()
    kind, _, detail = message.partition(" ")
    if kind == _READY:
        print(f"pulsar daemon running as pid {detail}; log: {log_file}")
        return 0
    if kind == _ERROR:
        print(f"pulsar: {detail}", file=sys.stderr)
    else:
        print(f"pulsar: the daemon exited during startup; see {log_file}", file=sys.stderr)
    return 1


def stop_daemon(pid_file: Path, *, timeout: float = 120.0, expect: str = "pulsar") -> str:
    """SIGTERM the process named in `pid_file`, wait until it is gone, remove the pid file.

    Returns a message for the user.  Raises `DaemonError` if the process is still alive
    after `timeout` seconds (the pid file is then kept).  A missing pid file or a dead
    process is not an error: there is nothing to stop.
    """
    pid = read_pid(pid_file)
    if pid is None:
        return f"not running (no pid file {pid_file})"
    if not is_running(pid, expect):
        pid_file.unlink(missing_ok=True)
        return f"not running (removed stale pid file {pid_file} naming pid {pid})"
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while is_running(pid):
        if time.monotonic() > deadline:
            raise DaemonError(f"pid {pid} is still running {timeout:.0f}s after SIGTERM; pid file {pid_file} kept")
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return f"stopped pid {pid}"
