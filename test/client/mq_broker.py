"""Raw kombu on the real broker, playing the Pulsar server for the MQ client tests, and the
fixtures those tests share (`broker`, `managers`; imported by test/client/conftest.py).

Deliberately independent of `pulsar.shared.amqp`: what the client sends is read here the
way any server would read it (queue names, body, AMQP properties), and what a server sends
is published here byte for byte, malformed messages included.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import kombu
import pytest

from pulsar.client import MessageQueueClientManager, build_client_manager
from test.support.rabbitmq import rabbitmqctl

LOGICAL_QUEUES = ("setup", "kill", "status", "status_update", "setup_ack", "kill_ack", "status_update_ack")


@dataclass
class Received:
    body: dict[str, Any]
    properties: dict[str, Any]
    delivery_info: dict[str, Any]
    content_type: str | None


class RawBroker:
    """The queues of one manager (prefix `pulsar_<manager>_`), read and written with raw kombu."""

    def __init__(self, url: str, manager: str, prefix: str | None = None):
        self.url = url
        self.prefix = prefix if prefix is not None else f"pulsar_{manager}_"
        self.connection = kombu.Connection(url)
        self.channel = self.connection.channel()
        self.exchange = kombu.Exchange("pulsar", type="direct", durable=True)

    def name(self, logical: str) -> str:
        return f"{self.prefix}_{logical}"

    def declare(self, *logicals: str) -> None:
        """Declare queues the way the reference server does (durable, no arguments)."""
        for logical in logicals or LOGICAL_QUEUES:
            kombu.Queue(self.name(logical), self.exchange, routing_key=self.name(logical), durable=True)(
                self.channel).declare()

    def get(self, logical: str, timeout: float = 10.0) -> Received:
        """The next message on a queue (acked), polling with a deadline."""
        message = self.poll(logical, timeout)
        if message is None:
            raise AssertionError(f"nothing arrived on {self.name(logical)} within {timeout} s")
        return message

    def poll(self, logical: str, timeout: float) -> Received | None:
        queue = kombu.Queue(self.name(logical), self.exchange, routing_key=self.name(logical), durable=True)(
            self.channel)
        deadline = time.monotonic() + timeout
        while True:
            message = queue.get(no_ack=False, accept=["application/json", "text/plain"])
            if message is not None:
                message.ack()
                return Received(json.loads(message.body), dict(message.properties),
                                dict(message.delivery_info), message.content_type)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def depth(self, logical: str) -> int:
        """Messages ready on a queue (0 when it does not exist)."""
        try:
            _, count, _ = self.channel.queue_declare(self.name(logical), passive=True)
        except Exception:  # noqa: BLE001 - NOT_FOUND closes the channel
            self.channel = self.connection.channel()
            return 0
        return int(count)

    def publish(self, logical: str, body: dict[str, Any] | bytes | str | None,
                content_type: str = "application/json") -> None:
        """Publish like a server would (or, with raw bytes / another type, like a broken one)."""
        data: bytes | str = json.dumps(body) if isinstance(body, dict) or body is None else body
        producer = kombu.Producer(self.channel, exchange=self.exchange)
        producer.publish(data, routing_key=self.name(logical), content_type=content_type,
                         content_encoding="utf-8", delivery_mode=2)

    def delete_all(self) -> None:
        for logical in LOGICAL_QUEUES:
            try:
                self.channel.queue_delete(self.name(logical))
            except Exception:  # noqa: BLE001
                self.channel = self.connection.channel()

    def close(self) -> None:
        self.connection.release()


def _table(*args: str) -> list[list[str]]:
    """Rows of a `rabbitmqctl -q list_*` table (header dropped)."""
    lines = rabbitmqctl(*args).splitlines()
    return [line.split("\t") for line in lines[1:] if line.strip()]


def close_consumer_connections(queue: str) -> int:
    """Force-close the broker connections consuming `queue` (a simulated broker loss that
    touches no other test's connections); returns how many were closed."""
    channels = {row[1] for row in _table("list_consumers", "queue_name", "channel_pid") if row[0] == queue}
    connections = {row[1] for row in _table("list_channels", "pid", "connection") if row[0] in channels}
    for pid in connections:
        rabbitmqctl("close_connection", pid, "test: simulated broker loss")
    return len(connections)


@pytest.fixture
def broker(amqp_url: str, unique_manager: str) -> Iterator[RawBroker]:
    """The test manager's queues seen raw; all deleted at teardown."""
    raw = RawBroker(amqp_url, unique_manager)
    try:
        yield raw
    finally:
        raw.delete_all()
        raw.close()


ManagerFactory = Callable[..., MessageQueueClientManager]


@pytest.fixture
def managers(amqp_url: str, unique_manager: str, tmp_path: Path) -> Iterator[ManagerFactory]:
    """`managers(callback=None, **options)`: a client manager built as Galaxy's runner builds it
    (persistence below tmp_path unless overridden).  With a callback also Galaxy's start-up:
    status consumer, ack consumers, all connected.  Every manager is shut down at teardown."""
    built: list[MessageQueueClientManager] = []

    def start(callback: Callable[[dict[str, Any]], None] | None = None, **options: Any) -> MessageQueueClientManager:
        options.setdefault("persistence_directory", str(tmp_path / "galaxy-persist"))
        manager = build_client_manager(amqp_url=amqp_url, manager=unique_manager, cache=None, transport=None,
                                       **options)
        assert isinstance(manager, MessageQueueClientManager)
        built.append(manager)
        if callback is not None:
            manager.ensure_has_status_update_callback(callback)
            manager.ensure_has_ack_consumers()
            assert manager.wait_connected(15), "consumers did not connect"
        return manager

    yield start
    for manager in built:
        manager.shutdown()
