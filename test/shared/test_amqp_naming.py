"""Queue names are wire facts (spec §2.2): pinned exactly."""

from pulsar.shared.amqp import ALL_QUEUES, key_prefix, queue_name


def test_default_manager_prefix() -> None:
    assert key_prefix(None, None) == "pulsar_"
    assert key_prefix("_default_", None) == "pulsar_"
    assert queue_name(key_prefix(None, None), "setup") == "pulsar__setup"


def test_named_manager_prefix() -> None:
    assert queue_name(key_prefix("cluster", None), "status_update") == "pulsar_cluster__status_update"


def test_explicit_prefix_is_verbatim_even_empty() -> None:
    assert queue_name(key_prefix("cluster", "myprefix"), "setup") == "myprefix_setup"
    assert queue_name(key_prefix(None, ""), "setup") == "_setup"


def test_all_queues() -> None:
    assert ALL_QUEUES == ("setup", "kill", "status", "status_update", "setup_ack", "kill_ack", "status_update_ack")
