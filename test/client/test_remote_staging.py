"""Server-side remote staging against a real HTTP job-files endpoint (Galaxy's role)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pulsar.client import ClientOutputs
from pulsar.client.galaxy_files import JobFilesServer
from pulsar.jobs.directory import JobDirectory
from pulsar.jobs.remote_staging import TransferError, retry_executor, stage_in, stage_out
from pulsar.shared.action_mapper import FileActionMapper
from pulsar.shared.actions import FileAction, message_action


def never() -> bool:
    return False


@pytest.fixture
def galaxy(tmp_path: Path):
    root = tmp_path / "galaxy"
    root.mkdir()
    with JobFilesServer(str(root)) as server:
        yield root, server


@pytest.fixture
def job(tmp_path: Path) -> JobDirectory:
    directory = JobDirectory(tmp_path / "staging", "9")
    (tmp_path / "staging").mkdir()
    directory.create()
    return directory


def test_stage_in_all_server_actions(galaxy, job: JobDirectory, tmp_path: Path) -> None:
    root, server = galaxy
    payload = os.urandom(5 * 1024 * 1024 + 3)
    (root / "dataset_1.dat").write_bytes(payload)
    (tmp_path / "shared.txt").write_text("on a shared mount\n")
    mapper = FileActionMapper(default_action="remote_transfer", files_endpoint=server.files_endpoint)
    setup = [
        {"name": "dataset_1.dat", "type": "input",
         "action": mapper.action(str(root / "dataset_1.dat"), "input").to_dict()},
        {"name": "sub/shared.txt", "type": "tool",
         "action": FileAction("remote_copy", path=str(tmp_path / "shared.txt")).to_dict()},
        {"name": "params.json", "type": "config", "action": message_action('{"a": 1}').to_dict()},
    ]
    moved: list[int] = []  # what the metrics hear: each file's size (and seconds)
    stage_in(job, {"setup": setup, "action_mapper": mapper.to_dict()}, never,
             transferred=lambda size, seconds: moved.append(size))
    assert moved == [len(payload), len("on a shared mount\n"), len('{"a": 1}')]
    assert (job.path / "inputs" / "dataset_1.dat").read_bytes() == payload
    assert (job.path / "tool_files" / "sub" / "shared.txt").read_text() == "on a shared mount\n"
    assert (job.path / "configs" / "params.json").read_text() == '{"a": 1}'
    assert server.served == [str(root / "dataset_1.dat")]


def test_stage_in_missing_file_fails_and_leaves_nothing(galaxy, job: JobDirectory) -> None:
    root, server = galaxy
    mapper = FileActionMapper(default_action="remote_transfer", files_endpoint=server.files_endpoint)
    setup = [{"name": "x.dat", "type": "input", "action": mapper.action(str(root / "nope.dat"), "input").to_dict()}]
    with pytest.raises(TransferError) as info:
        stage_in(job, {"setup": setup}, never, retry=retry_executor({"preprocess_action_max_retries": 3}))
    assert info.value.http_status == 404
    assert os.listdir(job.path / "inputs") == []


def test_stage_in_stops_when_cancelled(job: JobDirectory) -> None:
    setup = [{"name": "p", "type": "config", "action": message_action("x").to_dict()}]
    stage_in(job, {"setup": setup}, lambda: True)
    assert not (job.path / "configs" / "p").exists()


def test_stage_out_posts_remote_outputs(galaxy, job: JobDirectory) -> None:
    root, server = galaxy
    local_working = root / "working"
    outputs = ClientOutputs(
        working_directory=str(local_working), metadata_directory=str(root / "metadata"),
        output_files=[str(root / "out" / "dataset_2.dat"), str(root / "out" / "purged.dat")],
        dynamic_file_sources=[{"path": "galaxy.json", "type": "galaxy"}],
    )
    big = os.urandom(6 * 1024 * 1024)
    (job.outputs / "dataset_2.dat").write_bytes(big)
    (job.outputs / "dataset_2_files").mkdir()
    (job.outputs / "dataset_2_files" / "e.txt").write_text("extra")
    (job.working / "galaxy.json").write_text('{"filename": "named.txt"}')
    (job.working / "named.txt").write_text("named")
    (job.metadata / "metadata_x").write_text("meta")
    mapper = FileActionMapper(default_action="remote_transfer", files_endpoint=server.files_endpoint)
    moved: list[int] = []
    failures = stage_out(job, {"action_mapper": mapper.to_dict(), "client_outputs": outputs.to_dict()}, never,
                         transferred=lambda size, seconds: moved.append(size))
    assert failures == []
    assert sorted(moved) == sorted([len(big), len("extra"), len("named"), len('{"filename": "named.txt"}'), len("meta")])
    assert hashlib.sha256((root / "out" / "dataset_2.dat").read_bytes()).digest() == hashlib.sha256(big).digest()
    assert (root / "out" / "dataset_2_files" / "e.txt").read_text() == "extra"
    assert (local_working / "named.txt").read_text() == "named"
    assert (local_working / "galaxy.json").exists()
    assert (root / "metadata" / "metadata_x").read_text() == "meta"


def test_stage_out_ignores_client_side_actions_and_reports_failures(galaxy, job: JobDirectory, tmp_path: Path) -> None:
    root, server = galaxy
    (job.outputs / "dataset_3.dat").write_text("x")
    outputs = ClientOutputs(working_directory=str(root / "w"), output_files=[str(root / "o" / "dataset_3.dat")])
    transfer = FileActionMapper(default_action="transfer")
    assert stage_out(job, {"action_mapper": transfer.to_dict(), "client_outputs": outputs.to_dict()}, never) == []
    assert not (root / "o").exists()
    # outside the root Galaxy authorises -> 403 -> ignored (purged dataset semantics)
    outside = ClientOutputs(working_directory=str(tmp_path / "w"), output_files=[str(tmp_path / "o" / "dataset_3.dat")])
    mapper = FileActionMapper(default_action="remote_transfer", files_endpoint=server.files_endpoint)
    assert stage_out(job, {"action_mapper": mapper.to_dict(), "client_outputs": outside.to_dict()}, never) == []
    # a dead endpoint is a failure
    dead = FileActionMapper(default_action="remote_transfer", files_endpoint="http://127.0.0.1:9/files?k=1")
    failures = stage_out(job, {"action_mapper": dead.to_dict(), "client_outputs": outputs.to_dict()}, never)
    assert len(failures) == 1 and "dataset_3.dat" in failures[0]


def test_stage_out_remote_copy(job: JobDirectory, tmp_path: Path) -> None:
    (job.outputs / "dataset_4.dat").write_text("copied back")
    target = tmp_path / "galaxy" / "files" / "dataset_4.dat"
    outputs = ClientOutputs(working_directory=str(tmp_path / "w"), output_files=[str(target)])
    mapper = FileActionMapper(default_action="remote_copy")
    assert stage_out(job, {"action_mapper": mapper.to_dict(), "client_outputs": outputs.to_dict()}, never) == []
    assert target.read_text() == "copied back"


def test_stage_out_honours_a_configured_proxy(galaxy, job: JobDirectory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain-http posts skip `requests` only when no proxy is configured; with one, the
    post goes through it (here a dead one, so the transfer fails)."""
    root, server = galaxy
    (job.outputs / "dataset_4.dat").write_text("x")
    outputs = ClientOutputs(working_directory=str(root / "w"), output_files=[str(root / "o" / "dataset_4.dat")])
    mapper = FileActionMapper(default_action="remote_transfer", files_endpoint=server.files_endpoint)
    request = {"action_mapper": mapper.to_dict(), "client_outputs": outputs.to_dict()}
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    failures = stage_out(job, request, never)
    assert len(failures) == 1 and "dataset_4.dat" in failures[0]
    assert not (root / "o" / "dataset_4.dat").exists()
    monkeypatch.delenv("http_proxy")
    assert stage_out(job, request, never) == []
    assert (root / "o" / "dataset_4.dat").read_text() == "x"
