"""Whole jobs over the real broker: our client manager (driven as Galaxy's PulsarMQJobRunner
drives it) + our PulsarApp with `message_queue_url`, in-process, + a fake Galaxy files API.

Inputs are pulled from and outputs pushed to the fake Galaxy by the server (`remote_transfer`);
Galaxy's finish step then reads the cached status and moves no bytes itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from pulsar import core
from pulsar.client import MessageQueueClientManager, PulsarOutputs, finish_job, submit_job
from test.client.mq_broker import ManagerFactory, RawBroker
from test.client.mq_jobs import INPUT_BYTES, Galaxy, destination, galaxy_job
from test.support.galaxy_files import FakeGalaxy
from test.support.polling import wait_for
from test.support.sshd import SshServer

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def server_options() -> dict[str, Any]:
    """Extra app.yml keys for `server` (tests override it with parametrize)."""
    return {}


@pytest.fixture
def server(amqp_url: str, unique_manager: str, tmp_path: Path, broker: RawBroker,
           server_options: dict[str, Any]) -> Iterator[Any]:
    """Our PulsarApp in-process, in message-queue mode (consumers on the test's manager)."""
    app = core.PulsarApp(staging_directory=str(tmp_path / "staging"),
                         persistence_directory=str(tmp_path / "server-persist"),
                         message_queue_url=amqp_url, managers={unique_manager: {"type": "queued_python"}},
                         **server_options)
    try:
        yield app
    finally:
        app.shutdown()


def get_client(manager: MessageQueueClientManager, tmp_path: Path, galaxy: FakeGalaxy, job_id: str) -> Any:
    return manager.get_client(destination(tmp_path / "staging"), job_id, files_endpoint=galaxy.files_endpoint(job_id),
                              token_endpoint=None, env=[])


def galaxy_finish(manager: MessageQueueClientManager, tmp_path: Path, galaxy: FakeGalaxy, job_id: str,
                  client_outputs: Any) -> list[Exception]:
    """Galaxy's `finish_job`: a new client by the Galaxy id, status from the cache, collect, clean."""
    client = get_client(manager, tmp_path, galaxy, job_id)
    outputs = PulsarOutputs.from_status_response(client.full_status())
    return finish_job(client, cleanup_job="always", job_completed_normally=True, client_outputs=client_outputs,
                      pulsar_outputs=outputs)


def test_remote_transfer_job_round_trip(server: Any, managers: ManagerFactory,
                                        fake_galaxy: FakeGalaxy, tmp_path: Path) -> None:
    galaxy = Galaxy()
    manager = managers(galaxy)
    client = get_client(manager, tmp_path, fake_galaxy, "501")
    job = galaxy_job(client, fake_galaxy.root, "501")
    assert submit_job(client, job.description, job.setup) == "501"

    final = galaxy.wait_terminal("501")
    assert final["status"] == "complete" and final["returncode"] == 0, final
    assert galaxy.statuses("501") in (["running", "complete"], ["complete"])
    assert job.output_path.read_bytes() == INPUT_BYTES  # pushed back to Galaxy by the server
    transfers = {(r.method, r.file_type, r.path) for r in fake_galaxy.requests_for("501")}
    assert ("GET", "input", str(job.input_path)) in transfers
    assert ("POST", "output", str(job.output_path)) in transfers
    assert all(r.status == 200 for r in fake_galaxy.requests_for("501"))

    assert galaxy_finish(manager, tmp_path, fake_galaxy, "501", job.description.client_outputs) == []
    assert "501" not in manager.status_cache
    # marked done right after the callback returned (in the consumer thread)
    wait_for(lambda: manager.tracker.active_jobs() == [], what="job 501 no longer active")


@pytest.mark.parametrize("tool, job_id", [("remote_scp_transfer", "511"), ("remote_rsync_transfer", "512")])
def test_scp_and_rsync_job_round_trip(tool: str, job_id: str, server: Any, managers: ManagerFactory,
                                      fake_galaxy: FakeGalaxy, ssh_server: SshServer, tmp_path: Path) -> None:
    """Over the message queue the key also travels as `remote_staging.ssh_key`; the server
    fetches the input and sends the output by scp/rsync (a private sshd on loopback), so
    Galaxy's files API sees no request at all."""
    galaxy = Galaxy()
    manager = managers(galaxy)
    ssh = {"ssh_user": ssh_server.user, "ssh_host": ssh_server.host, "ssh_port": str(ssh_server.port),
           "ssh_key": ssh_server.user_key.read_text()}
    client = manager.get_client(destination(tmp_path / "staging", default_file_action=tool, **ssh), job_id,
                                files_endpoint=fake_galaxy.files_endpoint(job_id), token_endpoint=None, env=[])
    job = galaxy_job(client, fake_galaxy.root, job_id)
    submit_job(client, job.description, job.setup)
    final = galaxy.wait_terminal(job_id)
    assert final["status"] == "complete" and final["returncode"] == 0, final
    assert job.output_path.read_bytes() == INPUT_BYTES
    assert fake_galaxy.requests_for(job_id) == []
    assert galaxy_finish(manager, tmp_path, fake_galaxy, job_id, job.description.client_outputs) == []


def test_non_zero_exit_is_reported_complete_with_the_code(server: Any, managers: ManagerFactory,
                                                          fake_galaxy: FakeGalaxy, tmp_path: Path) -> None:
    galaxy = Galaxy()
    manager = managers(galaxy)
    client = get_client(manager, tmp_path, fake_galaxy, "502")
    job = galaxy_job(client, fake_galaxy.root, "502", exit_code=3)
    submit_job(client, job.description, job.setup)
    final = galaxy.wait_terminal("502")
    assert (final["status"], final["returncode"]) == ("complete", 3)


def test_kill_then_status_request_reports_cancelled(server: Any, managers: ManagerFactory,
                                                    fake_galaxy: FakeGalaxy, tmp_path: Path) -> None:
    galaxy = Galaxy()
    manager = managers(galaxy)
    client = get_client(manager, tmp_path, fake_galaxy, "503")
    client.launch("sleep 120", job_config=client.setup("sleeper", "1"))
    galaxy.wait("503", "running", timeout=60)
    client.kill()
    deadline = time.monotonic() + 60
    while "cancelled" not in galaxy.statuses("503"):  # no update after a kill (B6): ask
        assert time.monotonic() < deadline, f"no cancelled answer; received {galaxy.statuses('503')}"
        client.get_status()
        time.sleep(0.5)


@pytest.mark.parametrize("server_options", [{"message_queue_cleanup_job": "never"}])
def test_restarted_client_asks_again_for_an_update_it_lost(
        server: Any, managers: ManagerFactory, broker: RawBroker,
        fake_galaxy: FakeGalaxy, tmp_path: Path) -> None:
    """B26: Galaxy goes down while a job finishes and the updates are lost (here: taken off
    the queue by the test); on restart the client asks the server, which answers with the terminal document.
    (With the default `message_queue_cleanup_job: always` the server has removed the job once
    the broker confirmed the update, and the answer would be `lost`.)"""
    first = Galaxy()
    manager = managers(first)
    client = get_client(manager, tmp_path, fake_galaxy, "504")
    job = galaxy_job(client, fake_galaxy.root, "504")
    submit_job(client, job.description, job.setup)
    manager.shutdown()
    while broker.get("status_update", timeout=60).body.get("complete") != "true":
        pass  # every update up to the terminal one is consumed here: lost for Galaxy

    restarted = Galaxy()
    manager = managers(restarted)
    final = restarted.wait_terminal("504")
    assert final["status"] == "complete" and final["outputs_directory_contents"] == [job.output_path.name]
    assert galaxy_finish(manager, tmp_path, fake_galaxy, "504", job.description.client_outputs) == []
