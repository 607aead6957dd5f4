"""Our server in message-queue mode on the real broker, driven the way Galaxy drives it
(mq-protocol 8: scenarios 2-3, 6-10, 12-13, and B7 clean-up)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest

from pulsar.core import PulsarApp
from pulsar.errors import ConfigurationError
from pulsar.jobs.state import JobState
from pulsar.managers.processes import find_process
from test.messaging.conftest import GalaxyQueues, galaxy_queues, setup_body, wait_for

pytestmark = pytest.mark.rabbitmq

#: The keys of a terminal status document (mq-protocol 3.5).
TERMINAL_KEYS = {
    "job_id", "complete", "status", "returncode", "stdout", "stderr", "job_stdout", "job_stderr",
    "working_directory", "metadata_directory", "job_directory", "working_directory_contents",
    "metadata_directory_contents", "outputs_directory_contents", "job_directory_contents",
    "system_properties", "pulsar_version", "realized_dynamic_file_sources",
}

App = Callable[..., PulsarApp]


def waiting_command(gate: Path, then: str) -> str:
    return f"while [ ! -e {gate} ]; do sleep 0.02; done; {then}"


def only_service(app: PulsarApp) -> Any:
    return next(iter(app.services.values()))


def test_happy_path_running_then_complete(galaxy: GalaxyQueues, mq_app: App, tmp_path: Path) -> None:
    app = mq_app()
    gate = tmp_path / "gate"
    galaxy.send("setup", setup_body("101", waiting_command(
        gate, "echo out > __PULSAR_JOB_DIRECTORY__/outputs/dataset_101_out.dat; "
              "echo tool-out > ../metadata/tool_stdout; echo tool-err > ../metadata/tool_stderr")))
    running = galaxy.next_update()
    assert list(running.items()) == [("complete", "false"), ("status", "running"), ("job_id", "101")]
    gate.touch()
    complete = galaxy.terminal("101")
    assert set(complete) == TERMINAL_KEYS
    assert complete["status"] == "complete" and complete["returncode"] == 0
    assert complete["stdout"] == "tool-out\n" and complete["stderr"] == "tool-err\n"
    assert complete["outputs_directory_contents"] == ["dataset_101_out.dat"]
    assert complete["job_directory"] == str(only_service(app).settings.staging_root / "101")
    galaxy.barrier()
    assert galaxy.statuses("101") == ["running", "complete"]
    # B7: once the broker confirmed the terminal update, the job directory goes (default: always)
    wait_for(lambda: not Path(complete["job_directory"]).exists(), what="the job directory to be removed")


def test_fast_job_gives_one_terminal_update(galaxy: GalaxyQueues, mq_app: App) -> None:
    mq_app()
    galaxy.send("setup", setup_body("fast", "true"))
    assert galaxy.terminal("fast")["status"] == "complete"
    galaxy.barrier()
    assert galaxy.statuses("fast") in (["complete"], ["running", "complete"])


def test_non_zero_exit_is_complete_with_the_return_code(galaxy: GalaxyQueues, mq_app: App) -> None:
    mq_app()
    galaxy.send("setup", setup_body("3", "echo tool-err > ../metadata/tool_stderr; exit 3"))
    document = galaxy.terminal("3")
    assert (document["status"], document["returncode"], document["stderr"]) == ("complete", 3, "tool-err\n")


def test_kill_publishes_nothing_and_a_status_request_answers_cancelled(
    galaxy: GalaxyQueues, mq_app: App, tmp_path: Path
) -> None:
    service = only_service(mq_app())
    galaxy.send("setup", setup_body("k", waiting_command(tmp_path / "never", "true")))
    assert galaxy.next_update()["status"] == "running"
    pid = service.store.load("k").backend["pid"]
    galaxy.send("kill", {"job_id": "k"})
    wait_for(lambda: service.job_state("k") is JobState.CANCELLED, what="the cancel")
    wait_for(lambda: find_process({"pid": pid}) is None, what="the job's processes to go")
    galaxy.barrier()
    assert galaxy.statuses("k") == ["running"]  # B6: no unprompted cancelled
    galaxy.send("status", {"job_id": "k"})
    document = galaxy.terminal("k")
    assert document["status"] == "cancelled" and set(document) == TERMINAL_KEYS
    galaxy.send("kill", {"job_id": "k"})  # again: a no-op
    galaxy.send("kill", {"job_id": "nobody"})  # unknown: a no-op
    galaxy.barrier()
    assert galaxy.statuses("k") == ["running", "cancelled"]


def test_status_requests(galaxy: GalaxyQueues, mq_app: App, tmp_path: Path) -> None:
    mq_app(message_queue_cleanup_job="never")
    gate = tmp_path / "gate"
    galaxy.send("setup", setup_body("s", waiting_command(gate, "exit 4")))
    assert galaxy.next_update()["status"] == "running"
    galaxy.send("status", {"job_id": "s"})
    assert galaxy.next_update() == {"complete": "false", "status": "running", "job_id": "s"}
    gate.touch()
    first = galaxy.terminal("s")
    galaxy.send("status", {"request": "status", "job_id": "s", "force_noack": True})  # 0.16 client shape
    assert galaxy.terminal("s") == first
    galaxy.send("status", {"job_id": "unknown9"})
    lost = galaxy.terminal("unknown9")
    assert lost["status"] == "lost" and lost["returncode"] is None
    assert lost["outputs_directory_contents"] == [] and set(lost) == TERMINAL_KEYS


def test_legacy_status_request_on_the_setup_queue(galaxy: GalaxyQueues, mq_app: App, tmp_path: Path) -> None:
    """B8 improved: a 0.15.15 status request neither creates nor fails an unknown job, and is
    answered for a known one."""
    service = only_service(mq_app())
    galaxy.send("setup", {"request": "status", "job_id": "ghost"})
    galaxy.send("setup", setup_body("known", waiting_command(tmp_path / "gate", "true")))
    assert galaxy.next_update() == {"complete": "false", "status": "running", "job_id": "known"}
    galaxy.send("setup", {"request": "status", "job_id": "known"})
    assert galaxy.next_update() == {"complete": "false", "status": "running", "job_id": "known"}
    galaxy.barrier()
    assert galaxy.for_job("ghost") == []
    assert service.job_state("ghost") is None and not (service.settings.staging_root / "ghost").exists()


def test_duplicate_setups_run_the_job_once(galaxy: GalaxyQueues, mq_app: App, tmp_path: Path) -> None:
    mq_app()
    runs = tmp_path / "runs"
    gate = tmp_path / "gate"
    body = setup_body("dup", waiting_command(gate, f"echo ran >> {runs}"))
    galaxy.send("setup", body)
    galaxy.send("setup", body)  # a redelivery
    galaxy.send("setup", dict(body, acknowledge_uuid="6f1c1f6e-0000-11ee-8000-000000000001",
                              acknowledge_queue="setup_ack", acknowledge_submit_queue="setup", force_noack=True))
    assert galaxy.next_update()["status"] == "running"
    gate.touch()
    assert galaxy.terminal("dup")["status"] == "complete"
    galaxy.send("setup", body)  # once more after it ended (and its directory was removed)
    galaxy.send("setup", setup_body("after", "true"))  # the setup consumer is sequential
    galaxy.terminal("after")
    galaxy.barrier()
    assert runs.read_text() == "ran\n"
    assert galaxy.statuses("dup") == ["running", "complete"]


def test_a_new_setup_reusing_a_finished_id_runs(galaxy: GalaxyQueues, mq_app: App, tmp_path: Path) -> None:
    """A fresh Galaxy database reuses job ids: a different request is a new job, not a duplicate."""
    mq_app()
    galaxy.send("setup", setup_body("reused", "exit 1"))
    assert galaxy.terminal("reused")["returncode"] == 1
    galaxy.send("setup", setup_body("reused", "exit 2"))
    assert galaxy.terminal("reused")["returncode"] == 2


BAD_BODIES: list[tuple[Any, str]] = [
    ("hello", "text/plain"),
    ("{not json", "application/json"),
    ("null", "application/json"),
    ("[1]", "application/json"),
    ({}, "application/json"),
    ({"job_id": "../escape"}, "application/json"),
    ({"job_id": None, "command_line": "true"}, "application/json"),
    ("[" * 100_000 + "]" * 100_000, "application/json"),  # deeper than any decoder's recursion
    ('{"job_id": "deep", "command_line": "true", "env": ' + "[" * 100_000 + "]" * 100_000 + "}", "application/json"),
]


def test_malformed_messages_never_stop_a_consumer(galaxy: GalaxyQueues, mq_app: App) -> None:
    app = mq_app()
    for queue in ("setup", "kill", "status"):
        for body, content_type in BAD_BODIES:
            galaxy.send(queue, body, content_type=content_type)
    galaxy.send("setup", {"job_id": "noline"})  # a job id but no command line: one failed update
    galaxy.send("setup", setup_body("valid", "true"))
    failed = galaxy.terminal("noline")
    assert failed["status"] == "failed" and "command_line is required" in failed["stderr"]
    assert failed["returncode"] is None
    assert galaxy.terminal("valid")["status"] == "complete"
    galaxy.barrier()  # the status consumer still answers
    assert all(consumer.alive for binding in app.bindings for consumer in binding.consumers)
    assert {u["job_id"] for u in galaxy.updates} == {"noline", "valid"}
    for queue in ("setup", "kill", "status"):
        assert galaxy.broker.depth(queue) == 0  # nothing left to poison the next start


def test_two_managers_keep_their_jobs_apart(galaxy: GalaxyQueues, mq_app: App, amqp_url: str,
                                            unique_manager: str) -> None:
    other_name = unique_manager + "b"
    for other in galaxy_queues(amqp_url, other_name):
        app = mq_app(managers={unique_manager: {"type": "queued_python"}, other_name: {"type": "queued_python"}})
        galaxy.send("setup", setup_body("a1", "true"))
        other.send("setup", setup_body("b1", "true"))
        assert galaxy.terminal("a1")["status"] == "complete"
        assert other.terminal("b1")["status"] == "complete"
        galaxy.barrier()
        other.barrier()
        assert {u["job_id"] for u in galaxy.updates} == {"a1"}
        assert {u["job_id"] for u in other.updates} == {"b1"}
        assert [b.exchange.queue("setup") for b in app.bindings] == [
            f"pulsar_{unique_manager}__setup", f"pulsar_{other_name}__setup"]
        app.shutdown()  # before the queues go


def test_amqp_key_prefix(mq_app: App, amqp_url: str, unique_manager: str) -> None:
    prefix = "pfx" + unique_manager
    for galaxy in galaxy_queues(amqp_url, unique_manager, prefix):
        app = mq_app(amqp_key_prefix=prefix)
        assert app.bindings[0].exchange.queue("setup") == f"{prefix}_setup"
        galaxy.send("setup", setup_body("p1", "true"))
        assert galaxy.terminal("p1")["status"] == "complete"
        app.shutdown()  # before the queues go


def test_amqp_key_prefix_with_two_managers_is_refused(tmp_path: Path, amqp_url: str) -> None:
    with pytest.raises(ConfigurationError, match="amqp_key_prefix"):
        PulsarApp(message_queue_url=amqp_url, amqp_key_prefix="shared", staging_directory=str(tmp_path / "s"),
                  persistence_directory=str(tmp_path / "p"), managers={"a": {}, "b": {}})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"message_queue_cleanup_job": "sometimes"}, "message_queue_cleanup_job"),
        ({"status_outbox_drain_interval": "soon"}, "status_outbox_drain_interval"),
        ({"message_queue_consume": "maybe"}, "message_queue_consume"),
        ({"persistence_directory": "__none__"}, "persistence_directory"),
        ({"message_queue_url": "https://relay.example.org"}, "relay"),
    ],
)
def test_unusable_options_stop_the_start(tmp_path: Path, amqp_url: str, options: dict[str, Any], message: str) -> None:
    config: dict[str, Any] = {"message_queue_url": amqp_url, "staging_directory": str(tmp_path / "s"),
                              "persistence_directory": str(tmp_path / "p")}
    config.update(options)
    with pytest.raises(ConfigurationError, match=message):
        PulsarApp(**config)


@pytest.mark.parametrize("policy", ["onsuccess", "never"])
def test_cleanup_policies(galaxy: GalaxyQueues, mq_app: App, policy: str) -> None:
    ledger = mq_app(message_queue_cleanup_job=policy).bindings[0].ledger
    galaxy.send("setup", setup_body("ok", "true"))
    galaxy.send("setup", setup_body("bad", "exit 5"))
    ok, bad = galaxy.terminal("ok"), galaxy.terminal("bad")
    # the clean-up follows the broker's confirm, in the drain thread: wait for the settled mark
    wait_for(lambda: all(ledger.get(j).settled for j in ("ok", "bad")), what="both jobs settled")
    assert Path(bad["job_directory"]).exists()
    assert Path(ok["job_directory"]).exists() == (policy == "never")


def test_consume_only_publishes_nothing(galaxy: GalaxyQueues, mq_app: App) -> None:
    app = mq_app(message_queue_publish="false")
    service = only_service(app)
    assert app.bindings[0].outbox is None
    galaxy.send("setup", setup_body("quiet", "true"))
    wait_for(lambda: service.job_state("quiet") is JobState.COMPLETE, what="the job to end")
    assert galaxy.broker.depth("status_update") == 0


def test_acks_both_ways(galaxy: GalaxyQueues, mq_app: App) -> None:
    """mq-protocol 3.6 with acks on the server: a setup asking for an ack is answered on
    setup_ack; our updates ask for one, and Galaxy's reply ends their republishing."""
    app = mq_app(amqp_acknowledge=True)
    exchange = app.bindings[0].exchange
    assert exchange.stores is not None
    request_uuid = "6f1c1f6e-0000-11ee-8000-0000000000a1"
    galaxy.send("setup", dict(setup_body("ack1", "true"), acknowledge_uuid=request_uuid,
                              acknowledge_queue="setup_ack", acknowledge_submit_queue="setup"))
    assert galaxy.broker.get("setup_ack", 30).body == {"acknowledge_uuid_response": request_uuid}
    document = galaxy.terminal("ack1")
    assert document["acknowledge_queue"] == "status_update_ack"
    assert document["acknowledge_submit_queue"] == "status_update"
    for update in galaxy.for_job("ack1"):
        galaxy.send("status_update_ack", {"acknowledge_uuid_response": update["acknowledge_uuid"]})
    wait_for(lambda: len(exchange.stores.publish) == 0, what="the acknowledged updates to leave the store")


def test_cancelled_jobs_are_cleaned_after_their_grace_and_old_records_pruned(
    galaxy: GalaxyQueues, mq_app: App, tmp_path: Path
) -> None:
    app = mq_app()
    binding, service = app.bindings[0], only_service(app)
    galaxy.send("setup", setup_body("c1", waiting_command(tmp_path / "never", "true")))
    assert galaxy.next_update()["status"] == "running"
    galaxy.send("kill", {"job_id": "c1"})
    wait_for(lambda: service.job_state("c1") is JobState.CANCELLED, what="the cancel")
    job_directory = service.settings.staging_root / "c1"
    binding.maintain()
    assert job_directory.exists()  # within the grace period a status request still finds it
    entry = binding.ledger.get("c1")
    assert entry is not None and entry.cancelled is not None and entry.settled is None
    binding.maintain(now=entry.cancelled + binding.options.cancelled_grace + 1)
    assert not job_directory.exists() and service.job_state("c1") is None
    settled = binding.ledger.get("c1")
    assert settled is not None and settled.settled is not None
    galaxy.send("setup", setup_body("c1", waiting_command(tmp_path / "never", "true")))  # a late redelivery
    galaxy.send("setup", setup_body("c2", "true"))
    galaxy.terminal("c2")
    assert service.job_state("c1") is None  # recognised: the cancelled job does not come back
    binding.maintain(now=settled.settled + 8 * 24 * 3600)
    assert binding.ledger.get("c1") is None


def test_tool_streams_are_capped_job_streams_are_not(galaxy: GalaxyQueues, mq_app: App) -> None:
    """mq-protocol 8.23: 200,000 bytes of tool output arrive as 65,536 characters."""
    mq_app()
    write = "head -c 200000 /dev/zero | tr '\\\\0' x"
    galaxy.send("setup", setup_body("big", f"{write} > ../metadata/tool_stdout; {write}; {write} >&2"))
    document = galaxy.terminal("big")
    assert len(document["stdout"]) == 65536 and "\n..\n" in document["stdout"]
    assert document["stderr"] == ""
    assert len(document["job_stdout"]) == 200000 and len(document["job_stderr"]) == 200000


def test_publish_only_consumes_nothing_and_still_reports(galaxy: GalaxyQueues, mq_app: App) -> None:
    """`message_queue_consume: false` (pulsar-submit, mixed mode): jobs submitted another way
    still have their updates published; HTTP jobs' directories are left to their client."""
    from pulsar.jobs.submit import parse_submit_message

    app = mq_app(message_queue_consume="false")
    service = only_service(app)
    assert app.bindings[0].consumers == []
    service.submit_request("http1", parse_submit_message(setup_body("http1", "exit 0")))
    assert galaxy.terminal("http1")["status"] == "complete"
    galaxy.send("setup", setup_body("ignored", "true"))
    wait_for(lambda: galaxy.broker.depth("setup") == 1, what="the setup to wait in its queue")  # nobody consumes it
    assert (service.settings.staging_root / "http1").exists()


def test_shutdown_takes_the_reference_timeout(mq_app: App) -> None:
    """`PulsarApp.shutdown(timeout=...)` as in the reference (Galaxy calls it without): the
    consumers, idle here, stop well within it."""
    app = mq_app()
    started = time.monotonic()
    app.shutdown(timeout=20)
    assert time.monotonic() - started < 20
    assert not any(consumer.alive for binding in app.bindings for consumer in binding.consumers)
