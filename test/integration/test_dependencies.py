"""Tool dependency resolution on the server with Galaxy's resolvers (galaxy-tool-util):
a job launched by the REFERENCE client 0.15.16 with a `dependencies_description` (a
DependenciesDescription, as Galaxy builds it for `dependency_resolution: remote`) finds one
tool through a galaxy_packages directory and one through an environment module (Debian's
environment-modules, installed by .ci/run)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pulsar.errors import ConfigurationError
from pulsar.jobs.dependencies import build_resolver
from test.integration.test_reference_clients import reference_env
from test.support.reference import reference_bin, reference_script

MODULECMD = "/usr/bin/modulecmd"

CLIENT_SCRIPT = r'''
import json, sys
from reference_client_jobs import wait_terminal
from galaxy.tool_util.deps.dependencies import DependenciesDescription
from galaxy.tool_util.deps.requirements import ToolRequirements
from pulsar.client.manager import build_client_manager
from pulsar.client.staging import ClientJobDescription, ClientOutputs
from pulsar.client.staging.up import submit_job

url, token, work = sys.argv[1:4]
client = build_client_manager().get_client({"url": url, "private_token": token}, job_id="deps1")
requirements = ToolRequirements.from_list([
    {"name": "pkgtool", "version": "1.0", "type": "package"},
    {"name": "modtool", "version": "2.0", "type": "package"},
])
description = ClientJobDescription(
    command_line="pkgtool > ../metadata/tool_stdout; modtool >> ../metadata/tool_stdout",
    client_outputs=ClientOutputs(working_directory=work, metadata_directory=work, output_files=[]),
    working_directory=work, metadata_directory=work,
    dependencies_description=DependenciesDescription(requirements=requirements, installed_tool_dependencies=[]),
)
submit_job(client, description)
status, _ = wait_terminal(client)
print("RESULT " + json.dumps({k: status.get(k) for k in ("status", "returncode", "stdout", "stderr", "job_stderr")}))
'''


def _tool(directory: Path, name: str, says: str) -> None:
    directory.mkdir(parents=True)
    (directory / name).write_text(f"#!/bin/sh\necho {says}\n")
    (directory / name).chmod(0o755)


@pytest.fixture
def resolvers(tmp_path: Path) -> dict[str, Any]:
    """A galaxy_packages tree (pkgtool 1.0) and a module path (modtool/2.0)."""
    if not os.access(MODULECMD, os.X_OK):
        message = f"{MODULECMD} missing: apt-get install environment-modules (.ci/run does)"
        if os.environ.get("PULSAR_TEST_REQUIRE_SCHEDULERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    packages = tmp_path / "deps"
    _tool(packages / "pkgtool" / "1.0" / "bin", "pkgtool", "from-galaxy-packages")
    (packages / "pkgtool" / "1.0" / "env.sh").write_text(f"PATH={packages}/pkgtool/1.0/bin:$PATH; export PATH\n")
    modules = tmp_path / "modulefiles"
    _tool(tmp_path / "modtool-2.0" / "bin", "modtool", "from-a-module")
    (modules / "modtool").mkdir(parents=True)
    (modules / "modtool" / "2.0").write_text(f"#%Module1.0\nprepend-path PATH {tmp_path}/modtool-2.0/bin\n")
    return {
        "tool_dependency_dir": str(packages),
        "dependency_resolution": {"resolvers": [
            {"type": "modules", "modulecmd": MODULECMD, "modulepath": str(modules), "find_by": "directory"},
            {"type": "galaxy_packages"},
        ]},
    }


def test_reference_client_job_finds_tools_through_packages_and_modules(
        resolvers: dict[str, Any], pulsar_server_factory: Any, tmp_path: Path) -> None:
    server = pulsar_server_factory(app_config=resolvers)
    work = tmp_path / "client"
    work.mkdir()
    run = subprocess.run([str(reference_bin("galaxy-lib-0.15.16", "python")), "-c", reference_script(CLIENT_SCRIPT), server.url,
                          str(server.token), str(work)],
                         capture_output=True, text=True, env=reference_env(), timeout=300, cwd=work)  # not ours on sys.path
    assert run.returncode == 0 and "RESULT " in run.stdout, f"{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    final = json.loads(run.stdout.rsplit("RESULT ", 1)[1])
    assert final["status"] == "complete" and final["returncode"] == 0, (final, server.log_text()[-3000:])
    assert final["stdout"].split() == ["from-galaxy-packages", "from-a-module"], final


def test_without_tool_dependency_dir_nothing_is_resolved() -> None:
    assert build_resolver({}) is None


@pytest.mark.parametrize("options, message", [
    ({"dependency_resolution": {"resolvers": [{"type": "galaxy_packages"}]}}, "set tool_dependency_dir too"),
    ({"tool_dependency_dir": "/tmp", "dependency_resolvers_config_file": "/nonexistent.yml"}, "no such file"),
    ({"tool_dependency_dir": "/tmp", "dependency_resolution": {"resolvers": [{"type": "nosuch"}]}},
     "tool dependency resolution"),
])
def test_bad_resolution_options_stop_the_start(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_resolver(options)
