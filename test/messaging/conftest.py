"""The server's message-queue mode on the real broker: our `PulsarApp` in-process, and a
raw-kombu stand-in for Galaxy (`test.client.mq_broker.RawBroker`: it publishes setup, kill
and status bodies byte for byte, malformed ones included, and reads `status_update`).

Deterministic waits only: `GalaxyQueues.barrier()` sends a status request for an id nobody
uses and reads up to its `lost` reply; the server publishes every update through one FIFO
outbox, so everything announced before the barrier has been read by then.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from pulsar.core import PulsarApp
from test.client.mq_broker import RawBroker
from test.jobs.conftest import make_app  # noqa: F401  (fixture)
from test.support import polling

UPDATE_TIMEOUT = 30.0


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    return polling.wait_for(predicate, timeout=timeout, what=what)


class GalaxyQueues:
    """Galaxy's side of one manager's queues: what it sends, and every update it received."""

    _barriers = itertools.count()

    def __init__(self, broker: RawBroker):
        self.broker = broker
        self.updates: list[dict[str, Any]] = []
        broker.declare()  # like our client: nothing the server publishes is dropped (B3)

    def send(self, logical: str, body: Any, content_type: str = "application/json") -> None:
        self.broker.publish(logical, body, content_type=content_type)

    def next_update(self, timeout: float = UPDATE_TIMEOUT) -> dict[str, Any]:
        body = self.broker.get("status_update", timeout).body
        self.updates.append(body)
        return body

    def read_until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = UPDATE_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = self.next_update(max(0.1, deadline - time.monotonic()))
            if predicate(body):
                return body

    def terminal(self, job_id: str, timeout: float = UPDATE_TIMEOUT) -> dict[str, Any]:
        return self.read_until(lambda b: b.get("job_id") == job_id and b.get("complete") == "true", timeout)

    def barrier(self) -> None:
        """Read every update the server announced before now (see the module docstring)."""
        marker = f"barrier{next(self._barriers)}x{time.monotonic_ns()}"
        self.send("status", {"job_id": marker})
        self.read_until(lambda b: b.get("job_id") == marker)
        self.updates = [u for u in self.updates if u.get("job_id") != marker]

    def for_job(self, job_id: str) -> list[dict[str, Any]]:
        return [u for u in self.updates if u.get("job_id") == job_id]

    def statuses(self, job_id: str) -> list[str]:
        return [u["status"] for u in self.for_job(job_id)]


def setup_body(job_id: str, command_line: str, **extra: Any) -> dict[str, Any]:
    """A minimal setup message as Galaxy's MQ runner sends it (mq-protocol 3.2)."""
    body: dict[str, Any] = {
        "job_id": job_id,
        "command_line": command_line,
        "setup_params": {"job_id": job_id, "tool_id": "probe", "tool_version": "1.0",
                         "use_metadata": True, "preserve_galaxy_python_environment": None},
        "env": [],
        "dynamic_file_sources": None,
        "token_endpoint": None,
    }
    body.update(extra)
    return body


def galaxy_queues(url: str, manager: str, prefix: str | None = None) -> Iterator[GalaxyQueues]:
    """Generator body for a fixture (or a `for` in a test): the queues are deleted afterwards."""
    broker = RawBroker(url, manager, prefix)
    try:
        yield GalaxyQueues(broker)
    finally:
        broker.delete_all()
        broker.close()


@pytest.fixture
def galaxy(amqp_url: str, unique_manager: str) -> Iterator[GalaxyQueues]:
    yield from galaxy_queues(amqp_url, unique_manager)


@pytest.fixture
def mq_app(make_app: Callable[..., PulsarApp], amqp_url: str, unique_manager: str) -> Callable[..., PulsarApp]:  # noqa: F811
    """`mq_app(**options)`: our app bound to the test's manager (queued_python), its consumers
    connected, its state under tmp_path (so calling it again after `app.shutdown()` is a
    restart on the same state); `make_app` shuts it down and kills its jobs at teardown."""

    def build(**options: Any) -> PulsarApp:
        options.setdefault("message_queue_url", amqp_url)
        options.setdefault("managers", {unique_manager: {"type": "queued_python"}})
        app = make_app(**options)
        for binding in app.bindings:
            for consumer in binding.consumers:
                assert consumer.wait_connected(30), f"{consumer.name} did not connect"
        return app

    return build
