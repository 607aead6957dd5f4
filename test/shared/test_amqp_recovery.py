"""Connection loss on the real broker: consumers reconnect, publishers retry on a fresh
connection, heartbeats are negotiated, and each state change is logged once, redacted."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from pulsar.shared.amqp import PublishError, PulsarExchange, parse_amqp_options
from test.shared.conftest import Mq, broker_connections, close_connections
from test.support.cutting_proxy import Cut, CuttingProxy
from test.support.polling import wait_for

pytestmark = pytest.mark.rabbitmq


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if text in record.getMessage()]


def test_consumer_reconnects_after_a_forced_close(mq: Mq, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pulsar.shared.amqp")
    exchange = mq.exchange()
    received: list[dict[str, Any]] = []
    thread = mq.consume(exchange, "setup", received.append)
    name = f"consumer {exchange.queue('setup')}"

    assert close_connections(name) == 1
    wait_for(lambda: messages(caplog, "connection to amqp://guest:***@127.0.0.1:5672// restored"))
    exchange.publish("setup", {"job_id": "after-close"})
    wait_for(lambda: received)

    assert received == [{"job_id": "after-close"}]
    assert thread.alive and thread.connected
    assert len(broker_connections(name)) == 1
    assert len(messages(caplog, "lost connection")) == 1
    assert len(messages(caplog, "restored")) == 1
    assert not any("guest:guest" in record.getMessage() for record in caplog.records)


def test_publish_survives_a_stale_publisher_connection(mq: Mq, caplog: pytest.LogCaptureFixture) -> None:
    """B18: the first publish after the broker dropped the connection must not fail."""
    exchange = mq.exchange("client")
    exchange.publish("setup", {"job_id": "1"})
    assert close_connections(f"pulsar-client {mq.manager} publisher") == 1
    exchange.publish("setup", {"job_id": "2"})  # retried once on a fresh connection
    assert mq.depth(exchange, "setup") == 2


def test_consumer_waits_for_an_unreachable_broker_and_stops_on_request(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pulsar.shared.amqp")
    settings = parse_amqp_options("amqp://guest:s3cret@127.0.0.1:1//", {})
    exchange = PulsarExchange(settings, "unreachable", role="client")
    thread = exchange.start_consumer("status_update", lambda body: None)
    try:
        wait_for(lambda: messages(caplog, "cannot connect to amqp://guest:***@127.0.0.1:1//"))
        assert thread.alive and not thread.connected
    finally:
        thread.stop(timeout=5)
    assert not thread.alive
    assert len(messages(caplog, "cannot connect")) == 1
    assert not any("s3cret" in record.getMessage() for record in caplog.records)


def test_negotiated_heartbeat_is_visible_on_the_broker(mq: Mq) -> None:
    exchange = mq.exchange(amqp_heartbeat="7")
    mq.consume(exchange, "setup", lambda body: None)
    assert broker_connections(f"consumer {exchange.queue('setup')}")[0][1] == "7"


def test_heartbeat_off(mq: Mq) -> None:
    exchange = mq.exchange(amqp_heartbeat="off")
    mq.consume(exchange, "kill", lambda body: None)
    assert broker_connections(f"consumer {exchange.queue('kill')}")[0][1] == "0"


def test_idle_consumer_outlives_three_heartbeats(mq: Mq, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pulsar.shared.amqp")
    exchange = mq.exchange(amqp_heartbeat="1")
    received: list[dict[str, Any]] = []
    thread = mq.consume(exchange, "status", received.append)
    name = f"consumer {exchange.queue('status')}"
    (pid, timeout), = broker_connections(name)
    assert timeout == "1"
    deadline = time.monotonic() + 3.5  # the broker drops a peer silent for 2 heartbeats
    while time.monotonic() < deadline:
        assert thread.connected
        time.sleep(0.1)
    assert [connection[0] for connection in broker_connections(name)] == [pid]  # never reconnected
    assert not messages(caplog, "lost connection")
    exchange.publish("status", {"job_id": "idle"})
    wait_for(lambda: received)


def test_publish_retry_policy_outlasts_a_broker_outage(mq: Mq) -> None:
    """The first three connections are cut at once (broker unreachable); the retry policy
    carries the publish over to the fourth, through a fresh connection each time."""
    with CuttingProxy(5672, [Cut(0, 0)] * 3) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}//"
        exchange = mq.exchange("client", url=url, amqp_publish_retry_max_retries="3",
                               amqp_publish_retry_interval_start="0.05", amqp_publish_retry_interval_step="0.05")
        exchange.publish("setup", {"job_id": "retried"})
        assert len(proxy.requests_seen) == 4
    assert mq.depth(exchange, "setup") == 1


def test_without_retry_a_publish_tries_twice_then_fails(mq: Mq) -> None:
    with CuttingProxy(5672, [Cut(0, 0)] * 2) as proxy:
        exchange = mq.exchange("client", url=f"amqp://guest:guest@127.0.0.1:{proxy.port}//")
        with pytest.raises(PublishError):
            exchange.publish("setup", {"job_id": "lost"})
        assert len(proxy.requests_seen) == 2
        exchange.publish("setup", {"job_id": "later"})  # the third connection is relayed whole
