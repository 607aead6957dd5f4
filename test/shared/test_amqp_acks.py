"""The acknowledgement extension (spec §3.6): stores, reply, duplicate suppression,
republish with force_noack (B4), pruning (B5)."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pulsar.shared.amqp import AckStores
from pulsar.shared.amqp.acks import PRUNE_AGE, is_valid_uuid, store_directory
from test.shared.conftest import Mq
from test.support.polling import wait_for

# --- stores (no broker) ----------------------------------------------------------------------


def test_store_directories(tmp_path: Path) -> None:
    assert store_directory(tmp_path, None, "server") == tmp_path / "amqp_ack-_default_"
    assert store_directory(tmp_path, "cluster", "server") == tmp_path / "amqp_ack-cluster"
    assert store_directory(tmp_path, "cluster", "client") == tmp_path / "mq-client-cluster" / "ack"
    assert store_directory(tmp_path, "a/b", "server") == tmp_path / "amqp_ack-a%2Fb"


def test_only_canonical_uuids_name_files(tmp_path: Path) -> None:
    stores = AckStores(tmp_path)
    assert is_valid_uuid(str(uuid.uuid1()))
    for bad in ("../../etc/passwd", "", "x", None, 5, str(uuid.uuid4()).upper() + "0"):
        assert not is_valid_uuid(bad)
        assert bad not in stores.consume
    with pytest.raises(ValueError):
        stores.consume.record("../escape")


def test_publish_store_round_trip(tmp_path: Path) -> None:
    stores = AckStores(tmp_path)
    key = str(uuid.uuid1())
    stores.publish.put(key, {"job_id": "1", "acknowledge_uuid": key})
    loaded = stores.publish.load(key)
    assert loaded is not None and loaded[1] == {"job_id": "1", "acknowledge_uuid": key}
    assert stores.publish.due(older_than=3600) == []
    assert stores.publish.due(older_than=0, now=time.time() + 1) == [key]
    assert stores.publish.remove(key) is True
    assert stores.publish.remove(key) is False
    assert len(stores.publish) == 0


def test_unreadable_publish_entry_is_dropped(tmp_path: Path) -> None:
    stores = AckStores(tmp_path)
    key = str(uuid.uuid1())
    (stores.publish.directory / key).write_text("{truncated")
    assert stores.publish.load(key) is None
    assert len(stores.publish) == 0


def test_prune_forgets_entries_older_than_seven_days(tmp_path: Path) -> None:
    stores = AckStores(tmp_path)
    now = time.time()
    old_publish, new_publish, resent_publish = (str(uuid.uuid1()) for _ in range(3))
    for key in (old_publish, new_publish, resent_publish):
        stores.publish.put(key, {"job_id": key})
    for key in (old_publish, resent_publish):  # first sent 8 days ago
        (stores.publish.directory / key).write_text(json.dumps({"created": now - 8 * 86400, "body": {}}))
    old_time = now - 8 * 86400
    os.utime(stores.publish.directory / old_publish, (old_time, old_time))  # resent_publish: mtime fresh
    old_seen, new_seen = str(uuid.uuid1()), str(uuid.uuid1())
    stores.consume.record(old_seen)
    stores.consume.record(new_seen)
    os.utime(stores.consume.directory / old_seen, (old_time, old_time))

    assert stores.prune(PRUNE_AGE, now=now) == 2
    assert old_publish not in stores.publish and old_seen not in stores.consume
    assert new_publish in stores.publish and resent_publish in stores.publish and new_seen in stores.consume
    # An entry re-sent recently but first sent long ago goes once its mtime ages as well.
    os.utime(stores.publish.directory / resent_publish, (old_time, old_time))
    assert stores.prune(PRUNE_AGE, now=now) == 1


# --- on the broker ------------------------------------------------------------------------------


@pytest.mark.rabbitmq
def test_ack_reply_duplicate_suppression_and_republish(mq: Mq, tmp_path: Path) -> None:
    server = mq.exchange("server", persistence_directory=tmp_path / "server", amqp_acknowledge="true")
    client = mq.exchange("client", persistence_directory=tmp_path / "client", amqp_acknowledge="true",
                         amqp_ack_republish_time="0.3")
    client.ack_republish_interval = 0.1
    assert client.stores is not None and server.stores is not None
    received: list[dict[str, Any]] = []
    mq.consume(server, "setup", received.append)

    client.start_ack_republisher()
    client.publish("setup", {"job_id": "42"})
    wait_for(lambda: received)
    body = received[0]
    assert body["job_id"] == "42"
    assert body["acknowledge_queue"] == "setup_ack" and body["acknowledge_submit_queue"] == "setup"
    ack_uuid = body["acknowledge_uuid"]
    assert ack_uuid in client.stores.publish
    wait_for(lambda: ack_uuid in server.stores.consume)  # recorded once the callback returned

    # The ack is withheld (nobody consumes setup_ack yet): the client republishes, the server
    # answers again and skips the duplicate.
    wait_for(lambda: (mq.depth(client, "setup_ack") or 0) >= 2)
    assert len(received) == 1

    mq.consume(client, "setup_ack", client.handle_ack_reply)
    wait_for(lambda: len(client.stores.publish) == 0)
    assert len(received) == 1


@pytest.mark.rabbitmq
def test_republished_copy_carries_force_noack_and_the_original_keys(mq: Mq, tmp_path: Path) -> None:
    """A receiver without a persistence directory (and acks off) still replies, and sees the
    republished copy: force_noack true, same acknowledge_uuid."""
    receiver = mq.exchange("server")
    sender = mq.exchange("client", persistence_directory=tmp_path, amqp_acknowledge="true",
                         amqp_ack_republish_time="0.2")
    received: list[dict[str, Any]] = []
    mq.consume(receiver, "kill", received.append)
    sender.publish("kill", {"job_id": "7"})
    wait_for(lambda: received)
    assert sender.republish_unacknowledged() == 0  # not overdue yet
    wait_for(lambda: sender.republish_unacknowledged() == 1, timeout=5, interval=0.05)
    wait_for(lambda: len(received) == 2)
    first, second = received
    assert second == {**first, "force_noack": True}
    assert "force_noack" not in first
    wait_for(lambda: mq.depth(sender, "kill_ack") == 2)


@pytest.mark.rabbitmq
def test_no_ack_keys_when_acks_are_off_or_forced_off(mq: Mq, tmp_path: Path) -> None:
    plain = mq.exchange("client")
    acking = mq.exchange("client", persistence_directory=tmp_path, amqp_acknowledge="true")
    received: list[dict[str, Any]] = []
    mq.consume(mq.exchange("server"), "status", received.append)
    plain.publish("status", {"job_id": "1"})
    acking.publish("status", {"job_id": "2", "force_noack": True})
    wait_for(lambda: len(received) == 2)
    assert received == [{"job_id": "1"}, {"job_id": "2", "force_noack": True}]
    assert acking.stores is not None and len(acking.stores.publish) == 0


def test_failed_publish_leaves_no_ack_entry(tmp_path: Path) -> None:
    from pulsar.shared.amqp import PublishError, PulsarExchange, parse_amqp_options

    settings = parse_amqp_options("amqp://guest:guest@127.0.0.1:1//", {"amqp_acknowledge": True},
                                  persistence_directory=tmp_path)
    exchange = PulsarExchange(settings, "down", role="server")
    with pytest.raises(PublishError):
        exchange.publish("status_update", {"job_id": "1"})
    assert exchange.stores is not None and len(exchange.stores.publish) == 0
