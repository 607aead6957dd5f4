"""Start, restart and stop the two servers under comparison, each in its own process group.

* ours: `python -m pulsar.main -c CONFIG_DIR --port P` from this checkout;
* reference: `pulsar-serve server.ini` from the pulsar-app[web]==0.16.0 venv (gunicorn).

Both get the same manager settings (`queued_python`, 8 concurrent jobs), a private token and
staging/persistence directories under the benchmark's work directory.  Every server started
is remembered in `ServerSet` so the harness can kill all of them on any exit path.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psutil
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from test.support.server import free_port, kill_process_tree, subprocess_env  # noqa: E402

TOKEN = "bench-token-not-secret"
CONCURRENT_JOBS = 8
START_TIMEOUT = 120.0


def request(port: int, method: str, path: str, params: dict[str, str] | None = None,
            timeout: float = 30.0) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection to 127.0.0.1 (as the urllib client does)."""
    query = urllib.parse.urlencode({**(params or {}), "private_token": TOKEN})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, f"{path}?{query}", headers={"Content-Length": "0"} if method != "GET" else {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class BenchServer:
    """One server (ours or the reference) bound to a config directory it owns."""

    kind = "?"

    def __init__(self, root: Path):
        self.root = root
        self.config_dir = root / "config"
        self.staging = root / "staging"
        self.persistence = root / "persisted"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.server_processes: list[psutil.Process] = []
        self.log_path = root / "server.log"
        for path in (self.config_dir, self.staging, self.persistence):
            path.mkdir(parents=True, exist_ok=True)
        self.write_config()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def app_options(self) -> dict:
        return {
            "private_token": TOKEN,
            "staging_directory": str(self.staging),
            "persistence_directory": str(self.persistence),
            "managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": CONCURRENT_JOBS}},
        }

    def write_config(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("PULSAR_")}

    def start(self, *, check_job: str | None = None, timeout: float = START_TIMEOUT,
              check_timeout: float = 20.0) -> float:
        """Start and wait until /healthz answers and, if given, `check_job` reports
        `complete` (giving up on that after `check_timeout`; `last_check_status` then says
        what it reported).  Returns the seconds from spawn to that point."""
        healthy = 0.0
        self.last_check_status: str | None = None
        with open(self.log_path, "ab") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.config_dir, env=self.env(),
                                            start_new_session=True)
        deadline = started + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.kind} server not healthy after {timeout}s:\n{self.log_tail()}")
            try:
                if request(self.port, "GET", "/healthz", timeout=5)[0] == 200:
                    if check_job is None:
                        break
                    healthy = healthy or time.perf_counter()
                    self.last_check_status = self.status_of(check_job)
                    if self.last_check_status == "complete":
                        break
                    if time.perf_counter() - healthy > check_timeout:
                        break  # healthy but never right: caller sees last_check_status
            except OSError:
                pass
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        self.server_processes = _tree(self.process.pid)
        return elapsed

    def status_of(self, job_id: str) -> str | None:
        code, body = request(self.port, "GET", f"/jobs/{job_id}/status")
        if code != 200:
            return None
        return json.loads(body).get("status")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM the server and wait; SIGKILL its whole tree if it lingers."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGTERM)
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        kill_process_tree(process.pid)  # leftovers: workers, running jobs
        try:
            os.killpg(process.pid, signal.SIGKILL)  # anything else in its session
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class OurServer(BenchServer):
    kind = "ours"

    def __init__(self, root: Path, extra_options: dict | None = None):
        self.extra_options = dict(extra_options or {})
        super().__init__(root)

    def write_config(self) -> None:
        options = {**self.app_options(), **self.extra_options}
        (self.config_dir / "app.yml").write_text(yaml.safe_dump(options, sort_keys=True))

    def command(self) -> list[str]:
        return [sys.executable, "-m", "pulsar.main", "-c", str(self.config_dir), "--port", str(self.port)]

    def env(self) -> dict[str, str]:
        return subprocess_env()


class ReferenceServer(BenchServer):
    kind = "reference"

    def __init__(self, root: Path, venv: Path, extra_options: dict | None = None):
        self.venv = venv
        self.extra_options = dict(extra_options or {})
        super().__init__(root)

    def write_config(self) -> None:
        options = self.app_options()
        options.update({"conda_auto_init": False, "conda_auto_install": False, **self.extra_options})
        (self.config_dir / "app.yml").write_text(yaml.safe_dump(options, sort_keys=True))
        (self.config_dir / "server.ini").write_text(
            "[server:main]\nhost = 127.0.0.1\n"
            f"port = {self.port}\n\n[app:main]\napp_config = %(here)s/app.yml\n"
        )

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "pulsar-serve"), str(self.config_dir / "server.ini")]


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class ServerSet:
    """Every server the harness started; `stop_all` is safe to call more than once."""

    def __init__(self) -> None:
        self.servers: list[BenchServer] = []

    def add(self, server: BenchServer) -> BenchServer:
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                print(f"warning: stopping {server.kind} server: {exc}", file=sys.stderr)
