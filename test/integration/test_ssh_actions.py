"""Whole jobs whose files move by scp and by rsync (`remote_scp_transfer`,
`remote_rsync_transfer`): our server over HTTP fetches the inputs from, and sends the outputs
to, the "Galaxy host" -- a private sshd on loopback (test.support.sshd) -- with the key,
user, host and port the client passes; driven by our client and by the reference client
0.15.16 (its own venv, in a subprocess).  A key the host refuses fails the job with ssh's own
message in stderr."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pulsar.client import ClientJobDescription, ClientOutputs, build_client_manager, submit_job
from pulsar.scripts.check import run_check
from test.integration.test_reference_clients import reference_env
from test.support.polling import wait_for
from test.support.reference import reference_bin
from test.support.server import PulsarServer
from test.support.sshd import SshServer

TOOLS = ["remote_scp_transfer", "remote_rsync_transfer"]
SCRIPT = Path(__file__).with_name("reference_ssh_job.py")

pytestmark = [pytest.mark.timeout(600)]


def ssh_params(server: SshServer) -> dict[str, str]:
    """Galaxy's destination params for the ssh actions (the key is the key's text)."""
    return {"ssh_user": server.user, "ssh_host": server.host, "ssh_port": str(server.port),
            "ssh_key": server.user_key.read_text()}


def known_hosts(server: PulsarServer) -> Path:
    return server.config_dir / "persisted" / "ssh_known_hosts"


@pytest.mark.parametrize("tool", TOOLS)
def test_our_client_runs_a_job_whose_files_move_over_ssh(tool: str, ssh_server: SshServer,
                                                         pulsar_server: PulsarServer) -> None:
    """pulsar-check's job: inputs, extra files, input metadata, a tool directory, unstructured
    reference data (a file-action rule), config files, declared, working-directory and
    metadata outputs -- each verified byte for byte."""
    problems = run_check(pulsar_server.url, pulsar_server.token, default_file_action=tool, job_id=f"ssh-{tool}",
                         test_errors=True, log=lambda message: None, destination=ssh_params(ssh_server))
    assert problems == [], pulsar_server.log_text()[-3000:]
    # trust on first use: the server recorded the host's key under its persistence directory
    assert f"[{ssh_server.host}]:{ssh_server.port}" in known_hosts(pulsar_server).read_text()
    assert ssh_server.user_key.read_text().splitlines()[1] not in pulsar_server.log_text()


@pytest.fixture(scope="module")
def stranger_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A private key the sshd does not accept."""
    path = tmp_path_factory.mktemp("stranger") / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.read_text()


@pytest.mark.parametrize("tool", TOOLS)
def test_a_refused_key_fails_the_job_with_the_tools_message(tool: str, ssh_server: SshServer, stranger_key: str,
                                                            pulsar_server: PulsarServer, tmp_path: Path) -> None:
    manager = build_client_manager()
    destination = {"url": pulsar_server.url, "private_token": pulsar_server.token, "default_file_action": tool,
                   **ssh_params(ssh_server), "ssh_key": stranger_key}
    client = manager.get_client(destination, f"ssh-refused-{tool}")
    work = tmp_path / "working"
    work.mkdir()
    dataset = tmp_path / "files" / "dataset_9.dat"
    dataset.parent.mkdir()
    dataset.write_text("never fetched\n")
    outputs = ClientOutputs(working_directory=str(work), metadata_directory=str(work), output_files=[])
    submit_job(client, ClientJobDescription(command_line=f"cat {dataset}", input_files=[str(dataset)],
                                            client_outputs=outputs, working_directory=str(work),
                                            metadata_directory=str(work)))
    status = wait_for(lambda: (s := client.full_status())["status"] in ("complete", "failed") and s, timeout=60,
                      interval=0.2, what="the job to end")
    assert status["status"] == "failed", status
    assert "Permission denied" in status["stderr"] and str(dataset) in status["stderr"], status
    assert stranger_key.splitlines()[1] not in status["stderr"] + pulsar_server.log_text()
    client.clean()
    manager.shutdown()


@pytest.mark.reference
@pytest.mark.parametrize("tool", TOOLS)
def test_the_reference_client_runs_jobs_over_ssh(tool: str, ssh_server: SshServer, pulsar_server: PulsarServer,
                                                 stranger_key: str, tmp_path: Path) -> None:
    """Galaxy's released client 0.15.16 (Galaxy's own pulsar-galaxy-lib) with the ssh
    destination params: it maps the actions and passes user/host/port/key; our server moves
    the bytes both ways."""
    work = tmp_path / "client"
    work.mkdir()
    result_path = tmp_path / "result.json"
    params = {**ssh_params(ssh_server), "default_file_action": tool, "stranger_key": stranger_key}
    run = subprocess.run(
        [str(reference_bin("galaxy-lib-0.15.16", "python")), str(SCRIPT), pulsar_server.url,
         str(pulsar_server.token), str(work), json.dumps(params), str(result_path)],
        capture_output=True, text=True, cwd=tmp_path, env=reference_env(), timeout=300,
    )
    assert run.returncode == 0 and result_path.exists(), f"{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    results: dict[str, Any] = json.loads(result_path.read_text())
    for name, observed in results.items():
        assert "error" not in observed, f"{name}:\n{observed['error']}\n{pulsar_server.log_text()[-3000:]}"
    job = results["ssh_job"]
    assert job["final"]["status"] == "complete" and job["final"]["returncode"] == 0, job
    assert job["finish_failures"] == []
    assert job["output"] == job["expected_output"]
    assert job["work_dir_output"] == "from the working directory\n"
    assert job["metadata_output"] == '{"k": 1}\n'
    failed = results["refused_key"]
    assert failed["final"]["status"] == "failed", failed
    assert "Permission denied" in failed["final"]["stderr"] and failed["input"] in failed["final"]["stderr"], failed
