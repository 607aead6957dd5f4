"""`PulsarExchange`: publish to and consume from one manager's queues on the `pulsar` exchange.

Used by both sides: the server (role "server") consumes setup/kill/status and publishes
status updates; the client (role "client") does the reverse.  Wire format as in spec §3.1:
UTF-8 JSON objects, `application/json`, persistent when durable, priority 0, no headers.

What it adds to the reference (spec §7):

* every (re)connect declares the exchange and all seven queues of the manager, so nothing
  published before the peer's first start is dropped (B3);
* publishes wait for the broker's confirm and are retried once on a fresh connection
  (B18), plus kombu's retry policy when `amqp_publish_retry` is set;
* consumers survive malformed messages and connection loss (B1, see `consumer.py`);
* the ack extension (spec §3.6) with a working republisher (B4) and pruned stores (B5).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid as uuid_module
from collections.abc import Callable, Iterator
from typing import Any

from kombu.entity import Exchange, Queue
from kombu.messaging import Producer
from kombu.utils.functional import retry_over_time

from .acks import PRUNE_AGE, AckStores, is_valid_uuid, store_directory
from .connection import LinkState, close_quietly, connect, describe, open_connection
from .consumer import MAX_BODY_BYTES, Callback, ConsumeLoop, ConsumerThread, RejectMessage, RequeueMessage
from .naming import ALL_QUEUES, DEFAULT_MANAGER, EXCHANGE_NAME, key_prefix, queue_name
from .settings import AmqpSettings

__all__ = ["Callback", "ConsumerThread", "PublishError", "PulsarExchange", "RejectMessage", "RequeueMessage", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

ROLES = ("server", "client")
#: Seconds between two sweeps of the ack republisher (spec §3.6).
ACK_REPUBLISH_INTERVAL = 15.0


class PublishError(Exception):
    """The broker did not take the message (no connection, or no confirm) after the retries.
    Nothing was delivered; the caller may retry later."""


class PulsarExchange:
    """The queues of one manager (`manager_name`, None = `_default_`) on one broker.

    Thread-safe: any thread may publish (publishes share one connection, one at a time);
    each consumer runs its own connection.
    """

    def __init__(
        self,
        settings: AmqpSettings,
        manager_name: str | None,
        *,
        role: str,
        ack_republish_interval: float = ACK_REPUBLISH_INTERVAL,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        self.settings = settings
        self.manager_name = manager_name or DEFAULT_MANAGER
        self.role = role
        self.prefix = key_prefix(manager_name, settings.key_prefix)
        #: Seconds between republisher sweeps; tests shorten it before `start_ack_republisher`.
        self.ack_republish_interval = ack_republish_interval
        self.connection_name_prefix = f"pulsar-{role} {self.manager_name}"
        self.stores: AckStores | None = None
        if settings.persistence_directory is not None:
            self.stores = AckStores(store_directory(settings.persistence_directory, manager_name, role))
        self._exchange: Any = Exchange(  # type: ignore[no-untyped-call]
            EXCHANGE_NAME, type="direct", durable=settings.durable, auto_delete=False
        )
        self._lock = threading.Lock()
        self._connection: Any = None  # kombu objects are untyped
        self._producer: Any = None
        self._publish_link = LinkState(f"publisher for {self.prefix}*", settings, log)
        self._closed = threading.Event()
        self._republisher: threading.Thread | None = None
        self._warned_no_store = False

    # --- names and declarations ---------------------------------------------------------

    def queue(self, logical: str) -> str:
        """The queue name (and routing key) of a logical queue: `<prefix>_<logical>`."""
        return queue_name(self.prefix, logical)

    def kombu_queue(self, logical: str) -> Any:
        name = self.queue(logical)
        durable = self.settings.durable
        return Queue(  # type: ignore[no-untyped-call]
            name, exchange=self._exchange, routing_key=name, durable=durable, auto_delete=False
        )

    def declare_on(self, channel: Any) -> None:
        """Declare the exchange and all seven queues (bound) on an open channel."""
        self._exchange.declare(channel=channel)
        for logical in ALL_QUEUES:
            queue = self.kombu_queue(logical).bind(channel)
            queue.queue_declare()
            queue.queue_bind()

    def declare_all(self) -> None:
        """Declare the exchange and all queues of this manager now (publish and consume also do
        it on every new connection).  Raises `PublishError` if the broker cannot be reached."""
        with self._lock:
            self._with_publisher(lambda producer: self.declare_on(producer.channel))

    # --- publishing ------------------------------------------------------------------------

    def publish(self, logical: str, payload: dict[str, Any]) -> None:
        """Send `payload` to queue `logical`; returns once the broker confirmed it.

        With acks on (and no `force_noack` in the payload, and not an `_ack` queue) the ack
        keys are added and the message is stored for the republisher before it is sent.
        Raises `PublishError` when the broker did not confirm after the retries (then no ack
        entry is left behind); `ValueError` for an unknown queue or a body larger than
        `MAX_BODY_BYTES`, `TypeError` for one that is not JSON serialisable (retrying cannot
        help those).
        """
        self._check_queue(logical)
        body = dict(payload)
        ack_uuid = None
        if self.settings.acks_enabled and self.stores is not None and not body.get("force_noack") \
                and not logical.endswith("_ack"):
            ack_uuid = str(uuid_module.uuid1())
            body.update(acknowledge_uuid=ack_uuid, acknowledge_queue=f"{logical}_ack", acknowledge_submit_queue=logical)
        data = self._encode(body)
        if ack_uuid is not None and self.stores is not None:
            self.stores.publish.put(ack_uuid, body)  # before sending: the reply may beat us back
        try:
            self._send(logical, data)
        except BaseException:
            if ack_uuid is not None and self.stores is not None:
                self.stores.publish.remove(ack_uuid)
            raise

    def _check_queue(self, logical: str) -> None:
        if logical not in ALL_QUEUES:
            raise ValueError(f"unknown queue {logical!r} (expected one of {', '.join(ALL_QUEUES)})")

    @staticmethod
    def _encode(body: dict[str, Any]) -> bytes:
        data = json.dumps(body).encode("utf-8")  # default separators, non-ASCII escaped (spec §3.1)
        if len(data) > MAX_BODY_BYTES:
            raise ValueError(f"message of {len(data)} bytes exceeds the {MAX_BODY_BYTES} byte limit")
        return data

    def _send(self, logical: str, data: bytes) -> None:
        routing_key = self.queue(logical)
        options = dict(self.settings.publish_options)

        def send(producer: Any) -> None:
            producer.publish(
                data,
                routing_key=routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                **options,
            )

        with self._lock:
            self._with_publisher(send)

    def _with_publisher(self, action: Callable[[Any], None]) -> None:
        """Run `action` on the publisher connection, connecting (and declaring) if needed.

        A failure is retried at once on a fresh connection (the old one may just have gone
        stale, B18).  With `amqp_publish_retry` that pair of attempts is repeated after the
        pauses of kombu's retry policy (`amqp_publish_retry_*`): this covers a broker that is
        down when the publish starts, which kombu's own `publish(retry=True)` does not (it
        only retries once connected).  Raises `PublishError` in the end.  Lock held.
        """
        if self._closed.is_set():
            raise PublishError(f"exchange for {self.prefix}* is closed")

        def attempt_twice() -> None:
            try:
                action(self._publisher())
            except Exception:  # noqa: BLE001  (connection, channel, confirm or timeout errors)
                self._drop_publisher(broken=True)
                action(self._publisher())

        try:
            if self.settings.publish_retry:
                policy = self.settings.publish_retry_policy
                retry_over_time(  # type: ignore[no-untyped-call]
                    attempt_twice, Exception, max_retries=int(policy["max_retries"]),
                    interval_start=policy["interval_start"], interval_step=policy["interval_step"],
                    interval_max=policy["interval_max"], errback=self._retrying,
                )
            else:
                attempt_twice()
        except Exception as exc:  # noqa: BLE001
            self._drop_publisher(broken=True)
            self._publish_link.failed(exc)
            raise PublishError(describe(exc, self.settings)) from exc
        self._publish_link.connected()

    def _retrying(self, exc: BaseException, intervals: Iterator[float], retries: int) -> float:
        pause = next(intervals)
        log.debug("Publish attempt %d failed (%s); retrying in %.1f s", retries + 1, describe(exc, self.settings), pause)
        return pause

    def _publisher(self) -> Any:
        if self._producer is None:
            connection = open_connection(
                self.settings, name=f"{self.connection_name_prefix} publisher", heartbeat=0, confirm_publish=True
            )
            try:
                connect(connection)
                channel = connection.channel()
                self.declare_on(channel)
            except BaseException:
                close_quietly(connection, broken=True)
                raise
            self._connection = connection
            self._producer = Producer(channel, exchange=self._exchange, auto_declare=False)  # type: ignore[no-untyped-call]
        return self._producer

    def _drop_publisher(self, *, broken: bool) -> None:
        close_quietly(self._connection, broken=broken)
        self._connection = None
        self._producer = None

    # --- consuming ---------------------------------------------------------------------------

    def consume(self, logical: str, callback: Callback, check: Callable[[], bool]) -> None:
        """Consume queue `logical` until `check()` returns false (see `consumer.py` for the
        guarantees: ack after the callback, malformed messages rejected, reconnects)."""
        self._check_queue(logical)
        ConsumeLoop(self, logical, callback).run(check)

    def start_consumer(self, logical: str, callback: Callback, name: str | None = None) -> ConsumerThread:
        """Run `consume` in a new non-daemon thread until its `.stop()`."""
        self._check_queue(logical)
        thread = ConsumerThread(ConsumeLoop(self, logical, callback), name or f"amqp-consumer-{self.queue(logical)}")
        thread.start()
        return thread

    # --- acknowledgement extension ----------------------------------------------------------------

    def reply_to_ack_request(self, body: dict[str, Any], queue: str) -> str | None:
        """The reply step every consumer runs before its callback (spec §3.6): answer an ack
        request on `<prefix>_<acknowledge_queue>`.  Returns the request's uuid, or None when
        the body asks for no ack (or asks with a malformed uuid, which is logged)."""
        ack_uuid = body.get("acknowledge_uuid")
        if ack_uuid is None:
            return None
        if not is_valid_uuid(ack_uuid):
            log.warning("%s: ignoring malformed acknowledge_uuid %r", queue, ack_uuid)
            return None
        reply_queue = body.get("acknowledge_queue")
        if reply_queue not in ALL_QUEUES or not str(reply_queue).endswith("_ack"):
            log.warning("%s: message %s names no usable acknowledge_queue (%r); not replying", queue, ack_uuid, reply_queue)
        else:
            try:
                self.publish(str(reply_queue), {"acknowledge_uuid_response": ack_uuid})
            except PublishError as exc:  # the peer will republish; the duplicate is then suppressed
                log.warning("%s: could not send the ack for %s: %s", queue, ack_uuid, exc)
        return str(ack_uuid)

    def already_consumed(self, ack_uuid: str) -> bool:
        """True if the message with this ack uuid was processed before (duplicate)."""
        if self.stores is None:
            if not self._warned_no_store:
                self._warned_no_store = True
                log.warning("No persistence_directory: duplicates of acknowledged messages cannot be detected")
            return False
        return ack_uuid in self.stores.consume

    def record_consumed(self, ack_uuid: str) -> None:
        """Remember that the message with this ack uuid was processed."""
        if self.stores is not None:
            self.stores.consume.record(ack_uuid)
            self.stores.maybe_prune()

    def handle_ack_reply(self, body: dict[str, Any]) -> None:
        """Callback for the `*_ack` queues: the peer got our message, stop republishing it.
        Raises `RejectMessage` for a body without a valid `acknowledge_uuid_response`."""
        ack_uuid = body.get("acknowledge_uuid_response")
        if not is_valid_uuid(ack_uuid):
            raise RejectMessage(f"ack reply without a valid acknowledge_uuid_response: {ack_uuid!r}")
        if self.stores is not None and not self.stores.publish.remove(str(ack_uuid)):
            log.debug("Ack for %s, which is not (or no longer) waiting for one", ack_uuid)

    def start_ack_republisher(self) -> None:
        """Start the republisher thread (once; a no-op unless acks are on): every
        `ack_republish_interval` s it runs `republish_unacknowledged`."""
        if not self.settings.acks_enabled or self._republisher is not None:
            return
        self._republisher = threading.Thread(
            target=self._republish_loop, name=f"amqp-ack-republisher-{self.prefix}", daemon=True
        )
        self._republisher.start()

    def _republish_loop(self) -> None:
        while not self._closed.wait(self.ack_republish_interval):
            try:
                self.republish_unacknowledged()
            except Exception:  # never let the thread die (B4)
                log.exception("Ack republisher sweep failed; trying again in %.0f s", self.ack_republish_interval)

    def republish_unacknowledged(self) -> int:
        """Resend, with `force_noack: true` and the original ack keys, every stored message
        whose ack is overdue (`amqp_ack_republish_time`), and prune entries older than
        7 days.  Stops at the first publish failure (the broker is down; next sweep).
        Returns how many messages were republished."""
        stores = self.stores
        if stores is None:
            return 0
        stores.maybe_prune()
        count = 0
        for ack_uuid in stores.publish.due(self.settings.ack_republish_time):
            loaded = stores.publish.load(ack_uuid)
            if loaded is None:
                continue
            created, body = loaded
            logical = body.get("acknowledge_submit_queue")
            if time.time() - created > PRUNE_AGE or logical not in ALL_QUEUES:
                stores.publish.remove(ack_uuid)
                continue
            try:
                self._send(str(logical), self._encode({**body, "force_noack": True}))
            except PublishError as exc:
                log.debug("Republish of %s deferred: %s", ack_uuid, exc)
                break
            stores.publish.touch(ack_uuid)
            count += 1
            log.info("Republished unacknowledged message %s to %s", ack_uuid, self.queue(str(logical)))
        return count

    # --- shutdown -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the republisher and close the publisher connection.  Consumers are stopped
        by their owners (`ConsumerThread.stop`).  Publishing afterwards raises `PublishError`."""
        self._closed.set()
        if self._republisher is not None and self._republisher is not threading.current_thread():
            self._republisher.join(timeout=10)
        with self._lock:
            self._drop_publisher(broken=False)
