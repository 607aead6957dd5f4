"""`finish_job` as Galaxy calls it for a job that did not complete normally (deleted or
errored: Galaxy's Pulsar runner passes `job_completed_normally=False`): no output is
fetched, and the remote clean-up happens, against our real server over HTTP.  The control
case (completed normally) fetches the output, then cleans up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pulsar.client import ClientOutputs, PulsarOutputs, build_client_manager, finish_job


def _finished_job(server: Any, job_id: str) -> tuple[Any, dict[str, Any]]:
    client = build_client_manager().get_client({"url": server.url, "private_token": server.token}, job_id)
    client.setup("t", "1")
    client.launch("echo out > ../outputs/dataset_1.dat; exit 1", remote_staging={}, job_config={"job_id": job_id})
    deadline = time.monotonic() + 60
    while client.get_status() != "complete" and time.monotonic() < deadline:
        time.sleep(0.1)
    return client, client.full_status()


@pytest.mark.integration
@pytest.mark.parametrize("normally", [False, True])
def test_finish_fetches_outputs_only_for_jobs_that_completed_normally(pulsar_server: Any, tmp_path: Path,
                                                                      normally: bool) -> None:
    job_id = f"finish-{normally}"
    client, status = _finished_job(pulsar_server, job_id)
    galaxy = tmp_path / "galaxy"
    galaxy.mkdir()
    outputs = ClientOutputs(working_directory=str(tmp_path / "w"),
                            output_files=[str(galaxy / "dataset_1.dat")])
    failures = finish_job(client=client, cleanup_job="onsuccess", job_completed_normally=normally,
                          client_outputs=outputs, pulsar_outputs=PulsarOutputs.from_status_response(status))
    fetches = [line for line in pulsar_server.log_text().splitlines()
               if f'"GET /jobs/{job_id}/files' in line]
    if normally:
        assert len(fetches) == 1 and (galaxy / "dataset_1.dat").read_text() == "out\n"
    else:
        assert fetches == [] and not (galaxy / "dataset_1.dat").exists()
    assert failures == []
    assert client.get_status() == "lost"  # cleaned up on the server
