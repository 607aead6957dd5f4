"""Job metrics with Galaxy's own plugins (galaxy-job-metrics): the options, and a real job
whose `__instrument_*` files Galaxy's plugin classes parse back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pulsar.errors import ConfigurationError
from pulsar.jobs.metrics import build_instrumenter

JobMetrics = pytest.importorskip("galaxy.job_metrics", reason="galaxy-job-metrics (the metrics extra) is installed "
                                 "by make setup-venv").JobMetrics

ALL_PLUGINS = [{"type": "core"}, {"type": "cpuinfo"}, {"type": "meminfo"}, {"type": "uname"}, {"type": "env"}]


def _plugins(instrumenter: Any) -> list[str]:
    return [plugin.plugin_type for plugin in instrumenter.plugins]


def test_default_is_galaxys_core_plugin() -> None:
    assert _plugins(build_instrumenter({})) == ["core"]


def test_listed_plugins_and_empty_list_turns_off() -> None:
    assert _plugins(build_instrumenter({"job_metrics": ALL_PLUGINS})) == ["core", "cpuinfo", "meminfo", "uname", "env"]
    assert build_instrumenter({"job_metrics": []}) is None


def test_config_file_relative_to_config_dir(tmp_path: Path) -> None:
    (tmp_path / "job_metrics_conf.yml").write_text("- type: core\n- type: uname\n")
    instrumenter = build_instrumenter({"job_metrics_config_file": "job_metrics_conf.yml", "config_dir": str(tmp_path)})
    assert _plugins(instrumenter) == ["core", "uname"]


@pytest.mark.parametrize("options, message", [
    ({"job_metrics": [{"type": "nosuch"}]}, "unknown plugin nosuch"),
    ({"job_metrics": "core"}, "expected a list"),
    ({"job_metrics_config_file": "/nonexistent/job_metrics_conf.yml"}, "no such file"),
])
def test_bad_options_stop_the_start(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_instrumenter(options)


def test_embedding_galaxys_job_metrics_object_is_used_as_is() -> None:
    metrics = JobMetrics(conf_dict=[{"type": "uname"}])
    assert build_instrumenter({"job_metrics": metrics}) is metrics.default_job_instrumenter


@pytest.mark.integration
def test_a_job_leaves_files_galaxys_plugins_parse(pulsar_server_factory: Any, tmp_path: Path) -> None:
    from pulsar.client import build_client_manager

    staging = tmp_path / "staging"
    server = pulsar_server_factory(app_config={"staging_directory": str(staging), "job_metrics": ALL_PLUGINS})
    client = build_client_manager().get_client({"url": server.url, "private_token": server.token}, "m1")
    client.setup("t", "1")
    client.launch("sleep 1.1; echo done", remote_staging={}, job_config={"job_id": "m1"})
    deadline = time.monotonic() + 60
    while client.get_status() != "complete" and time.monotonic() < deadline:
        time.sleep(0.1)
    status = client.full_status()
    assert status["returncode"] == 0, status
    assert any(name.startswith("__instrument_core_") for name in status["metadata_directory_contents"]), status
    metadata = staging / "m1" / "metadata"
    properties = JobMetrics(conf_dict=ALL_PLUGINS).default_job_instrumenter.collect_properties("m1", str(metadata))
    core = properties["core"]
    assert core["runtime_seconds"] >= 1 and core["galaxy_slots"] == 1, core
    assert properties["cpuinfo"]["processor_count"] >= 1
    assert properties["meminfo"]["memtotal"] > 0
    assert properties["uname"]["uname"].startswith("Linux")
    assert properties["env"]["GALAXY_SLOTS"] == "1" and "PATH" in properties["env"]
