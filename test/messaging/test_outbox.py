"""The durable status outbox with an injected publish function (no broker needed)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from pulsar.messaging.outbox import Outbox
from test.messaging.conftest import wait_for


class Broker:
    """A publish function that fails while `down` and records what it accepted."""

    def __init__(self) -> None:
        self.down = False
        self.accepted: list[dict[str, Any]] = []
        self.attempts = 0

    def __call__(self, document: dict[str, Any]) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("broker unreachable")
        self.accepted.append(document)


def doc(job_id: str, status: str = "complete") -> dict[str, Any]:
    return {"job_id": job_id, "status": status, "complete": "true" if status != "running" else "false"}


def test_put_is_on_disk_before_it_returns_and_survives_a_restart(tmp_path: Path) -> None:
    broker = Broker()
    outbox = Outbox(tmp_path / "o", broker)
    for n in range(3):
        outbox.put(doc(str(n)))
    assert len(outbox) == 3 and broker.accepted == []  # nothing sent before the drain starts
    again = Outbox(tmp_path / "o", broker)  # what a restart finds
    again.put(doc("3"))
    assert [d["job_id"] for d in again.pending()] == ["0", "1", "2", "3"]
    assert again.drain() is True
    assert [d["job_id"] for d in broker.accepted] == ["0", "1", "2", "3"]
    assert len(again) == 0


def test_entries_wait_while_publishing_fails_then_go_in_order(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pulsar.messaging.outbox")
    broker = Broker()
    broker.down = True
    delivered: list[str] = []
    outbox = Outbox(tmp_path / "o", broker, on_delivered=lambda d: delivered.append(d["job_id"]), max_interval=0.05)
    outbox.start()
    try:
        outbox.put(doc("a", "running"))
        outbox.put(doc("a"))
        outbox.put(doc("b", "failed"))
        wait_for(lambda: broker.attempts >= 3, what="a few failed attempts")
        assert len(outbox) == 3 and broker.accepted == []
        broker.down = False
        wait_for(lambda: len(outbox) == 0, what="the outbox to drain")
    finally:
        outbox.stop()
    assert [(d["job_id"], d["status"]) for d in broker.accepted] == [("a", "running"), ("a", "complete"), ("b", "failed")]
    assert delivered == ["a", "b"]  # terminal documents only, after the broker took them
    warnings = [r for r in caplog.records if "cannot publish" in r.getMessage()]
    assert len(warnings) == 1 and "broker unreachable" in warnings[0].getMessage()
    assert len([r for r in caplog.records if "publishing status updates again" in r.getMessage()]) == 1


def test_a_put_wakes_the_idle_drain(tmp_path: Path) -> None:
    broker = Broker()
    outbox = Outbox(tmp_path / "o", broker, max_interval=3600)
    outbox.start()
    try:
        outbox.put(doc("x"))
        wait_for(lambda: broker.accepted, timeout=5, what="the update")
    finally:
        outbox.stop()


def test_concurrent_puts_keep_their_order_per_writer(tmp_path: Path) -> None:
    broker = Broker()
    outbox = Outbox(tmp_path / "o", broker)

    def writer(name: str) -> None:
        for n in range(50):
            outbox.put({"job_id": name, "n": n, "complete": "false"})

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outbox.drain() is True
    for i in range(4):
        assert [d["n"] for d in broker.accepted if d["job_id"] == f"w{i}"] == list(range(50))


def test_an_unreadable_entry_is_set_aside_and_the_rest_still_go(tmp_path: Path) -> None:
    broker = Broker()
    outbox = Outbox(tmp_path / "o", broker)
    outbox.put(doc("1"))
    (tmp_path / "o" / "00000000000000000002-bad.json").write_text("{not json")
    outbox.put(doc("3"))
    assert outbox.drain() is True
    assert [d["job_id"] for d in broker.accepted] == ["1", "3"]
    assert (tmp_path / "o" / "00000000000000000002-bad.json.unreadable").exists()


def test_a_failing_after_delivery_step_does_not_stop_the_drain(tmp_path: Path) -> None:
    broker = Broker()

    def explode(document: dict[str, Any]) -> None:
        raise RuntimeError("cleanup failed")

    outbox = Outbox(tmp_path / "o", broker, on_delivered=explode)
    outbox.put(doc("1"))
    outbox.put(doc("2"))
    assert outbox.drain() is True
    assert len(broker.accepted) == 2 and len(outbox) == 0


def test_many_waiting_entries_are_drained_in_batches(tmp_path: Path) -> None:
    broker = Broker()
    outbox = Outbox(tmp_path / "o", broker)
    for n in range(700):  # more than two listing batches
        outbox.put({"job_id": "j", "n": n, "complete": "false"})
    assert outbox.drain() is True
    assert [d["n"] for d in broker.accepted] == list(range(700))
