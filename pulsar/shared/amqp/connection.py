"""Connections to the broker, and the pacing and logging of reconnects.

Shared by the publisher and the consumers of `PulsarExchange` (and usable by any loop that
retries while the broker is down, e.g. the server's outbox): kombu connections built from
`AmqpSettings` without letting the URL query override them, exponential backoff with
jitter, and a `LinkState` that logs exactly one line per up/down change.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from kombu.connection import Connection

from .settings import AmqpSettings, redact_url

log = logging.getLogger(__name__)

#: Longest pause between two reconnect attempts (seconds).
BACKOFF_CAP = 30.0


def open_connection(settings: AmqpSettings, *, name: str, heartbeat: int, confirm_publish: bool = False) -> Any:
    """A `kombu.Connection` (not yet connected; typed Any, kombu is untyped) for `settings`, named `name` in the broker's
    connection list (`client_properties.connection_name`), so an operator can tell ours apart.

    The URL is passed without its query: TLS and heartbeat come from `settings`, where the
    query has already been merged with the `amqp_*` keys.  With `confirm_publish` every
    publish on the connection waits for the broker's confirm.
    """
    ssl: Any = dict(settings.ssl) if isinstance(settings.ssl, Mapping) else bool(settings.ssl)
    transport_options: dict[str, Any] = {"client_properties": {"connection_name": name}}
    if confirm_publish:
        transport_options["confirm_publish"] = True
    return Connection(  # type: ignore[no-untyped-call]
        settings.connection_url,
        ssl=ssl,
        heartbeat=heartbeat,
        connect_timeout=settings.connect_timeout,
        transport_options=transport_options,
    )


def connect(connection: Any) -> None:
    """Connect now, one attempt (kombu's own `connect()` retries after 2 s: our callers pace
    their retries themselves).  Raises kombu's `OperationalError` or the protocol error."""
    connection.ensure_connection(max_retries=0)


def close_quietly(connection: Any, *, broken: bool) -> None:
    """Close `connection`; a `broken` one is dropped without the closing handshake (which
    could block on a dead peer).  Never raises."""
    if connection is None:
        return
    try:
        if broken:
            connection.collect()
        else:
            connection.release()
    except Exception as exc:  # noqa: BLE001  (closing is best effort)
        log.debug("Ignoring error while closing an AMQP connection: %s", exc)


def describe(exc: BaseException, settings: AmqpSettings) -> str:
    """`Type: message` of a connection error, one line, with the URL password masked."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    password = _password(settings.url)
    if password:
        text = text.replace(password, "***")
    return text.replace(settings.url, redact_url(settings.url))


def _password(url: str) -> str | None:
    userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    return userinfo.partition(":")[2] or None


class Backoff:
    """Pauses between reconnect attempts: `initial`, doubling up to `cap`, each scaled by a
    random factor in [0.5, 1) so that many clients cut off together do not return in step."""

    def __init__(self, initial: float = 1.0, cap: float = BACKOFF_CAP, rng: Callable[[], float] = random.random) -> None:
        self.initial = initial
        self.cap = cap
        self._rng = rng
        self.attempts = 0

    def next(self) -> float:
        delay = min(self.cap, self.initial * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return float(delay * (0.5 + self._rng() / 2))

    def reset(self) -> None:
        self.attempts = 0


def sleep_while(check: Callable[[], bool], seconds: float, slice_seconds: float) -> None:
    """Sleep `seconds`, waking every `slice_seconds` to give up early once `check()` is false."""
    deadline = time.monotonic() + seconds
    while check():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(remaining, slice_seconds))


class LinkState:
    """Logs one line per change of a connection's state: first up, lost, restored.

    Repeated failures while down are logged at debug level only, so a broker outage gives
    one warning and one recovery line per link, however long it lasts.
    """

    def __init__(self, what: str, settings: AmqpSettings, logger: logging.Logger = log) -> None:
        self.what = what
        self.settings = settings
        self.up: bool | None = None
        self._log = logger

    def connected(self) -> None:
        if self.up is None:
            self._log.info("%s: connected to %s", self.what, self.settings.redacted_url)
        elif not self.up:
            self._log.info("%s: connection to %s restored", self.what, self.settings.redacted_url)
        self.up = True

    def failed(self, exc: BaseException) -> None:
        reason = describe(exc, self.settings)
        if self.up is False:
            self._log.debug("%s: still no connection (%s)", self.what, reason)
            return
        verb = "lost connection to" if self.up else "cannot connect to"
        self._log.warning("%s: %s %s (%s); retrying with backoff", self.what, verb, self.settings.redacted_url, reason)
        self.up = False
