"""Run a Pulsar server in message-queue mode (webless) in a subprocess: the REFERENCE one
(`pulsar-main` of the app-0.16.0 venv) or OURS (`python -m pulsar.main -m webless`).

A webless server opens no port, so "ready" means: its manager's `..._setup` queue has a
consumer on the broker.  Stopping sends SIGINT (the reference shuts down in order only on
Ctrl-C; SIGTERM kills it at once, mq-protocol.md B23), then kills the process tree and any
job still running from its staging directory.

    server = start_reference_mq_server(tmp_path / "ref", amqp_url, manager="mgr123")
    server.staging_directory   # = the `jobs_directory` Galaxy's destination must name
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from test.support.rabbitmq import broker_url, queue_prefix, wait_for_consumers
from test.support.reference import reference_bin
from test.support.server import STOP_TIMEOUT, _tail, kill_process_tree, subprocess_env, write_app_config

#: the PATH a job sees: system tools only, nothing from a venv
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


class MqServer:
    """One webless server process for `manager`, configured by `options` (app.yml keys)."""

    def __init__(self, command: list[str], config_dir: Path, options: dict[str, Any], manager: str,
                 env: dict[str, str], admin_url: str | None = None):
        self.command = command
        #: plain-AMQP URL for the test's own queue checks (the server's may be TLS)
        self.admin_url = admin_url or broker_url()
        self.config_dir = config_dir
        self.options = options
        self.manager = manager
        self.env = env
        self.log_path = config_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def amqp_url(self) -> str:
        return str(self.options["message_queue_url"])

    @property
    def staging_directory(self) -> str:
        return str(self.options["staging_directory"])

    def queue(self, logical: str) -> str:
        return queue_prefix(self.manager, self.options.get("amqp_key_prefix")) + "_" + logical

    def start(self, timeout: float = 60.0) -> MqServer:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.config_dir, env=self.env,
                                            start_new_session=True)
        try:
            wait_for_consumers(self.admin_url, self.queue("setup"), timeout, alive=self.running)
        except BaseException as exc:  # never leave a server behind, whatever stopped the wait
            self.kill()
            raise RuntimeError(f"{exc}\n{self.log_text()[-5000:]}") from None
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGINT and wait; kill the tree (jobs included) if it does not exit in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.kill_jobs()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None:
            kill_process_tree(self.process.pid)
            self.process.wait()

    def kill_jobs(self) -> None:
        """Kill what still runs from this server's staging directory: a server's stop leaves its
        jobs running by design (they survive restarts), a test must not leave them behind."""
        staging = self.staging_directory
        for process in psutil.process_iter(["cmdline"]):
            if any(staging in part for part in process.info["cmdline"] or ()):
                kill_process_tree(process.pid)

    def log_text(self) -> str:
        return _tail(self.log_path, 200)


def mq_app_config(config_dir: Path, amqp_url: str, manager: str, **extra: Any) -> dict[str, Any]:
    """The app.yml keys both implementations read: broker, staging, persistence, one
    queued_python manager named `manager`."""
    options: dict[str, Any] = {
        "message_queue_url": amqp_url,
        "staging_directory": str(config_dir / "staging"),
        "persistence_directory": str(config_dir / "persisted"),
        "managers": {manager: {"type": "queued_python"}},
    }
    options.update(extra)
    return options


def start_reference_mq_server(config_dir: Path, amqp_url: str, manager: str, admin_url: str | None = None,
                              **extra: Any) -> MqServer:
    """The reference `pulsar-main` (pulsar-app 0.16.0).  The configuration goes in as
    --app_conf_base64, which also turns on its DEBUG logging (into server.log)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    options = mq_app_config(config_dir, amqp_url, manager, **extra)
    write_app_config(config_dir, options)  # for whoever reads the test's directory
    encoded = base64.b64encode(json.dumps(options).encode()).decode()
    command = [str(reference_bin("app-0.16.0", "pulsar-main")), "-c", str(config_dir), "--app_conf_base64", encoded]
    env = {"PATH": SYSTEM_PATH, "HOME": str(config_dir), "LC_ALL": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    return MqServer(command, config_dir, options, manager, env, admin_url).start()


def start_our_mq_server(config_dir: Path, amqp_url: str, manager: str, admin_url: str | None = None,
                        **extra: Any) -> MqServer:
    """Ours, as `pulsar -m webless -c CONFIG_DIR` would run it, from this checkout."""
    config_dir.mkdir(parents=True, exist_ok=True)
    options = mq_app_config(config_dir, amqp_url, manager, **extra)
    write_app_config(config_dir, options)
    command = [sys.executable, "-m", "pulsar.main", "-m", "webless", "-c", str(config_dir)]
    env = subprocess_env({"PATH": f"{Path(sys.executable).parent}:{SYSTEM_PATH}"})
    return MqServer(command, config_dir, options, manager, env, admin_url).start()
