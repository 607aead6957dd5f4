"""Progress lines of big transfers, through our client to our real server on loopback, and
through the server's own transfers (remote staging, the message-queue path) to a job-files
endpoint.  The clock of the progress policy turns one second per reading, so the count of
lines is bounded by construction, not by how fast this machine is."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pulsar.client import ClientOutputs
from pulsar.client.galaxy_files import JobFilesServer
from pulsar.client.http_api import HttpApi
from pulsar.client.transport import get_transport
from pulsar.jobs import remote_staging
from pulsar.jobs.directory import JobDirectory
from pulsar.shared.action_mapper import FileActionMapper
from pulsar.util.progress import MIB, ProgressPolicy
from test.support.http import Api
from test.support.server import DEFAULT_TOKEN, PulsarServer

BIG = 64 * MIB + 12345
INTERVAL = 8.0  # clock turns between two lines of one transfer


class TurningClock:
    """Each reading is one second later than the last."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return float(self.readings)


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def progress_lines(caplog: pytest.LogCaptureFixture, logger: str, what: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == logger and r.levelno == logging.INFO and r.getMessage().startswith(what + ":")]


def check_lines(lines: list[str], what: str, clock: TurningClock) -> None:
    assert lines[0] == f"{what}: starting, {BIG / MIB:.1f} MiB"
    assert lines[-1].startswith(f"{what}: done, {BIG / MIB:.1f} MiB in ")
    middle = lines[1:-1]
    assert middle, "no progress line between start and done"
    for line in middle:
        assert " MiB of 64.0 MiB (" in line and " MiB/s, ETA " in line, line
    # at most one line per INTERVAL readings of the clock
    assert len(middle) <= clock.readings / INTERVAL + 1


@pytest.mark.parametrize("transport_name", ["http", "requests"])
def test_big_upload_and_download_log_progress_small_ones_do_not(pulsar_server: PulsarServer, transport_name: str,
                                                                tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pulsar.client.http_api")
    job_id = f"progress-{transport_name}"
    server = pulsar_server
    Api(server.url, DEFAULT_TOKEN).setup(job_id)
    clock = TurningClock()
    api = HttpApi(server.url, get_transport(transport_name, timeout=60), private_token=DEFAULT_TOKEN,
                  progress=ProgressPolicy(interval=INTERVAL, clock=clock))
    files = f"jobs/{job_id}/files"

    small = tmp_path / "small.dat"
    small.write_bytes(os.urandom(MIB))
    api.upload(files, {"name": "small.dat", "type": "output"}, file_path=str(small))
    api.download(files, {"name": "small.dat", "type": "output"}, str(tmp_path / "small.back"))
    assert (tmp_path / "small.back").read_bytes() == small.read_bytes()
    assert [r for r in caplog.records if r.name == "pulsar.client.http_api"] == []

    reply = api.upload(files, {"name": "big.dat", "type": "output"}, file_path=str(sparse_file(tmp_path / "big.dat", BIG)))
    check_lines(progress_lines(caplog, "pulsar.client.http_api", "upload big.dat"), "upload big.dat", clock)
    result = api.download(files, {"name": "big.dat", "type": "output"}, str(tmp_path / "big.back"))
    check_lines(progress_lines(caplog, "pulsar.client.http_api", "download big.dat"), "download big.dat", clock)
    assert result.size == BIG and result.sha256 == reply["sha256"]


def test_server_side_transfers_log_progress(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The message-queue (and remote-transfer) path: the server fetches an input from
    Galaxy's job-files API and posts an output back."""
    caplog.set_level(logging.INFO, logger="pulsar.jobs.remote_staging")
    clock = TurningClock()
    monkeypatch.setattr(remote_staging, "PROGRESS", ProgressPolicy(interval=INTERVAL, clock=clock))
    galaxy_root = tmp_path / "galaxy"
    galaxy_root.mkdir()
    sparse_file(galaxy_root / "dataset_1.dat", BIG)
    (galaxy_root / "dataset_2.dat").write_bytes(b"small input")
    (tmp_path / "staging").mkdir()
    job = JobDirectory(tmp_path / "staging", "7")
    job.create()
    with JobFilesServer(str(galaxy_root)) as galaxy:
        mapper = FileActionMapper(default_action="remote_transfer", files_endpoint=galaxy.files_endpoint)
        setup = [{"name": name, "type": "input", "action": mapper.action(str(galaxy_root / name), "input").to_dict()}
                 for name in ("dataset_1.dat", "dataset_2.dat")]
        remote_staging.stage_in(job, {"setup": setup, "action_mapper": mapper.to_dict()}, lambda: False)
        endpoint = galaxy.files_endpoint.split("?")[0]
        fetched = progress_lines(caplog, "pulsar.jobs.remote_staging", f"fetch dataset_1.dat from {endpoint}")
        check_lines(fetched, f"fetch dataset_1.dat from {endpoint}", clock)
        assert not any("dataset_2" in r.getMessage() for r in caplog.records)  # small: no line
        assert not any("job_key" in r.getMessage() for r in caplog.records)  # the key stays out of the log

        sparse_file(job.outputs / "dataset_3.dat", BIG)
        outputs = ClientOutputs(working_directory=str(galaxy_root / "working"),
                                metadata_directory=str(galaxy_root / "metadata"),
                                output_files=[str(galaxy_root / "out" / "dataset_3.dat")])
        failures = remote_staging.stage_out(job, {"action_mapper": mapper.to_dict(),
                                                  "client_outputs": outputs.to_dict()}, lambda: False)
        assert failures == []
    sent = progress_lines(caplog, "pulsar.jobs.remote_staging", f"send dataset_3.dat to {endpoint}")
    check_lines(sent, f"send dataset_3.dat to {endpoint}", clock)
    assert (galaxy_root / "out" / "dataset_3.dat").stat().st_size == BIG
    assert (job.path / "inputs" / "dataset_1.dat").stat().st_size == BIG
    assert (job.path / "inputs" / "dataset_2.dat").read_bytes() == b"small input"
