"""Nothing lost, nothing doubled (issue 10), on the real broker: the outbox across an outage
and restarts, server-side transfers with a fake Galaxy files API, and our server killed -9
mid-job and mid-push (mq-protocol 8: scenarios 1, 4, 5, 14, 15)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Callable

import pytest

from pulsar.client import ClientOutputs
from pulsar.core import PulsarApp
from pulsar.jobs.state import JobState
from pulsar.shared.action_mapper import FileActionMapper
from test.messaging.conftest import GalaxyQueues, setup_body, wait_for
from test.support.galaxy_files import FakeGalaxy, fake_galaxy  # noqa: F401  (fixture)
from test.support.mq_server import start_our_mq_server
from test.support.outage_proxy import OutageProxy

pytestmark = pytest.mark.rabbitmq

App = Callable[..., PulsarApp]


def broker_url(proxy: OutageProxy) -> str:
    """The broker behind `proxy` (cut() plays an outage for whoever connects through it)."""
    return f"amqp://guest:guest@127.0.0.1:{proxy.port}//"


def gated(gate: Path, then: str = "true") -> str:
    return f"while [ ! -e {gate} ]; do sleep 0.02; done; {then}"


def test_outbox_holds_updates_during_an_outage_and_delivers_them_in_order(
    galaxy: GalaxyQueues, mq_app: App, tmp_path: Path, unique_manager: str
) -> None:
    proxy = OutageProxy(5672)
    try:
        app = mq_app(message_queue_url=broker_url(proxy), status_outbox_drain_interval=0.2,
                     managers={unique_manager: {"type": "queued_python", "num_concurrent_jobs": 3}})
        service, outbox = app.services[unique_manager], app.bindings[0].outbox
        assert outbox is not None
        for n in range(3):
            galaxy.send("setup", setup_body(f"o{n}", gated(tmp_path / f"go{n}")))
        for _ in range(3):
            assert galaxy.next_update()["status"] == "running"
        proxy.cut()  # the broker is gone for the server (not for Galaxy)
        for n in range(3):  # the jobs end one after the other while nothing can be published
            (tmp_path / f"go{n}").touch()
            wait_for(lambda n=n: service.job_state(f"o{n}") is JobState.COMPLETE, what=f"job o{n}")
        assert len(outbox) == 3
        assert galaxy.broker.depth("status_update") == 0
        proxy.restore()
        assert [galaxy.terminal(f"o{n}")["job_id"] for n in range(3)] == ["o0", "o1", "o2"]
        galaxy.barrier()  # the consumers came back on their own too
        assert [u["status"] for u in galaxy.updates] == ["running"] * 3 + ["complete"] * 3
    finally:
        proxy.cut()


def test_a_terminal_update_never_confirmed_is_sent_after_a_restart(
    galaxy: GalaxyQueues, mq_app: App, tmp_path: Path
) -> None:
    """Even if the outbox entry is gone (the worst case: the listener's write failed), the
    ledger knows the job came over the queue and was never confirmed."""
    proxy = OutageProxy(5672)
    try:
        app = mq_app(message_queue_url=broker_url(proxy))
        outbox = app.bindings[0].outbox
        assert outbox is not None
        galaxy.send("setup", setup_body("r1", gated(tmp_path / "go", "exit 6")))
        assert galaxy.next_update()["status"] == "running"
        proxy.cut()
        (tmp_path / "go").touch()
        wait_for(lambda: len(outbox) == 1, what="the terminal update in the outbox")
        app.shutdown()
        for entry in outbox.directory.iterdir():
            entry.unlink()
        proxy.restore()
        mq_app(message_queue_url=broker_url(proxy))
        document = galaxy.terminal("r1")
        assert (document["status"], document["returncode"]) == ("complete", 6)
        galaxy.barrier()
        assert galaxy.statuses("r1") == ["running", "complete"]
    finally:
        proxy.cut()


# -- server-side transfers ------------------------------------------------------------------


def staging_body(galaxy_files: FakeGalaxy, job_id: str, command: str, inputs: dict[str, bytes]) -> dict[str, Any]:
    """A setup with `remote_transfer` inputs and one output, shaped like Galaxy's."""
    root = galaxy_files.root
    mapper = FileActionMapper(default_action="remote_transfer", files_endpoint=galaxy_files.files_endpoint(job_id))
    setup = []
    for name, data in inputs.items():
        (root / name).write_bytes(data)
        setup.append({"name": name, "type": "input", "action": mapper.action(str(root / name), "input").to_dict()})
    outputs = ClientOutputs(working_directory=str(root / "working"), metadata_directory=str(root / "metadata"),
                            output_files=[str(root / "out" / f"dataset_{job_id}_out.dat")])
    remote_staging = {"setup": setup, "action_mapper": mapper.to_dict(), "client_outputs": outputs.to_dict(),
                      "ssh_key": None}
    return setup_body(job_id, command, remote_staging=remote_staging)


def test_inputs_pulled_and_outputs_pushed(galaxy: GalaxyQueues, fake_galaxy: FakeGalaxy, mq_app: App) -> None:  # noqa: F811
    mq_app()
    galaxy.send("setup", staging_body(fake_galaxy, "t1", "cat ../inputs/dataset_in.dat > ../outputs/dataset_t1_out.dat",
                                      {"dataset_in.dat": b"payload\n"}))
    document = galaxy.terminal("t1")
    assert document["status"] == "complete" and document["returncode"] == 0
    assert (fake_galaxy.root / "out" / "dataset_t1_out.dat").read_bytes() == b"payload\n"
    methods = [(r.method, r.file_type, r.status) for r in fake_galaxy.requests_for("t1")]
    assert ("GET", "input", 200) in methods and ("POST", "output", 200) in methods


def test_an_input_that_cannot_be_fetched_is_one_failed_update(
    galaxy: GalaxyQueues, fake_galaxy: FakeGalaxy, mq_app: App, tmp_path: Path, unique_manager: str  # noqa: F811
) -> None:
    mq_app(managers={unique_manager: {
        "type": "queued_python", "preprocess_action_max_retries": 2, "preprocess_action_interval_start": 0.05}})
    fake_galaxy.fail(404, "*dataset_missing.dat")
    ran = tmp_path / "ran"
    galaxy.send("setup", staging_body(fake_galaxy, "t404", f"touch {ran}", {"dataset_missing.dat": b"x"}))
    document = galaxy.terminal("t404")
    assert (document["status"], document["returncode"]) == ("failed", 1)
    assert "staging inputs failed" in document["stderr"] and "404" in document["stderr"]
    assert "job_key" not in document["stderr"]  # URLs are redacted
    galaxy.barrier()
    assert galaxy.statuses("t404") == ["failed"] and not ran.exists()
    assert len([r for r in fake_galaxy.requests_for("t404") if r.method == "GET"]) == 1  # 404: not retried


def test_an_output_push_failing_after_the_retries_is_one_failed_update(
    galaxy: GalaxyQueues, fake_galaxy: FakeGalaxy, mq_app: App, unique_manager: str  # noqa: F811
) -> None:
    mq_app(managers={unique_manager: {
        "type": "queued_python", "postprocess_action_max_retries": 2, "postprocess_action_interval_start": 0.05,
        "postprocess_action_interval_step": 0}})
    fake_galaxy.fail(500, "*dataset_t500_out.dat", method="POST")
    galaxy.send("setup", staging_body(fake_galaxy, "t500", "echo x > ../outputs/dataset_t500_out.dat", {}))
    document = galaxy.terminal("t500")
    assert document["status"] == "failed" and document["returncode"] == 0  # the tool itself succeeded
    assert "staging outputs failed" in document["stderr"] and "HTTP 500" in document["stderr"]
    galaxy.barrier()
    assert galaxy.statuses("t500") == ["running", "failed"]
    pushes = [r for r in fake_galaxy.requests_for("t500") if r.method == "POST" and r.path.endswith("dataset_t500_out.dat")]
    assert len(pushes) == 3  # 1 + 2 retries (metadata files, e.g. job metrics, are pushed too)


# -- our server process killed -9 ----------------------------------------------------------


def test_server_killed_mid_job_reports_exactly_one_terminal_update(
    galaxy: GalaxyQueues, amqp_url: str, unique_manager: str, tmp_path: Path
) -> None:
    server = start_our_mq_server(tmp_path / "server", amqp_url, unique_manager)
    try:
        galaxy.send("setup", setup_body("m1", gated(tmp_path / "go", "echo result > ../outputs/dataset_m1.dat")))
        assert galaxy.next_update()["status"] == "running"
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)  # the server only: the job keeps running
        server.process.wait()
        (tmp_path / "go").touch()
        server = start_our_mq_server(tmp_path / "server", amqp_url, unique_manager)
        document = galaxy.terminal("m1")
        assert document["status"] == "complete" and document["outputs_directory_contents"] == ["dataset_m1.dat"]
        galaxy.barrier()
        assert galaxy.statuses("m1").count("complete") == 1 and galaxy.statuses("m1")[-1] == "complete"
    finally:
        server.stop()


def test_server_killed_during_the_output_push_reports_exactly_one_terminal_update(
    galaxy: GalaxyQueues, fake_galaxy: FakeGalaxy, amqp_url: str, unique_manager: str, tmp_path: Path  # noqa: F811
) -> None:
    retries = {"postprocess_action_max_retries": 50, "postprocess_action_interval_start": 0.2,
               "postprocess_action_interval_step": 0, "postprocess_action_interval_max": 0.2}
    managers = {unique_manager: {"type": "queued_python", **retries}}
    fake_galaxy.fail(500, "*dataset_p1_out.dat", method="POST", times=6)  # still failing when we kill
    server = start_our_mq_server(tmp_path / "server", amqp_url, unique_manager, managers=managers)
    try:
        galaxy.send("setup", staging_body(fake_galaxy, "p1", "echo pushed > ../outputs/dataset_p1_out.dat", {}))
        wait_for(lambda: any(r.method == "POST" and r.status == 500 for r in fake_galaxy.requests_for("p1")),
                 what="the first failed push")
        server.kill()  # kill -9 of the whole tree, in the middle of the push's retries
        server = start_our_mq_server(tmp_path / "server", amqp_url, unique_manager, managers=managers)
        document = galaxy.terminal("p1", timeout=60)
        assert document["status"] == "complete"
        assert (fake_galaxy.root / "out" / "dataset_p1_out.dat").read_text() == "pushed\n"
        galaxy.barrier()
        assert galaxy.statuses("p1").count("complete") == 1
        assert [s for s in galaxy.statuses("p1") if s != "running"] == ["complete"]
    finally:
        server.stop()
