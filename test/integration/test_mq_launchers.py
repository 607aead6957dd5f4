"""The launchers in message-queue mode, as real processes on the real broker:

* `pulsar -c DIR` with `message_queue_url` serves HTTP and the queue together: a job sent
  over the queue is visible over HTTP (mq-protocol.md §8, scenario 22);
* `pulsar -m webless --daemon` opens no port, runs a job sent over the queue, and stops with
  `--stop-daemon`;
* a `pulsar-config --mq` directory starts as it is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from pulsar.client import MessageQueueClientManager, build_client_manager
from test.support.mq_updates import StatusUpdates
from test.support.polling import wait_for
from test.support.rabbitmq import queue_prefix, wait_for_consumers
from test.support.server import start_server, subprocess_env, write_app_config

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(300)]


@pytest.fixture
def galaxy(tmp_path: Path, amqp_url: str, unique_manager: str) -> Iterator[tuple[StatusUpdates, MessageQueueClientManager]]:
    updates = StatusUpdates()
    manager = build_client_manager(amqp_url=amqp_url, manager=unique_manager, persistence_directory=str(tmp_path / "g"))
    assert isinstance(manager, MessageQueueClientManager)
    manager.ensure_has_status_update_callback(updates)
    try:
        yield updates, manager
    finally:
        manager.shutdown()


def launch(manager: MessageQueueClientManager, staging: Path, job_id: str, command: str) -> dict[str, Any]:
    client = manager.get_client({"jobs_directory": str(staging)}, job_id)
    setup = client.setup("launcher-probe", "1")
    client.launch(command, job_config=setup)
    return setup


def test_http_and_queue_together(tmp_path: Path, amqp_url: str, unique_manager: str,
                                 galaxy: tuple[StatusUpdates, MessageQueueClientManager]) -> None:
    updates, manager = galaxy
    config_dir = tmp_path / "server"
    server = start_server(config_dir, app_config={"message_queue_url": amqp_url,
                                                  "managers": {unique_manager: {"type": "queued_python"}}})
    try:
        wait_for_consumers(amqp_url, queue_prefix(unique_manager) + "_setup", 30)
        launch(manager, config_dir / "staging", "mixed-1", "sleep 30")
        wait_for(lambda: updates.saw("mixed-1", "running"), 30, what="running over the queue")
        status, body = server.get(f"managers/{unique_manager}/jobs/mixed-1/status")
        assert status == 200 and json.loads(body)["status"] == "running"
        manager.get_client({"jobs_directory": str(config_dir / "staging")}, "mixed-1").kill()  # over the queue

        def cancelled_over_http() -> bool:
            code, body = server.get(f"managers/{unique_manager}/jobs/mixed-1/status")
            return code == 200 and json.loads(body)["status"] == "cancelled"

        wait_for(cancelled_over_http, 30, what="cancelled, seen over HTTP")
    finally:
        assert server.stop() == 0


def test_webless_daemon_runs_queue_jobs_and_opens_no_port(tmp_path: Path, amqp_url: str, unique_manager: str,
                                                          galaxy: tuple[StatusUpdates, MessageQueueClientManager]) -> None:
    updates, manager = galaxy
    config_dir = tmp_path / "webless"
    staging = config_dir / "staging"
    write_app_config(config_dir, {"message_queue_url": amqp_url, "staging_directory": str(staging),
                                  "managers": {unique_manager: {"type": "queued_python"}}})
    pulsar = [sys.executable, "-m", "pulsar.main", "-m", "webless", "-c", str(config_dir)]
    started = subprocess.run([*pulsar, "--daemon"], capture_output=True, text=True, env=subprocess_env(),
                             timeout=120, stdin=subprocess.DEVNULL)
    assert started.returncode == 0, started.stderr
    try:
        pid = int((config_dir / "pulsar.pid").read_text())
        setup = launch(manager, staging, "webless-1", "echo hello > ../outputs/out.txt")
        final = wait_for(lambda: updates.final("webless-1"), 60, what="the terminal update")
        assert final["status"] == "complete" and final["outputs_directory_contents"] == ["out.txt"], final
        assert final["job_directory"] == setup["job_directory"]
        assert not [c for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        # the directory goes once the final status is confirmed (message_queue_cleanup_job: always)
        wait_for(lambda: not (staging / "webless-1").exists(), 30, what="the job directory removed")
    finally:
        stopped = subprocess.run([*pulsar, "--stop-daemon"], capture_output=True, text=True, env=subprocess_env(),
                                 timeout=120, stdin=subprocess.DEVNULL)
    assert stopped.returncode == 0, stopped.stderr
    assert not (config_dir / "pulsar.pid").exists()


def test_pulsar_config_mq_directory_runs_a_job(tmp_path: Path, amqp_url: str,
                                               galaxy: tuple[StatusUpdates, MessageQueueClientManager]) -> None:
    updates, manager = galaxy
    config_dir = tmp_path / "generated"
    written = subprocess.run([sys.executable, "-m", "pulsar.scripts.config", "--directory", str(config_dir), "--mq",
                              "--mq-url", amqp_url], capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert written.returncode == 0, written.stderr
    # the generated file names the _default_ manager; this test's client talks to its own
    # manager, so rename it in place (everything else stays as generated)
    app_yml = config_dir / "app.yml"
    app_yml.write_text(app_yml.read_text().replace("  _default_:", f"  {manager.manager_name}:"))
    process = subprocess.Popen([sys.executable, "-m", "pulsar.main", "-m", "webless", "-c", str(config_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env(),
                               stdin=subprocess.DEVNULL)
    try:
        wait_for_consumers(amqp_url, queue_prefix(manager.manager_name) + "_setup", 60, alive=lambda: process.poll() is None)
        launch(manager, config_dir / "files" / "staging", "generated-1", "true")
        final = wait_for(lambda: updates.final("generated-1"), 60, what="the terminal update")
        assert final["status"] == "complete"
    finally:
        process.terminate()
        assert process.wait(60) == 0
