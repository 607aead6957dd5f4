"""The kombu wrapper both sides of Pulsar's message-queue mode use (spec: mq-protocol.md).

Import only when a broker URL is configured: kombu is the optional `pulsar-app[amqp]` extra.

    settings = parse_amqp_options(url, options, persistence_directory=...)
    exchange = PulsarExchange(settings, manager_name, role="server")
    exchange.publish("status_update", document)
    thread = exchange.start_consumer("setup", handle_setup)
"""

from __future__ import annotations

from .acks import AckStores
from .connection import Backoff, LinkState
from .consumer import MAX_BODY_BYTES, Callback, ConsumerThread, MalformedMessage, RejectMessage, RequeueMessage, decode_body
from .exchange import PublishError, PulsarExchange
from .naming import ALL_QUEUES, CLIENT_QUEUES, EXCHANGE_NAME, SERVER_QUEUES, key_prefix, queue_name
from .settings import AmqpConfigError, AmqpSettings, parse_amqp_options, parse_bool, redact_url

__all__ = [
    "ALL_QUEUES",
    "AckStores",
    "AmqpConfigError",
    "AmqpSettings",
    "Backoff",
    "CLIENT_QUEUES",
    "Callback",
    "ConsumerThread",
    "EXCHANGE_NAME",
    "LinkState",
    "MAX_BODY_BYTES",
    "MalformedMessage",
    "PublishError",
    "PulsarExchange",
    "RejectMessage",
    "RequeueMessage",
    "SERVER_QUEUES",
    "decode_body",
    "key_prefix",
    "parse_amqp_options",
    "parse_bool",
    "queue_name",
    "redact_url",
]
