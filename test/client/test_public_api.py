"""The public surface Galaxy 26.1 imports, in both the 0.15 and 0.16 layouts, is pinned here."""

from __future__ import annotations

import importlib
import inspect

import pulsar.client
import pulsar.client.staging

GALAXY_PACKAGE_NAMES = [
    "build_client_manager", "CLIENT_INPUT_PATH_TYPES", "ClientInput", "ClientInputs", "ClientJobDescription",
    "ClientOutputs", "EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN", "finish_job", "PathMapper",
    "PulsarClientTransportError", "PulsarOutputs", "submit_job", "url_to_destination_params",
]

IMPLEMENTATION_HOMES = {
    "build_client_manager": "pulsar.client.manager",
    "ClientManager": "pulsar.client.manager",
    "BaseJobClient": "pulsar.client.client",
    "CLIENT_INPUT_PATH_TYPES": "pulsar.client.staging.inputs",
    "ClientInput": "pulsar.client.staging.inputs",
    "ClientInputs": "pulsar.client.staging.inputs",
    "ClientJobDescription": "pulsar.client.staging.models",
    "ClientOutputs": "pulsar.client.staging.models",
    "PulsarOutputs": "pulsar.client.staging.models",
    "submit_job": "pulsar.client.staging.up",
    "finish_job": "pulsar.client.staging.down",
    "PathMapper": "pulsar.client.path_mapper",
    "url_to_destination_params": "pulsar.client.destination",
    "PulsarClientTransportError": "pulsar.client.exceptions",
    "OutputNotFoundException": "pulsar.client.exceptions",
    "MessageQueueClientManager": "pulsar.client.manager",
    "MessageJobClient": "pulsar.client.client",
}

#: The message-queue classes' own modules (importable without kombu).
MQ_HOMES = {"MessageQueueClientManager": "pulsar.client.mq_manager", "MessageJobClient": "pulsar.client.mq_client"}

PINNED_ALL = sorted([
    "BaseJobClient", "build_client_manager", "CLIENT_INPUT_PATH_TYPES", "ClientInput", "ClientInputs",
    "ClientJobDescription", "ClientManager", "ClientOutputs", "COMMAND_VERSION_FILENAME",
    "DEFAULT_DYNAMIC_COLLECTION_PATTERN", "EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN", "finish_job", "JobClient",
    "MessageJobClient", "MessageQueueClientManager", "OutputNotFoundException", "PathMapper",
    "PulsarClientTransportError", "PulsarOutputs", "submit_job", "url_to_destination_params",
])


def test_galaxy_imports_work_verbatim() -> None:
    namespace: dict[str, object] = {}
    exec(  # the exact statements of galaxy/jobs/runners/pulsar.py and galaxy/jobs/__init__.py
        "import pulsar.core\n"
        "from pulsar.client import (build_client_manager, CLIENT_INPUT_PATH_TYPES, ClientInput, ClientInputs,"
        " ClientJobDescription, ClientOutputs, EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN,"
        " finish_job as pulsar_finish_job, PathMapper, PulsarClientTransportError, PulsarOutputs,"
        " submit_job as pulsar_submit_job, url_to_destination_params)\n"
        "from pulsar.client.staging import DEFAULT_DYNAMIC_COLLECTION_PATTERN\n"
        "from pulsar.client.staging import COMMAND_VERSION_FILENAME\n"
        "from pulsar.client.client import BaseJobClient\n"
        "from pulsar.managers.util.retry import RetryActionExecutor\n",
        namespace,
    )
    assert namespace["COMMAND_VERSION_FILENAME"] == "COMMAND_VERSION"


def test_package_surface_is_pinned() -> None:
    assert sorted(pulsar.client.__all__) == PINNED_ALL
    for name in PINNED_ALL:
        assert hasattr(pulsar.client, name)
    assert sorted(pulsar.client.staging.__all__) == sorted(
        ["COMMAND_VERSION_FILENAME", "DEFAULT_DYNAMIC_COLLECTION_PATTERN", "EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN"]
    )


def test_implementation_modules_hold_the_same_objects() -> None:
    for name, module_name in {**IMPLEMENTATION_HOMES, **MQ_HOMES}.items():
        module = importlib.import_module(module_name)
        assert getattr(module, name) is getattr(pulsar.client, name), name
    for module_name in ("pulsar.client.exceptions", "pulsar.client.destination", "pulsar.client.path_mapper"):
        importlib.import_module(module_name)


def test_constants() -> None:
    assert pulsar.client.EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN == [r"outputs_populated/.*"]
    pattern = pulsar.client.staging.DEFAULT_DYNAMIC_COLLECTION_PATTERN
    assert isinstance(pattern, list) and len(pattern) == 1
    copy = pattern[:]
    copy.append("x")  # Galaxy copies and extends
    import re

    regex = re.compile(pattern[0])
    for name in ["primary_1_a_visible_txt", "galaxy.json", "metadata_x", "dataset_12.dat", "__instrument_cpu",
                 "dataset_3_files/a", "outputs_populated/x", "tool_stdout", "tool_stderr"]:
        assert regex.match(name), name
    assert not regex.match("random.txt")
    types = pulsar.client.CLIENT_INPUT_PATH_TYPES
    assert (types.INPUT_PATH, types.INPUT_EXTRA_FILES_PATH, types.INPUT_METADATA_PATH) == (
        "input_path", "input_extra_files_path", "input_metadata_path")


def _parameters(callable_: object) -> list[str]:
    return list(inspect.signature(callable_).parameters)  # type: ignore[arg-type]


def test_signatures_galaxy_relies_on() -> None:
    c = pulsar.client
    assert _parameters(c.submit_job) == ["client", "client_job_description", "job_config"]
    assert _parameters(c.finish_job) == ["client", "cleanup_job", "job_completed_normally", "client_outputs",
                                         "pulsar_outputs"]
    assert _parameters(c.PathMapper) == ["client", "remote_job_config", "local_working_directory", "action_mapper"]
    assert _parameters(c.PulsarClientTransportError) == ["code", "message", "transport_code", "transport_message"]
    assert _parameters(c.ClientInput) == ["path", "input_type", "object_store_ref"]
    assert _parameters(c.ClientJobDescription) == [
        "command_line", "tool", "config_files", "input_files", "client_inputs", "client_outputs",
        "working_directory", "metadata_directory", "dependencies_description", "env", "arbitrary_files",
        "job_directory_files", "tool_directory_required_files", "rewrite_paths", "touch_outputs", "container",
        "remote_pulsar_app_config", "guest_ports"]
    assert _parameters(c.ClientOutputs) == [
        "working_directory", "output_files", "work_dir_outputs", "version_file", "dynamic_outputs",
        "metadata_directory", "job_directory", "dynamic_file_sources", "dataset_collector_descriptions"]
    for name in ("TIMEOUT", "CONNECTION_REFUSED", "NOT_200", "UNKNOWN"):
        assert hasattr(c.PulsarClientTransportError, name)
    for method in ("setup", "get_status", "full_status", "kill", "clean", "launch", "put_file", "fetch_output"):
        assert callable(getattr(c.JobClient, method))
        assert callable(getattr(c.MessageJobClient, method))
    assert _parameters(c.MessageQueueClientManager)[:5] == ["amqp_url", "manager", "cache", "transport",
                                                           "persistence_directory"]
    for method in ("get_client", "shutdown", "ensure_has_status_update_callback", "ensure_has_ack_consumers"):
        assert callable(getattr(c.MessageQueueClientManager, method))
    assert _parameters(c.MessageJobClient.launch)[1:8] == [
        "command_line", "dependencies_description", "env", "remote_staging", "job_config", "dynamic_file_sources",
        "token_endpoint"]
    assert callable(c.PulsarOutputs.from_status_response)
    assert callable(c.ClientInputs.for_simple_input_paths)


def test_client_outputs_round_trip_and_wire_keys() -> None:
    outputs = pulsar.client.ClientOutputs(
        working_directory="/w", output_files=["/o/a.dat"], work_dir_outputs=[("/w/x", "/o/b.dat")],
        version_file="/o/V", metadata_directory="/m", dynamic_file_sources=[{"path": "galaxy.json", "type": "galaxy"}],
    )
    data = outputs.to_dict()
    # The keys the reference server reads back from remote_staging.client_outputs.
    assert list(data) == ["working_directory", "metadata_directory", "job_directory", "work_dir_outputs",
                          "output_files", "version_file", "dynamic_outputs", "dynamic_file_sources",
                          "dataset_collector_descriptions"]
    assert pulsar.client.ClientOutputs.from_dict(data).to_dict() == data
    assert outputs.dynamic_match("galaxy.json") and not outputs.dynamic_match("other")


def test_job_description_rejects_both_input_forms() -> None:
    import pytest

    with pytest.raises(AssertionError):
        pulsar.client.ClientJobDescription("true", input_files=["/a"], client_inputs=pulsar.client.ClientInputs([]))


def test_message_queue_classes_import_without_kombu_or_server_code() -> None:
    """kombu is optional: importing the client (MQ names included) must not load it, and the
    MQ client must not pull in the server's packages even once a manager is built."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from pulsar.client import MessageQueueClientManager, MessageJobClient, build_client_manager\n"
        "assert 'kombu' not in sys.modules, 'kombu imported eagerly'\n"
        "manager = build_client_manager(amqp_url='amqp://guest:guest@127.0.0.1:1//', manager='m')\n"
        "manager.shutdown()\n"
        "server = ('pulsar.messaging', 'pulsar.jobs', 'pulsar.web', 'pulsar.core')\n"
        "print(sorted(m for m in sys.modules if m.startswith(server)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_output_not_found_has_the_reference_name_too() -> None:
    """The reference's `pulsar.client` exports `OutputNotFoundException`; a caller catching it
    catches our missing-output error (and, as before, `PulsarClientTransportError`)."""
    from pulsar.client.exceptions import OutputNotFound

    assert pulsar.client.OutputNotFoundException is OutputNotFound
    assert issubclass(OutputNotFound, pulsar.client.PulsarClientTransportError)


def test_client_never_imports_the_server() -> None:
    """Layering: client -> transport -> staging.  `pulsar.client` imports none of the server's
    packages (the embedded mode gets its WSGI app from the PulsarApp it is handed)."""
    import ast
    from pathlib import Path

    server = ("pulsar.web", "pulsar.managers", "pulsar.jobs", "pulsar.core", "pulsar.messaging", "pulsar.main",
              "pulsar.scripts", "pulsar.config")
    client_dir = Path(pulsar.client.__file__).parent
    offenders = []
    for path in sorted(client_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(client_dir)}: {name}" for name in names if name.startswith(server)]
    assert offenders == []
