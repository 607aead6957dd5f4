"""The message-queue figures of `GET /metrics` (`pulsar.telemetry`): each consumer's
connection as a 1/0 gauge, and the status updates waiting in the outbox."""

from __future__ import annotations

from typing import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulsar.core import PulsarApp
from test.messaging.conftest import GalaxyQueues, setup_body, wait_for
from test.support.server import free_port

pytestmark = pytest.mark.rabbitmq


def gauges(app: PulsarApp, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of gauge `name`, by their sorted labels."""
    found = {}
    for family in text_string_to_metric_families(app.metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_connected_consumers_and_a_drained_outbox(galaxy: GalaxyQueues, mq_app: Callable[..., PulsarApp],
                                                  unique_manager: str) -> None:
    app = mq_app()
    connected = gauges(app, "pulsar_mq_consumer_connected")
    queues = {dict(labels)["queue"]: value for labels, value in connected.items()}
    prefix = f"pulsar_{unique_manager}_"
    assert {f"{prefix}_setup", f"{prefix}_kill", f"{prefix}_status"} <= set(queues)
    assert set(queues.values()) == {1}
    galaxy.send("setup", setup_body("m1", "true"))
    assert galaxy.terminal("m1")["status"] == "complete"
    # published, and the outbox entry removed once the broker confirmed it
    wait_for(lambda: gauges(app, "pulsar_mq_outbox_depth") == {(("manager", unique_manager),): 0}, what="empty outbox")
    counts = {dict(labels)["outcome"]: value for labels, value in gauges(app, "pulsar_job_outcomes_total").items()}
    assert counts["complete"] == 1


def test_no_broker_shows_disconnected_consumers_and_a_waiting_update(make_app: Callable[..., PulsarApp],
                                                                     unique_manager: str) -> None:
    app = make_app(message_queue_url=f"amqp://guest:guest@127.0.0.1:{free_port()}//",
                   managers={unique_manager: {"type": "queued_python"}})
    service = app.service(unique_manager)
    service.record_failure("w1", "refused for the test")  # announced `failed`: into the outbox, which cannot publish
    assert gauges(app, "pulsar_mq_outbox_depth") == {(("manager", unique_manager),): 1}
    connected = gauges(app, "pulsar_mq_consumer_connected")
    assert len(connected) >= 3 and set(connected.values()) == {0}
