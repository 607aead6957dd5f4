"""Exchange, queue and routing-key names of Pulsar's message-queue mode (spec §2).

These are wire facts shared with the reference Pulsar and Galaxy: one direct exchange
`pulsar`, and per manager seven queues named `<prefix>_<logical name>`, each bound with a
routing key equal to its own name.
"""

from __future__ import annotations

EXCHANGE_NAME = "pulsar"
SERVER_QUEUES = ("setup", "kill", "status")
CLIENT_QUEUES = ("status_update", "setup_ack", "kill_ack")
ALL_QUEUES = SERVER_QUEUES + CLIENT_QUEUES + ("status_update_ack",)

DEFAULT_MANAGER = "_default_"


def key_prefix(manager_name: str | None, amqp_key_prefix: str | None) -> str:
    """The queue-name prefix of a manager.

    An explicit `amqp_key_prefix` wins verbatim (it may be ""); otherwise the default
    manager (None or "_default_") gets "pulsar_" and any other manager "pulsar_<name>_".
    """
    if amqp_key_prefix is not None:
        return amqp_key_prefix
    if manager_name is None or manager_name == DEFAULT_MANAGER:
        return "pulsar_"
    return f"pulsar_{manager_name}_"


def queue_name(prefix: str, logical: str) -> str:
    """`<prefix>_<logical>`: the queue name, which is also its routing key."""
    return f"{prefix}_{logical}"
