"""Interop: the REFERENCE client libraries (pulsar-galaxy-lib 0.15.16, which released Galaxy
uses, and 0.16.0) drive OUR server, each from its own venv in a subprocess.

(a) the reference `pulsar-check` must pass; (b) reference_client_jobs.py runs jobs through
the public client API Galaxy uses and reports what it saw, asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test.support.reference import reference_bin
from test.support.server import PulsarServer, start_server

REFERENCE_CLIENTS = ["galaxy-lib-0.15.16", "galaxy-lib-0.16.0"]
SCRIPT = Path(__file__).with_name("reference_client_jobs.py")

pytestmark = [pytest.mark.integration, pytest.mark.reference, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulsarServer]:
    """One server for the module: each reference run uses its own job ids."""
    running = start_server(tmp_path_factory.mktemp("server"))
    try:
        yield running
    finally:
        running.stop()


def reference_env() -> dict[str, str]:
    """A clean environment: nothing from our venv may leak into the reference one."""
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LC_ALL": "C.UTF-8"}


@pytest.mark.parametrize("client", REFERENCE_CLIENTS)
def test_reference_pulsar_check_passes(client: str, server: PulsarServer, tmp_path: Path) -> None:
    check = reference_bin(client, "pulsar-check")
    assert server.token is not None
    result = subprocess.run(
        [str(check), "--url", server.url, "--private_token", server.token],
        capture_output=True, text=True, cwd=tmp_path, env=reference_env(), timeout=600,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}\n{server.log_text()[-3000:]}"


@pytest.fixture(scope="module", params=REFERENCE_CLIENTS)
def reference_results(request: pytest.FixtureRequest, server: PulsarServer,
                      tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run reference_client_jobs.py once per reference client."""
    python = reference_bin(request.param, "python")
    tmp_path = tmp_path_factory.mktemp(request.param)
    result_path = tmp_path / "result.json"
    work = tmp_path / "client"
    work.mkdir()
    run = subprocess.run(
        [str(python), str(SCRIPT), server.url, str(server.token), str(work), str(result_path)],
        capture_output=True, text=True, cwd=tmp_path, env=reference_env(), timeout=600,
    )
    assert run.returncode == 0 and result_path.exists(), f"{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    results: dict[str, Any] = json.loads(result_path.read_text())
    for name, observed in results.items():
        assert "error" not in observed, f"{name} raised in the reference client:\n{observed['error']}\n" \
                                        f"server log:\n{server.log_text()[-3000:]}"
    return results


def test_job_with_inputs_tool_config_and_all_output_kinds(reference_results: dict[str, Any]) -> None:
    job = reference_results["full_job"]
    assert job["statuses"][-1] == "complete"
    assert job["final"] == {"status": "complete", "complete": "true", "returncode": 0,
                            "stdout": "tool says hi\n", "stderr": "tool complains\n"}
    assert job["finish_failures"] == []
    # the input, tool script and config file were staged and the command line rewritten
    assert job["output"] == "input one\nconfig line\n"
    assert job["work_dir_output"] == "from the working directory\n"
    assert job["metadata_output"] == '{"k": 1}\n'
    assert job["tool_stdout_downloaded"] == "tool says hi\n"
    # finish_job cleaned the job up: the server no longer knows it
    assert job["status_after_clean"] == "lost"


def test_non_zero_exit_is_complete_with_its_return_code(reference_results: dict[str, Any]) -> None:
    job = reference_results["failing_job"]
    assert job["final"] == {"status": "complete", "complete": "true", "returncode": 3, "stdout": "failing\n"}
    assert job["finish_failures"] == []


def test_cancel_running_job(reference_results: dict[str, Any]) -> None:
    job = reference_results["cancelled_job"]
    assert "running" in job["statuses"]
    assert job["final"] == {"status": "cancelled", "complete": "true"}
    assert job["status_after_clean"] == "lost"
