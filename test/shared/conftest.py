"""Exchanges on the real broker for the `pulsar.shared.amqp` tests.

`mq.exchange(...)` builds a `PulsarExchange` for the test's unique manager and
`mq.consume(...)` starts a consumer thread on it; at teardown every consumer is stopped,
every exchange closed and the manager's queues deleted, so the shared broker does not fill
up with test queues.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from amqp.exceptions import ChannelError
from kombu import Connection

from pulsar.shared.amqp import ALL_QUEUES, Callback, ConsumerThread, PulsarExchange, parse_amqp_options


class Mq:
    def __init__(self, url: str, manager: str) -> None:
        self.url = url
        self.manager = manager
        self.exchanges: list[PulsarExchange] = []
        self.threads: list[ConsumerThread] = []

    def exchange(self, role: str = "server", *, url: str | None = None, persistence_directory: Any = None,
                 **options: Any) -> PulsarExchange:
        settings = parse_amqp_options(url or self.url, options, persistence_directory=persistence_directory)
        exchange = PulsarExchange(settings, self.manager, role=role)
        self.exchanges.append(exchange)
        return exchange

    def consume(self, exchange: PulsarExchange, logical: str, callback: Callback) -> ConsumerThread:
        thread = exchange.start_consumer(logical, callback)
        self.threads.append(thread)
        assert thread.wait_connected(10), f"consumer of {logical} did not connect"
        return thread

    def close(self) -> None:
        for thread in self.threads:
            thread.stop(timeout=10)
        for exchange in self.exchanges:
            exchange.close()
        if self.exchanges:
            with Connection(self.url) as connection:
                channel = connection.channel()
                for logical in ALL_QUEUES:
                    channel.queue_delete(self.exchanges[0].queue(logical))

    def depth(self, exchange: PulsarExchange, logical: str) -> int | None:
        """Messages ready in a queue (None if it does not exist), asked over AMQP (fast)."""
        with Connection(self.url) as connection:
            try:
                return int(connection.channel().queue_declare(exchange.queue(logical), passive=True).message_count)
            except ChannelError:
                return None


def broker_connections(fragment: str) -> list[tuple[str, str]]:
    """(pid, heartbeat timeout) of the broker connections whose connection_name contains `fragment`."""
    out = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "timeout", "client_properties"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    found = []
    for line in out.splitlines():
        pid, _, rest = line.partition("\t")
        timeout, _, properties = rest.partition("\t")
        if '"connection_name","' in properties and fragment in properties:
            found.append((pid, timeout))
    return found


def close_connections(fragment: str) -> int:
    """Force-close (as an operator or a broker failover would) our connections matching `fragment`."""
    pids = [pid for pid, _ in broker_connections(fragment)]
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "closed by test"],
                       capture_output=True, check=True, timeout=60)
    return len(pids)


@pytest.fixture
def mq(amqp_url: str, unique_manager: str) -> Iterator[Mq]:
    broker = Mq(amqp_url, unique_manager)
    try:
        yield broker
    finally:
        broker.close()
