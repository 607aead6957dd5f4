"""App options -> one exchange and one `MessageQueueBinding` per manager (used by `pulsar.core`).

The keys are app-level and shared by every manager (mq-protocol 5): `message_queue_url`,
`message_queue_consume`, `message_queue_publish`, `message_queue_cleanup_job`,
`status_outbox_drain_interval` and the `amqp_*` keys (parsed by `pulsar.shared.amqp`).
Every problem is a `ConfigurationError` naming the key; the URL's password is never shown.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from pulsar.errors import ConfigurationError
from pulsar.jobs.service import JobService
from pulsar.messaging.bind import CLEANUP_CHOICES, BindingOptions, MessageQueueBinding
from pulsar.messaging.outbox import DEFAULT_DRAIN_INTERVAL
from pulsar.shared.amqp import AmqpConfigError, PulsarExchange, parse_amqp_options, parse_bool

log = logging.getLogger(__name__)


def binding_options(options: Mapping[str, Any]) -> BindingOptions:
    """The binding's keys, validated (booleans may be strings: environment overrides, B15)."""
    try:
        consume = parse_bool(options.get("message_queue_consume", True), "message_queue_consume")
        publish = parse_bool(options.get("message_queue_publish", True), "message_queue_publish")
    except AmqpConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    cleanup = str(options.get("message_queue_cleanup_job") or "always").strip().lower()
    if cleanup not in CLEANUP_CHOICES:
        raise ConfigurationError(
            f"message_queue_cleanup_job must be one of {', '.join(CLEANUP_CHOICES)}, not {cleanup!r}"
        )
    raw_interval = options.get("status_outbox_drain_interval", DEFAULT_DRAIN_INTERVAL)
    try:
        interval = float(raw_interval)
    except (TypeError, ValueError):
        interval = -1.0
    if not interval > 0:
        raise ConfigurationError(f"status_outbox_drain_interval must be a positive number of seconds, not {raw_interval!r}")
    return BindingOptions(consume=consume, publish=publish, cleanup_job=cleanup, drain_interval=interval)


def build_bindings(
    services: Mapping[str, JobService], options: Mapping[str, Any], persistence_directory: Path | None
) -> list[MessageQueueBinding]:
    """One binding per service, not started.  Raises `ConfigurationError` for an unusable
    configuration: bad keys, no persistence directory (the outbox and the duplicate guard
    live there), or `amqp_key_prefix` with several managers (they would share queues, B13)."""
    if persistence_directory is None:
        raise ConfigurationError(
            "message_queue_url needs a persistence_directory (the status outbox and the record of "
            "received jobs live there); do not set it to __none__"
        )
    settings_options = {key: value for key, value in options.items() if key.startswith("amqp_")}
    try:
        settings = parse_amqp_options(
            str(options["message_queue_url"]), settings_options, persistence_directory=persistence_directory
        )
    except AmqpConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    if settings.key_prefix is not None and len(services) > 1:
        raise ConfigurationError(
            f"amqp_key_prefix applies to every manager, so the {len(services)} managers would share one set of "
            "queues; remove amqp_key_prefix (each manager then gets pulsar_<manager>_*) or run one manager"
        )
    bindings_options = binding_options(options)
    log.info(
        "message queue %s: consume=%s publish=%s, managers %s",
        settings.redacted_url,
        bindings_options.consume,
        bindings_options.publish,
        ", ".join(services),
    )
    return [
        MessageQueueBinding(service, PulsarExchange(settings, name, role="server"), persistence_directory, bindings_options)
        for name, service in services.items()
    ]
