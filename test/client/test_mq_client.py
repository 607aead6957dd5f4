"""What the MQ client publishes, read back with raw kombu on the real broker (spec mq-protocol 3.2-3.4, 6.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pulsar.client import (
    MessageJobClient,
    MessageQueueClientManager,
    PulsarOutputs,
    build_client_manager,
    finish_job,
    submit_job,
)
from pulsar.client.exceptions import PulsarClientError, UnsupportedClientMode
from test.client.mq_broker import ManagerFactory, RawBroker
from test.client.mq_jobs import destination, galaxy_job
from test.support.polling import wait_for

pytestmark = pytest.mark.rabbitmq

SETUP_KEYS = {"job_id", "command_line", "setup_params", "remote_staging", "env", "dynamic_file_sources",
              "token_endpoint"}

def client_for(manager: MessageQueueClientManager, tmp_path: Path, job_id: str, **extra: Any) -> MessageJobClient:
    return manager.get_client(destination(tmp_path / "remote-jobs", **extra), job_id=job_id,
                              files_endpoint=f"http://galaxy.test/api/jobs/{job_id}/files?job_key=K",
                              token_endpoint=f"http://galaxy.test/api/jobs/{job_id}/oidc-tokens?job_key=K",
                              env=[])


def test_submit_job_publishes_one_setup_with_the_reference_keys(broker: RawBroker, managers: ManagerFactory,
                                                                 tmp_path: Path, unique_manager: str) -> None:
    manager = managers()
    client = client_for(manager, tmp_path, "101", submit_native_specification="-q probe", ssh_key="KEY")
    job = galaxy_job(client, tmp_path / "galaxy", "101")
    assert submit_job(client, job.description, job.setup) == "101"

    message = broker.get("setup")
    body = message.body
    assert message.content_type == "application/json" and message.properties["delivery_mode"] == 2
    assert message.delivery_info["routing_key"] == f"pulsar_{unique_manager}__setup"
    assert set(body) == SETUP_KEYS | {"submit_params"}
    assert body["job_id"] == "101"
    assert body["setup_params"] == {"job_id": "101", "tool_id": "cat1", "tool_version": "1.0.0",
                                    "use_metadata": True, "preserve_galaxy_python_environment": None}
    assert body["submit_params"] == {"native_specification": "-q probe"}
    assert body["env"] == [{"name": "PROBE_VAR", "value": "probe value"}]
    assert body["dynamic_file_sources"] == [{"path": "galaxy.json", "type": "galaxy"}]
    assert body["token_endpoint"].endswith("/oidc-tokens?job_key=K")
    staging = body["remote_staging"]
    assert staging["ssh_key"] == "KEY"
    assert staging["action_mapper"]["files_endpoint"] == "http://galaxy.test/api/jobs/101/files?job_key=K"
    assert staging["client_outputs"]["output_files"] == [str(job.output_path)]
    entries = {(e["type"], e["name"]): e["action"] for e in staging["setup"]}
    assert entries[("input", job.input_path.name)]["action_type"] == "remote_transfer"
    assert entries[("input", job.input_path.name)]["url"].endswith("file_type=input")
    assert entries[("config", "tool_script.sh")] == {"action_type": "message",
                                                     "contents": job.config_path.read_text()}
    for logical in ("setup", "kill", "status", "status_update"):
        assert broker.depth(logical) == 0, logical  # exactly one message, nothing elsewhere


def test_minimal_launch_and_touch_outputs(broker: RawBroker, managers: ManagerFactory, tmp_path: Path) -> None:
    client = client_for(managers(), tmp_path, "7")
    client.launch("true", touch_outputs=["o.dat"])
    body = broker.get("setup").body
    assert set(body) == {"job_id", "command_line", "setup_params", "remote_staging", "dynamic_file_sources",
                         "token_endpoint", "touch_outputs"}
    assert body["setup_params"]["job_id"] == "7"  # the server needs it to create the job directory
    assert body["remote_staging"] == {"ssh_key": None} and body["touch_outputs"] == ["o.dat"]


def test_kill_and_status_request_use_their_own_queues(broker: RawBroker, managers: ManagerFactory,
                                                      tmp_path: Path) -> None:
    client = client_for(managers(), tmp_path, "55")
    client.kill()
    assert client.get_status() is None
    assert broker.get("kill").body == {"job_id": "55"}
    assert broker.get("status").body == {"request": "status", "job_id": "55", "force_noack": True}
    assert broker.depth("setup") == 0  # never on setup (B8, spec 9)


def test_uuid_jobs_publish_the_uuid_and_finish_by_the_galaxy_id(broker: RawBroker, managers: ManagerFactory,
                                                                  tmp_path: Path) -> None:
    manager = managers()
    manager.ensure_has_status_update_callback(lambda body: None)
    client = client_for(manager, tmp_path, "42", assign_ids="uuid")
    job = galaxy_job(client, tmp_path / "galaxy", "42")
    uuid = submit_job(client, job.description, job.setup)
    assert len(uuid) == 32 and broker.get("setup").body["job_id"] == uuid
    broker.publish("status_update", {"job_id": uuid, "complete": "true", "status": "complete", "returncode": 0})
    finisher = client_for(manager, tmp_path, "42")  # Galaxy's finish step: a new client, Galaxy's id
    status = wait_for(lambda: manager.status_cache.get("42"), what="the cached uuid status under the Galaxy id")
    assert finisher.full_status() is status and status["job_id"] == uuid
    finisher.clean()
    assert manager.status_cache == {}


def test_finish_job_skips_remote_actions_and_cleans(broker: RawBroker, managers: ManagerFactory,
                                                    tmp_path: Path) -> None:
    manager = managers()
    client = client_for(manager, tmp_path, "9")
    job = galaxy_job(client, tmp_path / "galaxy", "9")
    submit_job(client, job.description, job.setup)
    manager.status_cache["9"] = {"job_id": "9", "complete": "true", "status": "complete", "returncode": 0,
                                 "working_directory_contents": [], "metadata_directory_contents": ["tool_stdout"],
                                 "outputs_directory_contents": [job.output_path.name], "job_directory_contents": [],
                                 "system_properties": {"separator": "/"}}
    finisher = client_for(manager, tmp_path, "9")
    outputs = PulsarOutputs.from_status_response(finisher.full_status())
    failures = finish_job(finisher, cleanup_job="always", job_completed_normally=True,
                          client_outputs=job.description.client_outputs, pulsar_outputs=outputs)
    assert failures == [] and "9" not in manager.status_cache
    with pytest.raises(PulsarClientError, match="no status update"):
        finisher.full_status()
    assert broker.depth("kill") == 0 and broker.depth("status") == 0  # clean() sends nothing


def test_local_file_actions_are_refused_clearly(managers: ManagerFactory, tmp_path: Path) -> None:
    client = client_for(managers(), tmp_path, "3", default_file_action="transfer")
    job = galaxy_job(client, tmp_path / "galaxy", "3")
    with pytest.raises(PulsarClientError, match="remote_transfer"):
        submit_job(client, job.description, job.setup)


@pytest.mark.parametrize("param", ["shell_plugin", "k8s_enabled", "tes_url", "project_id"])
def test_unsupported_client_modes(managers: ManagerFactory, tmp_path: Path, param: str) -> None:
    with pytest.raises(UnsupportedClientMode, match=param):
        managers().get_client(destination(tmp_path, **{param: "x"}), "1")


def test_jobs_directory_is_required(managers: ManagerFactory) -> None:
    with pytest.raises(PulsarClientError, match="jobs_directory"):
        managers().get_client({"default_file_action": "remote_transfer"}, "1")


def test_bad_amqp_options_stop_the_start(amqp_url: str) -> None:
    from pulsar.shared.amqp import AmqpConfigError

    with pytest.raises(AmqpConfigError, match="amqp_acknowledg"):
        build_client_manager(amqp_url=amqp_url, manager="x", amqp_acknowledgee=True)
    with pytest.raises(AmqpConfigError, match="amqp_url"):
        build_client_manager(amqp_url="http://relay.example/", manager="x")


def test_key_prefix_of_the_runner_names_the_queues(amqp_url: str, unique_manager: str, tmp_path: Path) -> None:
    prefix = f"p{unique_manager}"
    broker = RawBroker(amqp_url, unique_manager, prefix=prefix)
    manager = build_client_manager(amqp_url=amqp_url, manager="other", amqp_key_prefix=prefix)
    assert isinstance(manager, MessageQueueClientManager) and manager.amqp_key_prefix == prefix
    try:
        client = manager.get_client(destination(tmp_path, amqp_key_prefix="ignored"), "1")
        client.kill()
        assert broker.get("kill").delivery_info["routing_key"] == f"{prefix}_kill"
    finally:
        manager.shutdown()
        broker.delete_all()
        broker.close()
