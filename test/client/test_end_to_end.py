"""Whole jobs through the client, the way Galaxy runs them, against three servers:
ours in-process (WSGI transport), ours over HTTP on loopback, and the reference.

`run_check` is pulsar-check's engine: every staged input is verified by the tool on the
server and every collected output byte-for-byte here, so each run of one file action is
a real-bytes test of that action in both directions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pulsar.client import build_client_manager
from pulsar.client.galaxy_files import JobFilesServer
from pulsar.scripts.check import run_check
from test.support.sshd import SshServer

ACTIONS = ["transfer", "copy", "none", "remote_copy", "remote_transfer"]
quiet: Any = lambda message: None  # noqa: E731


def check_with_galaxy(url: str, token: str | None, action: str, tmp_path: Path, **kwds: Any) -> None:
    """Run the check; for remote_transfer, also prove both directions crossed Galaxy's endpoint."""
    root = tmp_path / "galaxy"
    root.mkdir()
    with JobFilesServer(str(root)) as galaxy:
        problems = run_check(url, token, default_file_action=action, test_errors=True, log=quiet,
                             files_server=galaxy, **kwds)
        assert problems == []
        if action == "remote_transfer":
            assert any(p.endswith("dataset_0.dat") for p in galaxy.served)
            assert any(p.endswith("nested/deeper/extra.txt") for p in galaxy.served)
            assert any(p.endswith("outputs/dataset_1.dat") for p in galaxy.received)
            assert any(p.endswith("working/discovered/custom_name.txt") for p in galaxy.received)
            assert any(p.endswith("metadata/metadata_out_check") for p in galaxy.received)
        else:
            assert galaxy.served == [] and galaxy.received == []


# -- ours, in-process --------------------------------------------------------------------

@pytest.mark.parametrize("action", ACTIONS)
def test_in_process(pulsar_app: Any, action: str, tmp_path: Path) -> None:
    check_with_galaxy("http://ignored/", None, action, tmp_path, job_id=f"inproc-{action}",
                      manager_options={"pulsar_app": pulsar_app})


@pytest.mark.parametrize("action", ["transfer", "remote_transfer"])
def test_in_process_legacy_rewriting(pulsar_app: Any, action: str, tmp_path: Path) -> None:
    check_with_galaxy("http://ignored/", None, action, tmp_path, job_id=f"legacy-{action}", legacy=True,
                      manager_options={"pulsar_app": pulsar_app})


def test_lifecycle_kill_clean_and_lost(pulsar_app: Any) -> None:
    manager = build_client_manager(pulsar_app=pulsar_app)
    client = manager.get_client({"url": "http://x/"}, "life-1", env=[])
    client.setup("t", "1")
    client.launch("sleep 60", remote_staging={}, job_config={"job_id": "life-1"})
    deadline = time.monotonic() + 60
    while client.get_status() not in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
    client.kill()
    while client.get_status() != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.full_status()["status"] == "cancelled"
    client.clean()
    assert client.get_status() == "lost"
    # a fresh client from (destination, id) alone sees the same job: no client state
    assert manager.get_client({"url": "http://x/"}, "never-set-up").get_status() == "lost"


# -- ours, over HTTP ---------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("transport", ["http", "requests", "urllib"])
@pytest.mark.parametrize("action", ACTIONS)
def test_our_server_over_http(pulsar_server: Any, action: str, transport: str, tmp_path: Path) -> None:
    check_with_galaxy(pulsar_server.url, pulsar_server.token, action, tmp_path, transport=transport,
                      job_id=f"http-{action}-{transport}")


@pytest.mark.integration
def test_our_server_rejects_a_wrong_token(pulsar_server: Any) -> None:
    from pulsar.client import PulsarClientTransportError

    client = build_client_manager().get_client({"url": pulsar_server.url, "private_token": "wrong"}, "t1")
    with pytest.raises(PulsarClientTransportError) as info:
        client.get_status()
    assert info.value.transport_code == 401


@pytest.mark.integration
def test_pulsar_check_command_line(pulsar_server: Any) -> None:
    from pulsar.scripts.check import main

    assert main(["--url", pulsar_server.url, "--private_token", pulsar_server.token, "--suppress_output",
                 "--test_errors", "--job_id", "cli-check"]) == 0
    assert main(["--url", pulsar_server.url, "--private_token", "wrong", "--suppress_output",
                 "--job_id", "cli-check-2"]) == 1


# -- the reference server ----------------------------------------------------------------

@pytest.mark.reference
@pytest.mark.integration
@pytest.mark.parametrize("action", ACTIONS)
def test_reference_server(reference_server: Any, action: str, tmp_path: Path) -> None:
    check_with_galaxy(reference_server.url, reference_server.token, action, tmp_path, job_id=f"ref-{action}")


@pytest.mark.reference
@pytest.mark.integration
@pytest.mark.parametrize("action", ["remote_scp_transfer", "remote_rsync_transfer"])
def test_reference_server_moves_files_by_ssh(reference_server: Any, ssh_server: SshServer, action: str,
                                             tmp_path: Path) -> None:
    """Our client passes the ssh destination params (user, host, port, key) the way the
    reference server reads them: it fetches and sends every file over ssh (the private sshd)."""
    ssh = {"ssh_user": ssh_server.user, "ssh_host": ssh_server.host, "ssh_port": str(ssh_server.port),
           "ssh_key": ssh_server.user_key.read_text()}
    check_with_galaxy(reference_server.url, reference_server.token, action, tmp_path, job_id=f"ref-{action}",
                      destination=ssh)


@pytest.mark.reference
@pytest.mark.integration
@pytest.mark.parametrize("action", ["transfer", "remote_transfer"])
def test_reference_server_legacy(reference_server: Any, action: str, tmp_path: Path) -> None:
    check_with_galaxy(reference_server.url, reference_server.token, action, tmp_path, legacy=True,
                      transport="urllib", job_id=f"ref-legacy-{action}")


@pytest.mark.parametrize("action", ["remote_transfer", "transfer", "copy"])
def test_in_process_local_setup(pulsar_app: Any, tmp_path: Path, action: str) -> None:
    """`jobs_directory`: the client computes the layout; with `remote_transfer` the server sets
    up at submit and stages everything itself (the message-queue style of job, here over
    HTTP); with `transfer`/`copy` the first file the client sends creates the directory."""
    staging = tmp_path / "staging"  # the pulsar_app fixture's staging directory
    check_with_galaxy("http://ignored/", None, action, tmp_path, job_id=f"local-setup-{action}",
                      manager_options={"pulsar_app": pulsar_app}, destination={"jobs_directory": str(staging)})


def test_local_setup_over_http(pulsar_server: Any, tmp_path: Path) -> None:
    """The same over a real HTTP server (Galaxy's REST runner with `jobs_directory`)."""
    staging = pulsar_server.config_dir / "staging"  # start_server's staging_directory
    check_with_galaxy(pulsar_server.url, pulsar_server.token, "transfer", tmp_path, job_id="local-setup-http",
                      destination={"jobs_directory": str(staging)})
