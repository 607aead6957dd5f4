"""The consumer loop of `PulsarExchange.consume`: one connection, one channel, one queue.

Guarantees (spec §2.4, §4.4, B1):

* A message is acked only after the callback returned; a crash before that means the
  broker redelivers it.
* A malformed message (too large, not `application/json`, not UTF-8, not JSON, nested
  deeper than 100 levels, not a JSON object) gets one log line with the reason and is
  rejected without requeue; the loop goes on.  So does it after any callback exception.
* Connection loss of any kind leads to a reconnect with exponential backoff and jitter,
  one log line when the link goes down and one when it is back; the loop only ends when
  `check()` returns false.
* Heartbeats (if configured) are checked on every pass, and `check()` is polled at least
  every `consumer_timeout` (or every second when that is None).

Callbacks run on the consumer's thread, between heartbeat checks: one that blocks for longer
than two negotiated heartbeats (RabbitMQ: 2 x 60 s) gets the connection dropped by the
broker, and the message is redelivered.  Hand long work to another thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kombu.messaging import Consumer

from pulsar.util.jsondepth import MAX_NESTING, nesting_depth

from .connection import Backoff, LinkState, close_quietly, connect, open_connection, sleep_while

if TYPE_CHECKING:
    from .exchange import PulsarExchange

log = logging.getLogger(__name__)

#: Bodies larger than this are rejected unread (RabbitMQ's own default limit is 128 MiB).
MAX_BODY_BYTES = 64 * 1024 * 1024
JSON_CONTENT_TYPE = "application/json"

Callback = Callable[[dict[str, Any]], None]


class RejectMessage(Exception):
    """Raised by a callback: the message is unusable; it is logged and rejected without requeue."""


class RequeueMessage(Exception):
    """Raised by a callback: put the message back (e.g. the client is shutting down)."""


class MalformedMessage(ValueError):
    """A body that is not a JSON object; the message says why, in one line."""


def decode_body(body: bytes | str, content_type: str | None, content_encoding: str | None) -> dict[str, Any]:
    """The JSON object of a message body, or `MalformedMessage` with the reason."""
    size = len(body)
    if size > MAX_BODY_BYTES:
        raise MalformedMessage(f"body of {size} bytes exceeds the {MAX_BODY_BYTES} byte limit")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != JSON_CONTENT_TYPE:
        raise MalformedMessage(f"content type {content_type!r} is not {JSON_CONTENT_TYPE}")
    encoding = (content_encoding or "utf-8").strip().lower()
    if encoding not in ("utf-8", "utf8"):
        raise MalformedMessage(f"content encoding {content_encoding!r} is not utf-8")
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise MalformedMessage(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if nesting_depth(text) > MAX_NESTING:  # json.loads would raise RecursionError, not a ValueError
        raise MalformedMessage(f"JSON nests deeper than {MAX_NESTING} levels")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(value, dict):
        raise MalformedMessage(f"JSON {type(value).__name__} is not an object")
    return value


class ConsumeLoop:
    """Consume one logical queue of `exchange` with `callback` until `check()` is false."""

    def __init__(self, exchange: PulsarExchange, logical: str, callback: Callback) -> None:
        self.exchange = exchange
        self.logical = logical
        self.queue = exchange.queue(logical)
        self.callback = callback
        #: Set while a consumer is registered on a live connection (liveness for callers and tests).
        self.connected = threading.Event()
        settings = exchange.settings
        self.poll = settings.consumer_timeout if settings.consumer_timeout is not None else 1.0
        self.link = LinkState(f"consumer of {self.queue}", settings)
        self._pause = False

    def run(self, check: Callable[[], bool]) -> None:
        backoff = Backoff()
        while check():
            connection = None
            try:
                connection = self._connect()
                self.link.connected()
                backoff.reset()
                self._drain(connection, check)
                close_quietly(connection, broken=False)
                return
            except Exception as exc:  # noqa: BLE001  (any failure outside a callback: reconnect)
                self.connected.clear()
                self.link.failed(exc)
                close_quietly(connection, broken=True)
                sleep_while(check, backoff.next(), self.poll)
        self.connected.clear()

    def _connect(self) -> Any:
        settings = self.exchange.settings
        name = f"{self.exchange.connection_name_prefix} consumer {self.queue}"
        connection = open_connection(settings, name=name, heartbeat=settings.heartbeat)
        connect(connection)
        channel = connection.channel()
        self.exchange.declare_on(channel)
        queue = self.exchange.kombu_queue(self.logical)
        consumer: Any = Consumer(  # type: ignore[no-untyped-call]
            channel, queues=[queue], on_message=self._on_message, no_ack=False, auto_declare=False
        )
        consumer.consume()
        self.connected.set()
        return connection

    def _drain(self, connection: Any, check: Callable[[], bool]) -> None:
        negotiated = connection.get_heartbeat_interval() or 0
        timeout = min(self.poll, negotiated / 4) if negotiated else self.poll
        while check():
            try:
                connection.drain_events(timeout=timeout)
            except TimeoutError:
                pass
            if negotiated:
                connection.heartbeat_check()
            if self._pause:  # a callback asked for a requeue: do not spin on the redelivery
                self._pause = False
                sleep_while(check, self.poll, self.poll)
        self.connected.clear()

    def _on_message(self, message: Any) -> None:
        try:
            body = decode_body(message.body, message.content_type, message.content_encoding)
        except MalformedMessage as exc:
            log.warning("%s: rejecting malformed message: %s", self.queue, exc)
            message.reject(requeue=False)
            return
        ack_uuid = self.exchange.reply_to_ack_request(body, self.queue)
        if ack_uuid is not None and self.exchange.already_consumed(ack_uuid):
            log.info("%s: message %s was already processed; acknowledging the duplicate", self.queue, ack_uuid)
            message.ack()
            return
        try:
            self.callback(body)
        except RejectMessage as exc:
            log.warning("%s: rejecting message: %s", self.queue, exc)
            message.reject(requeue=False)
            return
        except RequeueMessage as exc:
            log.debug("%s: requeueing message: %s", self.queue, exc)
            message.requeue()
            self._pause = True
            return
        except Exception:
            log.exception("%s: message handler failed; rejecting the message", self.queue)
            message.reject(requeue=False)
            return
        if ack_uuid is not None:
            self.exchange.record_consumed(ack_uuid)
        message.ack()


class ConsumerThread(threading.Thread):
    """A non-daemon thread running `PulsarExchange.consume` until `stop()`."""

    def __init__(self, loop: ConsumeLoop, name: str) -> None:
        super().__init__(name=name, daemon=False)
        self._loop = loop
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            self._loop.run(lambda: not self._stopping.is_set())
        except BaseException:  # the loop catches everything it can recover from; this is a bug
            log.exception("%s: consumer thread died", self._loop.queue)
            raise

    def stop(self, timeout: float | None = None) -> None:
        """Ask the loop to end (within about one poll interval) and join for up to `timeout` s."""
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    @property
    def alive(self) -> bool:
        return self.is_alive()

    @property
    def queue(self) -> str:
        """The broker's name of the queue consumed (a metrics label, a log word)."""
        return self._loop.queue

    @property
    def connected(self) -> bool:
        """True while the consumer is registered on a live connection."""
        return self._loop.connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until the consumer is registered (or `timeout` s); True if it is."""
        return self._loop.connected.wait(timeout)
