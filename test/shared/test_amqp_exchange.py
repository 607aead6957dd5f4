"""`PulsarExchange` against the real broker: declarations, publish/consume, bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pulsar.shared.amqp import (
    ALL_QUEUES,
    PublishError,
    PulsarExchange,
    RejectMessage,
    RequeueMessage,
    parse_amqp_options,
)
from test.shared.conftest import Mq
from test.support.polling import wait_for

pytestmark = pytest.mark.rabbitmq


def raw_publish(exchange: PulsarExchange, logical: str, body: bytes, content_type: str | None) -> None:
    """Publish bytes as a foreign client would (no validation, any content type)."""
    from kombu import Connection

    with Connection(exchange.settings.connection_url) as connection:
        producer = connection.Producer()
        producer.publish(body, exchange="pulsar", routing_key=exchange.queue(logical),
                         content_type=content_type or "", content_encoding="utf-8")


def test_declare_all_creates_every_queue(mq: Mq) -> None:
    exchange = mq.exchange()
    assert all(mq.depth(exchange, logical) is None for logical in ALL_QUEUES)
    exchange.declare_all()
    assert all(mq.depth(exchange, logical) == 0 for logical in ALL_QUEUES)


def test_publish_before_any_consumer_is_not_lost(mq: Mq) -> None:
    publisher = mq.exchange("client")
    publisher.publish("setup", {"job_id": "1", "command_line": "true"})  # nobody ever consumed this manager
    received: list[dict[str, Any]] = []
    mq.consume(mq.exchange("server"), "setup", received.append)
    wait_for(lambda: received)
    assert received == [{"job_id": "1", "command_line": "true"}]


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"hello", "text/plain"),
        (b"{not json", "application/json"),
        (b"null", "application/json"),
        (b"1", "application/json"),
        (b"[1]", "application/json"),
        (b"\xff\xfe", "application/json"),
    ],
)
def test_malformed_message_is_rejected_and_consumer_keeps_running(mq: Mq, body: bytes, content_type: str) -> None:
    exchange = mq.exchange()
    received: list[dict[str, Any]] = []
    thread = mq.consume(exchange, "setup", received.append)
    raw_publish(exchange, "setup", body, content_type)
    exchange.publish("setup", {"job_id": "after"})
    wait_for(lambda: received)
    assert received == [{"job_id": "after"}]
    assert thread.alive
    wait_for(lambda: mq.depth(exchange, "setup") == 0)  # rejected, not requeued


def test_callback_errors_reject_without_killing_the_consumer(mq: Mq) -> None:
    exchange = mq.exchange()
    received: list[dict[str, Any]] = []

    def callback(body: dict[str, Any]) -> None:
        if body.get("explode") == "reject":
            raise RejectMessage("unusable")
        if body.get("explode"):
            raise RuntimeError("handler bug")
        received.append(body)

    thread = mq.consume(exchange, "kill", callback)
    exchange.publish("kill", {"explode": "reject"})
    exchange.publish("kill", {"explode": True})
    exchange.publish("kill", {"job_id": "ok"})
    wait_for(lambda: received)
    assert received == [{"job_id": "ok"}]
    assert thread.alive


def test_wire_format(mq: Mq) -> None:
    exchange = mq.exchange()
    from kombu import Connection, Queue

    exchange.publish("status_update", {"job_id": "7", "text": "é"})
    with Connection(exchange.settings.connection_url) as connection:
        message = connection.SimpleQueue(Queue(exchange.queue("status_update"), no_declare=True)).get(timeout=10)
        assert message.content_type == "application/json"
        assert message.content_encoding == "utf-8"
        assert message.properties["delivery_mode"] == 2
        assert message.properties["priority"] == 0
        assert message.body == json.dumps({"job_id": "7", "text": "é"})  # py-amqp decodes utf-8 bodies
        message.ack()


def test_publish_to_unreachable_broker_raises_publish_error() -> None:
    settings = parse_amqp_options("amqp://guest:secret@127.0.0.1:1//", {})
    exchange = PulsarExchange(settings, None, role="client")
    with pytest.raises(PublishError) as info:
        exchange.publish("setup", {"job_id": "1"})
    assert "secret" not in str(info.value)


def test_oversized_message_is_rejected(mq: Mq, monkeypatch: pytest.MonkeyPatch) -> None:
    from pulsar.shared.amqp import consumer

    monkeypatch.setattr(consumer, "MAX_BODY_BYTES", 1024)  # a 64 MiB body would only slow the test
    exchange = mq.exchange()
    received: list[dict[str, Any]] = []
    thread = mq.consume(exchange, "setup", received.append)
    raw_publish(exchange, "setup", json.dumps({"job_id": "big", "pad": "x" * 2000}).encode(), "application/json")
    exchange.publish("setup", {"job_id": "small"})
    wait_for(lambda: received)
    assert received == [{"job_id": "small"}]
    assert thread.alive


def test_requeue_redelivers_to_a_later_consumer(mq: Mq) -> None:
    exchange = mq.exchange("client")
    attempts: list[dict[str, Any]] = []

    def not_ready(body: dict[str, Any]) -> None:
        attempts.append(body)
        raise RequeueMessage("client not active")

    thread = mq.consume(exchange, "status_update", not_ready)
    exchange.publish("status_update", {"job_id": "1", "status": "running"})
    wait_for(lambda: attempts)
    thread.stop(timeout=10)
    received: list[dict[str, Any]] = []
    mq.consume(exchange, "status_update", received.append)
    wait_for(lambda: received)
    assert received == [{"job_id": "1", "status": "running"}]
    assert len(attempts) < 20  # a requeued message is not redelivered in a hot loop


def test_publish_rejects_unknown_queues_and_unserialisable_bodies(mq: Mq) -> None:
    exchange = mq.exchange()
    with pytest.raises(ValueError, match="unknown queue"):
        exchange.publish("setup_typo", {})
    with pytest.raises(TypeError):
        exchange.publish("setup", {"x": object()})


def test_publish_after_close_raises(mq: Mq) -> None:
    exchange = mq.exchange()
    exchange.publish("kill", {"job_id": "1"})
    exchange.close()
    with pytest.raises(PublishError, match="closed"):
        exchange.publish("kill", {"job_id": "2"})
