"""The servers of the message-queue section, the broker probes they need, and Galaxy's files API.

* ours: `pulsar-main -c CONFIG_DIR` (webless) from this checkout's venv, or `python -m
  pulsar.main -c CONFIG_DIR --port P` (HTTP + message queue) for the outage workload;
* reference: `pulsar-main -c CONFIG_DIR` from the pulsar-app[web,amqp]==0.16.0 venv.

Both: app.yml with `message_queue_url`, one `queued_python` manager with 8 concurrent jobs
under a manager name no one else uses (so the queues `pulsar_<name>__*` on the shared broker
are the run's own; they are deleted when the server stops).  A webless server is "up" when
its `setup` queue has a consumer.  `GalaxyStandIn` answers the GETs/POSTs a server makes to
Galaxy's job files API in MQ mode (both servers push the jobs' metadata files there).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from bench.servers import CONCURRENT_JOBS, START_TIMEOUT, BenchServer, OurServer, ReferenceServer, _tree
from test.support.rabbitmq import delete_manager_queues, port_open, queue_prefix, wait_for_consumers
from test.support.server import subprocess_env

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
STAND_IN = Path(__file__).resolve().parent / "galaxy_stand_in.py"


def unique_manager(side: str) -> str:
    return f"bench{uuid.uuid4().hex[:8]}{side}"


def queue_name(manager: str, logical: str) -> str:
    return f"{queue_prefix(manager)}_{logical}"


def wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port):
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {port} after {timeout}s")
        time.sleep(0.05)


class MQServer(BenchServer):
    """Start = spawn, then wait for the setup queue's consumer (and the HTTP port when it
    also serves HTTP); stop also deletes the manager's queues."""

    def __init__(self, root: Path, *args: Any, side: str, broker_url: str, amqp_url: str | None, web: bool):
        self.manager = unique_manager(side)
        self.broker_url = broker_url  # the broker itself, for probes
        self.amqp_url = amqp_url or broker_url  # what the server connects to (maybe the outage proxy)
        self.web = web
        super().__init__(root, *args)

    def app_options(self) -> dict:
        options = {
            **super().app_options(),
            "message_queue_url": self.amqp_url,
            "managers": {self.manager: {"type": "queued_python", "num_concurrent_jobs": CONCURRENT_JOBS}},
        }
        if not self.web:
            options.pop("private_token")
        return options

    def webless_command(self) -> list[str]:
        raise NotImplementedError

    def command(self) -> list[str]:
        return super().command() if self.web else self.webless_command()

    def start(self, *, timeout: float = START_TIMEOUT, **_kw: object) -> float:
        started = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.config_dir, env=self.env(),
                                            start_new_session=True)
        process = self.process
        try:
            wait_for_consumers(self.broker_url, queue_name(self.manager, "setup"), timeout,
                               alive=lambda: process.poll() is None)
            if self.web:  # (not /healthz: the reference answers it only with a `_default_` manager)
                wait_for_port(self.port, process, timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{self.kind} server: {exc}\n{self.log_tail()}") from None
        assert self.process is not None
        self.server_processes = _tree(self.process.pid)
        return time.perf_counter() - started

    def stop(self, timeout: float = 60.0) -> None:
        super().stop(timeout)
        try:
            delete_manager_queues(self.broker_url, self.manager)
        except Exception as exc:
            print(f"warning: deleting the queues of {self.manager}: {exc}", file=sys.stderr)


class OurMQServer(MQServer, OurServer):
    """`pulsar-main -c DIR`; with `web`, `python -m pulsar.main -c DIR --port P` (HTTP + MQ)."""

    def __init__(self, root: Path, broker_url: str, *, amqp_url: str | None = None, web: bool = False,
                 extra_options: dict | None = None):
        super().__init__(root, extra_options, side="o", broker_url=broker_url, amqp_url=amqp_url, web=web)

    def webless_command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "pulsar-main"), "-c", str(self.config_dir)]


class ReferenceMQServer(MQServer, ReferenceServer):
    """The 0.16.0 `pulsar-main -c DIR`; with `web`, its `pulsar-serve` (HTTP + MQ)."""

    def __init__(self, root: Path, venv: Path, broker_url: str, *, amqp_url: str | None = None, web: bool = False):
        super().__init__(root, venv, side="r", broker_url=broker_url, amqp_url=amqp_url, web=web)

    def webless_command(self) -> list[str]:
        return [str(self.venv / "bin" / "pulsar-main"), "-c", str(self.config_dir)]


class GalaxyStandIn:
    """`pulsar.client.galaxy_files.JobFilesServer` in its own process (so its threads share no
    GIL with the harness).  Serves/stores paths under `root`; `endpoint(job_id)` is the
    `files_endpoint` Galaxy would hand the client."""

    JOB_KEY = "bench-job-key"

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> GalaxyStandIn:
        self.process = subprocess.Popen([sys.executable, str(STAND_IN), str(self.root), self.JOB_KEY],
                                        stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
                                        env=subprocess_env())
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"Galaxy stand-in did not start: {line}")
        self.port = int(line[1])
        return self

    def processes(self) -> list[psutil.Process]:
        return [psutil.Process(self.process.pid)] if self.process is not None else []

    def endpoint_template(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/jobs/{{job_id}}/files?job_key={self.JOB_KEY}"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.stdin.close()  # type: ignore[union-attr]
            process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()

    # the ServerSet interface, so the harness stops it on every exit path
    kind = "galaxy-stand-in"
    server_processes: list[psutil.Process] = []

