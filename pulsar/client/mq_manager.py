"""`MessageQueueClientManager`: Galaxy's side of the message-queue mode (spec mq-protocol 6.2).

Galaxy's `PulsarMQJobRunner` builds one manager per runner plugin (`build_client_manager(
amqp_url=...)`), calls `ensure_has_status_update_callback(cb)` and `ensure_has_ack_consumers()`
once at start, `get_client(...)` per job and `shutdown()` at exit.  The manager owns:

* the exchange (`pulsar.shared.amqp.PulsarExchange`, role "client"), imported only here and
  only when a manager is built, because kombu is an optional dependency;
* one consumer thread for `status_update` (plus `setup_ack` and `kill_ack`); the exchange's
  consume loop reconnects after a broker loss, drops malformed messages (B1) and answers ack
  requests, so these threads only end at `shutdown()`;
* the `JobTracker` (`status_cache`, duplicate and regression suppression, active jobs).

Handling of one status update, in order: drop it if the job already had a terminal update
(B25); cache it (under both ids for uuid jobs, B12); call Galaxy's callback (its exceptions
are logged, the message is acked anyway, as Galaxy expects); for a terminal update, record
the job as done.  The broker message is acked only after all of that, so a crash re-delivers
the update rather than losing it.

On start of the status consumer the manager publishes a status request on `status` for every
job it launched and has not seen terminal (B26; persisted under `persistence_directory`),
so updates lost while Galaxy was down are asked for again.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import quote

from pulsar.client.destination import url_to_destination_params
from pulsar.client.exceptions import PulsarClientError, UnsupportedClientMode
from pulsar.client.mq_client import UNSUPPORTED_DESTINATION_PARAMS, MessageJobClient
from pulsar.client.mq_tracking import DEFAULT_CACHE_RETENTION, TERMINAL, JobTracker
from pulsar.protocol import DEFAULT_MANAGER_NAME

if TYPE_CHECKING:
    from pulsar.shared.amqp.exchange import ConsumerThread, PulsarExchange

log = logging.getLogger(__name__)

StatusCallback = Callable[[dict[str, Any]], None]

#: Seconds `shutdown()` waits for each consumer thread (they poll every consumer timeout or 1 s).
THREAD_STOP_TIMEOUT = 10.0
#: Backoff cap between retries of the start-up status requests while the broker is away.
MAX_RETRY_DELAY = 30.0


class MessageQueueClientManager:
    """Builds `MessageJobClient`s and runs the consumers; see the module docstring.

    `amqp_url` and the `amqp_*` keyword arguments are parsed by
    `pulsar.shared.amqp.parse_amqp_options` (an unknown or malformed option raises
    `AmqpConfigError` naming it, so Galaxy stops at start-up).  `cache` and `transport` are
    accepted for signature compatibility and have no meaning here; other keyword arguments
    (e.g. `pulsar_app` of the embedded MQ runner, `transport_*`) are ignored.
    `status_cache_retention` is how long a terminal job's status stays cached when Galaxy
    never calls `clean()` (B19).
    """

    def __init__(self, amqp_url: str, manager: str | None = None, cache: Any = None, transport: Any = None,
                 persistence_directory: str | Path | None = None, *,
                 status_cache_retention: float = DEFAULT_CACHE_RETENTION, **kwds: Any):
        from pulsar.shared.amqp.exchange import PulsarExchange, RequeueMessage
        from pulsar.shared.amqp.settings import parse_amqp_options

        self.url = amqp_url
        self.manager_name: str = manager or DEFAULT_MANAGER_NAME
        options = {k: v for k, v in kwds.items() if k.startswith("amqp_") and v is not None}
        settings = parse_amqp_options(amqp_url, options, persistence_directory=persistence_directory,
                                      url_key="amqp_url")
        self.amqp_key_prefix: str | None = settings.key_prefix
        self.exchange: PulsarExchange = PulsarExchange(settings, self.manager_name, role="client")
        directory = None
        if persistence_directory is not None:
            directory = Path(persistence_directory) / f"mq-client-{quote(self.manager_name, safe='')}"
        else:
            log.info("manager %s: no persistence_directory, so jobs still running when Galaxy restarts are "
                     "not asked for their status again", self.manager_name)
        self.tracker = JobTracker(directory, retention=status_cache_retention)
        #: job id -> last status document received (Galaxy's `status_cache`).
        self.status_cache: dict[str, dict[str, Any]] = self.tracker.cache
        self.active = True
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._callback: StatusCallback | None = None
        self._status_consumer: ConsumerThread | None = None
        self._ack_consumers: list[ConsumerThread] = []
        #: The B26 thread sending the start-up status requests (ends when all are sent).
        self.status_request_thread: threading.Thread | None = None
        self._requeue = RequeueMessage

    # -- what Galaxy calls ----------------------------------------------------------------

    def get_client(self, destination_params: Mapping[str, Any] | str, job_id: str, **kwargs: Any) -> MessageJobClient:
        """A client for one job; `kwargs` (`files_endpoint`, `token_endpoint`, `env`) are merged
        over the destination params.  Raises `UnsupportedClientMode` for `shell_plugin` and the
        co-execution switches, `PulsarClientError` without `jobs_directory`."""
        if isinstance(destination_params, str):
            params: dict[str, Any] = url_to_destination_params(destination_params)
        else:
            params = dict(destination_params)
        params.update(kwargs)
        for key, reason in UNSUPPORTED_DESTINATION_PARAMS.items():
            if params.get(key):
                raise UnsupportedClientMode(reason)
        if self.amqp_key_prefix is not None:
            params["amqp_key_prefix"] = self.amqp_key_prefix  # the runner's value wins (spec 2.2)
        return MessageJobClient(params, str(job_id), self)

    def ensure_has_status_update_callback(self, callback: StatusCallback) -> None:
        """Start the `status_update` consumer (once) feeding `callback`, then re-request the
        status of every job still active (B26).  A later call only replaces the callback."""
        with self._lock:
            self._callback = callback
            if self._status_consumer is not None or not self.active:
                return
            self._status_consumer = self.exchange.start_consumer(
                "status_update", self._handle_status_update, name=f"pulsar-mq-{self.manager_name}-status_update")
            # A daemon: a broker that never comes back must not keep Galaxy from exiting.
            self.status_request_thread = threading.Thread(
                target=self._request_active_statuses, daemon=True, name=f"pulsar-mq-{self.manager_name}-status-requests")
            self.status_request_thread.start()

    def ensure_has_ack_consumers(self) -> None:
        """Start the `setup_ack` and `kill_ack` consumers (once; Galaxy always calls this,
        acks or not) and, when this client requests acks, the republisher."""
        with self._lock:
            if self._ack_consumers or not self.active:
                return
            for logical in ("setup_ack", "kill_ack"):
                self._ack_consumers.append(self.exchange.start_consumer(
                    logical, self.exchange.handle_ack_reply, name=f"pulsar-mq-{self.manager_name}-{logical}"))
            self.exchange.start_ack_republisher()  # a no-op unless this client requests acks

    def shutdown(self, ensure_cleanup: bool = False) -> None:
        """Stop consuming and publishing; returns once the threads ended (each bounded by
        `THREAD_STOP_TIMEOUT`).  Messages not yet handled stay in their queues.
        `ensure_cleanup` is accepted for compatibility; there is nothing more to clean."""
        with self._lock:
            if not self.active:
                return
            self.active = False
            self._stopping.set()
            consumers = self._consumers()
            recovery = self.status_request_thread
        for consumer in consumers:
            consumer.stop(THREAD_STOP_TIMEOUT)
            if consumer.alive:
                log.warning("manager %s: a consumer thread did not stop within %.0f s", self.manager_name,
                            THREAD_STOP_TIMEOUT)
        if recovery is not None:
            recovery.join(THREAD_STOP_TIMEOUT)
        self.exchange.close()

    @property
    def consumers_alive(self) -> bool:
        """True while every consumer thread started so far is running (a liveness check)."""
        consumers = self._consumers()
        return bool(consumers) and all(c.alive for c in consumers)

    def wait_connected(self, timeout: float) -> bool:
        """Block until every consumer started so far is registered with the broker (or
        `timeout` s passed); True if they all are.  For health checks and tests."""
        deadline = time.monotonic() + timeout
        return all(c.wait_connected(max(0.0, deadline - time.monotonic())) for c in self._consumers())

    def _consumers(self) -> list[ConsumerThread]:
        return [c for c in [self._status_consumer, *self._ack_consumers] if c is not None]

    # -- the backend of MessageJobClient --------------------------------------------------

    def publish(self, logical: str, payload: dict[str, Any]) -> None:
        """Publish on this manager's queue `logical` (raises the exchange's `PublishError`)."""
        if not self.active:
            raise PulsarClientError(f"message-queue client manager {self.manager_name} is shut down")
        self.exchange.publish(logical, payload)

    def job_launching(self, job_id: str, galaxy_job_id: str | None) -> None:
        self.tracker.launched(job_id, galaxy_job_id)

    def job_launch_failed(self, job_id: str) -> None:
        self.tracker.launch_failed(job_id)

    def cached_status(self, job_id: str) -> dict[str, Any] | None:
        return self.tracker.lookup(job_id)

    def forget_status(self, job_id: str) -> None:
        self.tracker.forget(job_id)

    # -- consumers ------------------------------------------------------------------------

    def _handle_status_update(self, body: dict[str, Any]) -> None:
        """One `status_update` message (see the module docstring for the order of steps)."""
        if not self.active:
            raise self._requeue("client manager is shutting down")
        job_id = body.get("job_id")
        if isinstance(job_id, bool) or not isinstance(job_id, (str, int)) or job_id == "":
            log.warning("manager %s: dropping a status update without a usable job_id (keys: %s)",
                        self.manager_name, ", ".join(sorted(str(k)[:40] for k in body)[:12]))
            return
        job_id = str(job_id)
        status = body.get("status")
        if not self.tracker.accept(job_id, body):
            log.info("manager %s: dropping %r update for job %s: its terminal update was already handled",
                     self.manager_name, status, job_id)
            return
        callback = self._callback
        if callback is not None:
            try:
                callback(body)
            except Exception:
                log.exception("manager %s: the status callback failed for job %s (status %r)",
                              self.manager_name, job_id, status)
        if isinstance(status, str) and status in TERMINAL:
            try:
                self.tracker.finished(job_id, status)
            except OSError as exc:
                log.warning("manager %s: could not record job %s as finished: %s", self.manager_name, job_id, exc)

    def _request_active_statuses(self) -> None:
        """B26: one status request per job still active, retried with backoff while the
        broker is unreachable, until all are sent or the manager shuts down."""
        try:
            pending = self.tracker.active_jobs()
        except OSError as exc:
            log.warning("manager %s: cannot read the active jobs: %s", self.manager_name, exc)
            return
        if not pending:
            return
        log.info("manager %s: asking the server for the status of %d job(s) launched before this start",
                 self.manager_name, len(pending))
        delay = 1.0
        failing = False
        while pending and not self._stopping.is_set():
            job_id = pending[0]
            try:
                self.exchange.publish("status", {"request": "status", "job_id": job_id, "force_noack": True})
            except Exception as exc:
                if not failing:
                    log.warning("manager %s: status requests cannot be published (%s); retrying",
                                self.manager_name, exc)
                    failing = True
                self._stopping.wait(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            if failing:
                log.info("manager %s: status requests are published again", self.manager_name)
                failing = False
            delay = 1.0
            pending.pop(0)
