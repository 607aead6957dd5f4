"""Run OUR server in a subprocess for tests: start on a free loopback port, wait until it
answers /healthz, stop it gracefully, or kill its whole process tree (crash tests).

The server runs `python -m pulsar.main -c CONFIG_DIR --port PORT` from this checkout, so it
needs no installed console script.  Its output goes to `<config_dir>/server.log`; failures to
start raise `ServerError` with the end of that log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import psutil
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOKEN = "test-token-not-secret"
#: Upper bounds for waits, not expectations: a loaded CI machine may be slow.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


class ServerError(Exception):
    """The server did not start, or did not stop when asked."""


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_app_config(config_dir: Path, options: dict[str, Any]) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "app.yml"
    path.write_text(yaml.safe_dump(options, sort_keys=True))
    return path


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a server process: this checkout importable, no stray overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSAR_CONFIG")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class PulsarServer:
    """One server process.  `url` ends with a slash; `token` is the private_token (or None)."""

    def __init__(self, config_dir: Path, port: int, token: str | None, *, https: bool = False,
                 ca_file: Path | None = None, extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None):
        self.config_dir = config_dir
        self.port = port
        self.token = token
        self.scheme = "https" if https else "http"
        self.ca_file = ca_file
        self.extra_args = extra_args
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = config_dir / "server.log"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "pulsar.main", "-c", str(self.config_dir), "--port", str(self.port),
                *self.extra_args]

    def start(self, timeout: float = START_TIMEOUT) -> PulsarServer:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.config_dir,
                                            env=subprocess_env(self.env))
        wait_until_healthy(self.url, self.token, timeout=timeout, process=self.process, log_path=self.log_path,
                           ca_file=self.ca_file)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait; SIGKILL the tree if it does not exit.  Returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_tree()
                raise ServerError(f"server pid {self.process.pid} ignored SIGTERM for {timeout}s") from None
        return self.process.returncode

    def kill_tree(self) -> None:
        """SIGKILL the server and every process it started (jobs included), as a crash would."""
        if self.process is None:
            return
        kill_process_tree(self.process.pid)
        self.process.wait()

    def get(self, path: str, **params: str) -> tuple[int, bytes]:
        return http_get(self.url + path.lstrip("/"), params, self.token, ca_file=self.ca_file)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_server(config_dir: Path, *, app_config: dict[str, Any] | None = None, token: str | None = DEFAULT_TOKEN,
                 port: int | None = None, **kwargs: Any) -> PulsarServer:
    """Write `app.yml` (staging under the config dir, the token) and start a server on it.

    `app_config=None` writes a minimal config; pass a dict to control every key (the token is
    added unless the dict has `private_token`).  Use the same `config_dir` and `port` again to
    restart a server on its previous state."""
    options = dict(app_config or {})
    if token is not None:
        options.setdefault("private_token", token)
    options.setdefault("staging_directory", str(config_dir / "staging"))
    options.setdefault("persistence_directory", str(config_dir / "persisted"))
    write_app_config(config_dir, options)
    server = PulsarServer(config_dir, port or free_port(), options.get("private_token"), **kwargs)
    return server.start()


@contextlib.contextmanager
def running_server(config_dir: Path, **kwargs: Any) -> Iterator[PulsarServer]:
    """`start_server`, stopped gracefully when the block ends (a module fixture's whole life)."""
    server = start_server(config_dir, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def http_get(url: str, params: dict[str, str] | None = None, token: str | None = None, *,
             ca_file: Path | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
    query = dict(params or {})
    if token is not None:
        query["private_token"] = token
    full = url + ("?" + urllib.parse.urlencode(query) if query else "")
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(full, timeout=timeout, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until_healthy(url: str, token: str | None, *, timeout: float = START_TIMEOUT,
                       process: subprocess.Popen[bytes] | None = None, log_path: Path | None = None,
                       ca_file: Path | None = None) -> None:
    """Poll `<url>healthz` until it answers 200; fail early if `process` exits."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(f"server exited with {process.returncode} before answering:\n{_tail(log_path)}")
        try:
            status, body = http_get(url + "healthz", token=token, ca_file=ca_file, timeout=5)
            if status == 200:
                return
            last_error = f"HTTP {status}: {body[:200]!r}"
        except (OSError, urllib.error.URLError) as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise ServerError(f"{url} not healthy after {timeout}s ({last_error}):\n{_tail(log_path)}")


def kill_process_tree(pid: int) -> None:
    """SIGKILL `pid` and all its descendants (children first collected, then all killed)."""
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    processes = [parent, *parent.children(recursive=True)]
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=STOP_TIMEOUT)


def _tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
