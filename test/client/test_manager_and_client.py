"""Client manager selection and the exact requests a job client sends (spec 4.4)."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl

import pytest

import pulsar
from pulsar.client import build_client_manager
from pulsar.client.exceptions import PulsarClientError, UnsupportedClientMode
from pulsar.client.manager import ClientManager
from pulsar.client.transport import WsgiTransport


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        query = dict(parse_qsl(environ["QUERY_STRING"], keep_blank_values=True))
        self.requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], query))
        if environ["PATH_INFO"].endswith("/status"):
            body = b'{"status": "running", "complete": "false", "job_id": "7"}'
        elif environ["PATH_INFO"] == "/jobs":
            body = b'{"job_id": "7", "working_directory": "/s/7/working"}'
        else:
            body = b"OK"
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return iter([body])


@pytest.mark.parametrize("kwargs", [{"relay_url": "http://r"}, {"k8s_enabled": True}, {"tes_enabled": True},
                                    {"gcp_batch_enabled": True}, {"job_manager": object()},
                                    {"amqp_url": "amqp://x", "k8s_enabled": True}])
def test_unimplemented_modes_are_refused_clearly(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedClientMode):
        build_client_manager(manager=None, cache=None, transport=None, persistence_directory=None, **kwargs)


def test_amqp_url_builds_the_message_queue_manager(tmp_path: Any) -> None:
    """Galaxy's MQ runner kwargs; building connects to nothing (the consumers do, later)."""
    from pulsar.client import MessageQueueClientManager  # kombu: installed by `make setup-venv` (extra amqp)

    manager = build_client_manager(amqp_url="amqp://u:secret@127.0.0.1:1//", manager="cluster", cache=None,
                                   transport=None, persistence_directory=str(tmp_path), amqp_acknowledge="true",
                                   amqp_publish_retry_max_retries="3", pulsar_app=object())
    assert isinstance(manager, MessageQueueClientManager)
    assert (manager.manager_name, manager.url, manager.amqp_key_prefix) == ("cluster", "amqp://u:secret@127.0.0.1:1//",
                                                                            None)
    assert manager.exchange.queue("setup") == "pulsar_cluster__setup" and manager.status_cache == {}
    assert manager.exchange.settings.acks_enabled
    manager.shutdown()


def test_galaxy_rest_kwargs_build_an_http_manager() -> None:
    manager = build_client_manager(manager=None, cache=None, transport=None, persistence_directory=None,
                                   transport_timeout=30)
    client = manager.get_client({"url": "http://h:8913", "private_token": "t", "manager": "m", "env": ["old"]},
                                job_id="5", files_endpoint="http://g/f?k=1", token_endpoint="http://g/t?k=2", env=[])
    assert client.api.base_url == "http://h:8913/managers/m/"
    assert client.files_endpoint == "http://g/f?k=1" and client.token_endpoint == "http://g/t?k=2"
    assert client.env == [] and client.destination_params["env"] is client.env
    with pytest.raises(UnsupportedClientMode):
        manager.get_client({"url": "http://h", "tes_url": "http://tes"}, job_id="1")
    manager.shutdown()


def test_legacy_string_destination() -> None:
    client = build_client_manager().get_client("pulsar://tok@h:1/", "3")
    assert client.api.private_token == "tok" and client.api.base_url == "http://h:1/"


def recording_client(**params: Any) -> tuple[Any, Recorder]:
    recorder = Recorder()
    manager = ClientManager(transport=WsgiTransport(recorder))
    return manager.get_client({"url": "http://h/", "private_token": "tok", **params}, "7"), recorder


def test_launch_query_parameters() -> None:
    client, recorder = recording_client(submit_native_specification="-n 4")
    client.launch("echo hi", dependencies_description={"requirements": []}, env=[{"name": "A", "value": "1"}],
                  remote_staging={"action_mapper": {}}, job_config={"job_id": "7"}, dynamic_file_sources=[],
                  token_endpoint="http://g/t", touch_outputs=["o.dat"])
    method, path, query = recorder.requests[-1]
    assert (method, path) == ("POST", "/jobs/7/submit")
    assert query == {
        "job_id": "7", "command_line": "echo hi", "params": json.dumps({"native_specification": "-n 4"}),
        "dependencies_description": json.dumps({"requirements": []}),
        "env": json.dumps([{"name": "A", "value": "1"}]), "remote_staging": json.dumps({"action_mapper": {}}),
        "submit_extras": json.dumps({"touch_outputs": ["o.dat"]}),
        "token_endpoint": json.dumps({"token_endpoint": "http://g/t"}), "dynamic_file_sources": "[]",
        "private_token": "tok",
    }
    bare, recorder = recording_client()
    bare.launch("true")  # optional parameters are left out
    assert set(recorder.requests[-1][2]) == {"job_id", "command_line", "remote_staging", "private_token"}


def test_launch_refuses_container_options() -> None:
    client, _ = recording_client()
    with pytest.raises(PulsarClientError) as info:
        client.launch("true", container_info={"container_id": "x"})
    assert "container_info" in str(info.value)


def test_control_calls() -> None:
    client, recorder = recording_client()
    assert client.get_status() == "running"
    client.kill()
    client.clean()
    assert [(m, p) for m, p, _ in recorder.requests] == [
        ("GET", "/jobs/7/status"), ("PUT", "/jobs/7/cancel"), ("DELETE", "/jobs/7")]
    client.setup("cat1", "1.0", True)
    method, path, query = recorder.requests[-1]
    assert (method, path) == ("POST", "/jobs")
    assert query["tool_id"] == "cat1" and query["use_metadata"] == "true"
    assert query["preserve_galaxy_python_environment"] == "True"


def test_local_setup_makes_no_request(tmp_path: Any) -> None:
    client, recorder = recording_client(jobs_directory="/remote/jobs", remote_property_galaxy_home="/gh",
                                        remote_sep="/")
    config = client.setup("cat1", "1.0")
    assert recorder.requests == []
    assert config["working_directory"] == "/remote/jobs/7/working"
    assert config["tools_directory"] == "/remote/jobs/7/tool_files"
    assert config["system_properties"] == {"galaxy_home": "/gh", "separator": "/"}
    assert config["pulsar_version"] == pulsar.__version__
    assert config["setup_params"]["job_id"] == "7"
    client.launch("true", job_config=config)
    assert json.loads(recorder.requests[-1][2]["setup_params"])["tool_id"] == "cat1"
    uuid_client, _ = recording_client(jobs_directory="/r", assign_ids="uuid")
    assert len(uuid_client.setup()["job_id"]) == 32 and len(uuid_client.job_id) == 32
