"""The MQ client's consumers on the real broker: status updates into Galaxy's callback
(B1, B12, B19, B25), restart recovery (B26), acks (spec 3.6), broker loss and shutdown."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pulsar.client import MessageQueueClientManager
from pulsar.client.exceptions import PulsarClientError
from test.client.mq_broker import ManagerFactory, RawBroker, close_consumer_connections
from test.client.mq_jobs import Galaxy, destination
from test.support.polling import wait_for

pytestmark = pytest.mark.rabbitmq


def running(job_id: str) -> dict[str, Any]:
    return {"complete": "false", "status": "running", "job_id": job_id}


def terminal(job_id: str, status: str = "complete") -> dict[str, Any]:
    return {"job_id": job_id, "complete": "true", "status": status, "returncode": 0, "stdout": "", "stderr": ""}


def launch(manager: MessageQueueClientManager, broker: RawBroker, tmp_path: Path, job_id: str) -> None:
    client = manager.get_client(destination(tmp_path / "remote"), job_id, env=[])
    client.launch("true", job_config=client.setup("t", "1"))
    assert broker.get("setup").body["job_id"] == job_id


def test_updates_reach_the_callback_once_and_terminal_ones_only_once(
        broker: RawBroker, managers: ManagerFactory, tmp_path: Path) -> None:
    galaxy = Galaxy()
    manager = managers(galaxy)
    launch(manager, broker, tmp_path, "1")
    for body in (running("1"), terminal("1"), terminal("1"), running("1"), terminal("1", "failed"), terminal("2")):
        broker.publish("status_update", body)
    galaxy.wait("2", "complete")  # published last: everything before it was handled
    assert galaxy.statuses("1") == ["running", "complete"]
    assert manager.status_cache["1"]["status"] == "complete"
    assert manager.tracker.active_jobs() == []  # terminal: no longer re-requested after a restart
    assert broker.depth("status_update") == 0  # dropped duplicates are acked, not requeued


def test_malformed_updates_do_not_stop_the_consumer(broker: RawBroker, managers: ManagerFactory,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    galaxy = Galaxy()
    manager = managers(galaxy)
    caplog.set_level(logging.WARNING)
    for body, content_type in [(b"hello", "text/plain"), (b"{not json", "application/json"),
                               (b"null", "application/json"), (b"[1]", "application/json"),
                               (b"{}", "application/json"), (b'{"job_id": null}', "application/json"),
                               (b'{"job_id": true, "status": "complete"}', "application/json")]:
        broker.publish("status_update", body, content_type=content_type)
    broker.publish("status_update", running("3"))
    galaxy.wait("3", "running")
    assert galaxy.received == [running("3")] and manager.consumers_alive
    assert broker.depth("status_update") == 0  # rejected without requeue: not redelivered forever
    assert "without a usable job_id" in caplog.text and "Traceback" not in caplog.text


def test_callback_errors_are_logged_and_the_update_consumed(broker: RawBroker, managers: ManagerFactory,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    galaxy = Galaxy(fail_first=1)
    manager = managers(galaxy)
    broker.publish("status_update", terminal("4"))
    broker.publish("status_update", terminal("5"))
    galaxy.wait("5", "complete")
    assert galaxy.statuses("4") == ["complete"]  # not redelivered after the failure
    assert "status callback failed for job 4" in caplog.text and manager.consumers_alive
    assert broker.depth("status_update") == 0


def test_updates_waiting_in_the_queue_are_delivered_at_start(broker: RawBroker, managers: ManagerFactory) -> None:
    broker.declare()  # our server declares every queue of its manager (B3)
    broker.publish("status_update", terminal("6"))  # sent while Galaxy was down
    galaxy = Galaxy()
    managers(galaxy)
    galaxy.wait("6", "complete")


def test_restart_requests_the_status_of_active_jobs_on_the_status_queue(
        broker: RawBroker, managers: ManagerFactory, tmp_path: Path) -> None:
    first = Galaxy()
    manager = managers(first)
    for job_id in ("10", "11", "12"):
        launch(manager, broker, tmp_path, job_id)
    broker.publish("status_update", terminal("12"))
    first.wait("12", "complete")
    manager.shutdown()

    restarted = managers(Galaxy())
    requests = [broker.get("status").body for _ in range(2)]
    assert sorted(r["job_id"] for r in requests) == ["10", "11"]
    assert all(r == {"request": "status", "job_id": r["job_id"], "force_noack": True} for r in requests)
    assert broker.depth("setup") == 0  # never on setup (B26, B8)
    for job_id in ("10", "11"):
        broker.publish("status_update", terminal(job_id, "lost"))
    wait_for(lambda: restarted.tracker.active_jobs() == [], what="both jobs terminal")
    restarted.shutdown()

    again = managers(Galaxy())
    assert again.status_request_thread is not None
    again.status_request_thread.join(10)
    assert broker.depth("status") == 0


def test_acks_requested_and_answered(broker: RawBroker, managers: ManagerFactory, tmp_path: Path) -> None:
    galaxy = Galaxy()
    manager = managers(galaxy, amqp_acknowledge=True)
    launch_client = manager.get_client(destination(tmp_path / "remote"), "20", env=[])
    launch_client.launch("true", job_config=launch_client.setup("t", "1"))
    body = broker.get("setup").body
    ack_uuid = body["acknowledge_uuid"]
    assert (body["acknowledge_queue"], body["acknowledge_submit_queue"]) == ("setup_ack", "setup")
    stores = manager.exchange.stores
    assert stores is not None and ack_uuid in stores.publish
    broker.publish("setup_ack", {"acknowledge_uuid_response": ack_uuid})
    wait_for(lambda: ack_uuid not in stores.publish, what="the ack reply to clear the publish store")

    request = {**running("20"), "acknowledge_uuid": "0b5c8f46-0000-11ef-8000-000000000001",
               "acknowledge_queue": "status_update_ack", "acknowledge_submit_queue": "status_update"}
    broker.publish("status_update", request)
    assert broker.get("status_update_ack").body == {"acknowledge_uuid_response": request["acknowledge_uuid"]}
    broker.publish("status_update", {**request, "force_noack": True})  # a republish: a duplicate
    broker.publish("status_update", terminal("20"))
    galaxy.wait("20", "complete")
    assert galaxy.statuses("20") == ["running", "complete"]


def test_ack_requests_are_answered_with_acks_off(broker: RawBroker, managers: ManagerFactory) -> None:
    galaxy = Galaxy()
    managers(galaxy, persistence_directory=None)
    request = {**terminal("21"), "acknowledge_uuid": "0b5c8f46-0000-11ef-8000-000000000002",
               "acknowledge_queue": "status_update_ack", "acknowledge_submit_queue": "status_update"}
    broker.publish("status_update", request)
    assert broker.get("status_update_ack").body == {"acknowledge_uuid_response": request["acknowledge_uuid"]}
    galaxy.wait("21", "complete")


def test_consumer_comes_back_after_the_broker_drops_it(broker: RawBroker, managers: ManagerFactory) -> None:
    galaxy = Galaxy()
    manager = managers(galaxy)
    assert close_consumer_connections(broker.name("status_update")) == 1
    broker.publish("status_update", terminal("30"))
    galaxy.wait("30", "complete", timeout=60)
    assert manager.consumers_alive


def test_shutdown_stops_every_thread_promptly(broker: RawBroker, managers: ManagerFactory, tmp_path: Path,
                                              unique_manager: str) -> None:
    manager = managers(Galaxy())

    def ours() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith(f"pulsar-mq-{unique_manager}-")]

    assert len(ours()) >= 3  # status_update, setup_ack, kill_ack (+ the status-request thread)
    started = time.monotonic()
    manager.shutdown()
    assert time.monotonic() - started < 5
    assert ours() == []
    client = manager.get_client(destination(tmp_path / "remote"), "40", env=[])
    with pytest.raises(PulsarClientError, match="shut down"):
        client.kill()
    manager.shutdown()  # idempotent
