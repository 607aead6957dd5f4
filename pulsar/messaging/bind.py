"""One job service bound to its manager's queues: the server side of mq-protocol.md.

`MessageQueueBinding` consumes `setup`, `kill` and `status` (and `status_update_ack` when
acks are on), and publishes every status update through the durable `Outbox`:

* **setup** (3.2): a body with `request: "status"` and no `command_line` is a 0.15.15
  status request (B8).  A redelivered or republished setup is recognised (the job has a
  record, or the ledger holds the same request) and acked without a second run.  The
  message is acked only after `JobService.submit_request` returned, i.e. once the job is
  durably recorded.  A request the service refuses ends as one `failed` update with the
  reason in `stderr` (B21); a job the tool allow-list or `user_auth` refuses likewise.
* **kill** (3.4): `JobService.cancel`; nothing is published (B6).
* **status** (3.3): the current document, through the outbox (unknown job: `lost`, B24).
* **status updates** (3.5): the job service announces `running` and every terminal state
  before recording it; the binding appends the document to the outbox (`cancelled` is not
  published unprompted, B6).  After the broker confirmed a terminal update of a job that
  came over the queue, the job directory is removed per `message_queue_cleanup_job` (B7).
* **restarts**: at start every message-queue job that is terminal but was never confirmed,
  and is not waiting in the outbox, is queued again, so nothing is lost across a kill -9.

Malformed bodies are dropped by the consumer (`pulsar.shared.amqp`); a body without a
usable `job_id` is logged in one line and acked (B2).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from pulsar.errors import InvalidArgument, PulsarError, Refused
from pulsar.jobs import status as status_doc
from pulsar.jobs.ids import validate_job_id
from pulsar.jobs.service import JobService
from pulsar.jobs.state import JobState
from pulsar.jobs.submit import parse_submit_message
from pulsar.messaging.ledger import RETENTION, JobLedger, setup_digest
from pulsar.messaging.outbox import DEFAULT_DRAIN_INTERVAL, Outbox
from pulsar.shared.amqp import ConsumerThread, PulsarExchange
from pulsar.util.logsafe import printable

log = logging.getLogger(__name__)

CLEANUP_CHOICES = ("always", "onsuccess", "never")
#: How long a cancelled job is kept so a status request can still answer `cancelled`.
CANCELLED_GRACE = 3600.0
#: Seconds between two sweeps that prune the ledger and settle cancelled jobs.
MAINTENANCE_INTERVAL = 600.0
#: Characters of the tool's stdout/stderr in a status update (head + tail, mq-protocol 3.5).
STREAM_CAP = 65536
#: How long shutdown waits for each consumer to finish the message in hand.
CONSUMER_STOP_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True)
class BindingOptions:
    """`message_queue_consume`, `message_queue_publish`, `message_queue_cleanup_job`,
    `status_outbox_drain_interval` (the longest pause between publish attempts)."""

    consume: bool = True
    publish: bool = True
    cleanup_job: str = "always"
    drain_interval: float = DEFAULT_DRAIN_INTERVAL
    cancelled_grace: float = CANCELLED_GRACE
    maintenance_interval: float = MAINTENANCE_INTERVAL


class MessageQueueBinding:
    """Connects `service` to `exchange`, keeping its state below `persistence_directory`
    (`<manager>-mq-jobs/`: the ledger, `<manager>-mq-outbox/`: the outbox).

    Construct before `service.start()` (so recovery's transitions are heard), `start()`
    after it, `shutdown()` before the service's.
    """

    def __init__(
        self, service: JobService, exchange: PulsarExchange, persistence_directory: Path, options: BindingOptions
    ):
        if options.cleanup_job not in CLEANUP_CHOICES:
            raise ValueError(f"cleanup_job must be one of {', '.join(CLEANUP_CHOICES)}")
        self.service = service
        self.exchange = exchange
        self.options = options
        self.ledger = JobLedger(persistence_directory / f"{service.name}-mq-jobs")
        self.outbox: Outbox | None = None
        if options.publish:
            self.outbox = Outbox(
                persistence_directory / f"{service.name}-mq-outbox",
                functools.partial(exchange.publish, "status_update"),
                on_delivered=self.on_delivered,
                max_interval=options.drain_interval,
                name=f"status outbox of manager {service.name}",
            )
        self.consumers: list[ConsumerThread] = []
        #: Held while a setup is admitted and submitted, and while a job is settled and
        #: cleaned, so a new setup reusing an id cannot have its directory cleaned away.
        self._admission = threading.Lock()
        self._stopping = threading.Event()
        self._maintainer: threading.Thread | None = None
        if self.outbox is not None:
            service.add_listener(self._announce)

    @property
    def name(self) -> str:
        return self.service.name

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        """Re-queue unconfirmed terminal updates, start draining, start the consumers."""
        if self.outbox is not None:
            self.resend_unconfirmed()
            self.outbox.start()
        if self.options.consume:
            for logical, callback in (("setup", self.on_setup), ("kill", self.on_kill), ("status", self.on_status)):
                self.consumers.append(self.exchange.start_consumer(logical, callback))
        if self.outbox is not None and self.exchange.settings.acks_enabled:
            self.consumers.append(self.exchange.start_consumer("status_update_ack", self.exchange.handle_ack_reply))
            self.exchange.start_ack_republisher()
        self._maintainer = threading.Thread(target=self._maintain_loop, name=f"mq-maintenance-{self.name}", daemon=True)
        self._maintainer.start()

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop consuming (each consumer finishes the message in hand, waited for at most
        `timeout` seconds in all, default CONSUMER_STOP_TIMEOUT), stop the drain (waiting
        updates stay on disk) and close the publisher."""
        self._stopping.set()
        for consumer in self.consumers:
            consumer.stop(0)
        deadline = time.monotonic() + (CONSUMER_STOP_TIMEOUT if timeout is None else max(timeout, 0.0))
        for consumer in self.consumers:
            consumer.stop(max(deadline - time.monotonic(), 0.0))
            if consumer.alive:
                log.warning("manager %s: consumer %s did not stop in time", self.name, consumer.name)
        if self.outbox is not None:
            self.outbox.stop()
        self.exchange.close()

    # -- consumed messages -------------------------------------------------------------

    def _job_id(self, body: dict[str, Any], queue: str) -> str | None:
        job_id = body.get("job_id")
        if isinstance(job_id, int) and not isinstance(job_id, bool):
            job_id = str(job_id)
        try:
            return validate_job_id(job_id)
        except InvalidArgument as exc:
            log.warning("manager %s: %s message dropped: %s (got %r)", self.name, queue, exc.detail, job_id)
            return None

    def on_setup(self, body: dict[str, Any]) -> None:
        """Handle one `setup` message; returns once it may be acked."""
        if body.get("request") == "status" and "command_line" not in body:
            self._status_request(body, "setup", legacy=True)
            return
        job_id = self._job_id(body, "setup")
        if job_id is None:
            return
        digest = setup_digest(body)
        with self._admission:
            if self._is_duplicate(job_id, digest):
                return
            if body.get("cvmfsexec"):
                log.warning("job %s: cvmfsexec is not supported by this server; running the command as is", job_id)
            self.ledger.received(job_id, digest)
            try:
                self.service.submit_request(job_id, parse_submit_message(body))
            except Refused as exc:  # the service has recorded (and announced) the job failed
                log.warning("job %s: setup refused: %s", job_id, printable(exc.detail))
            except PulsarError as exc:  # the request's fault; record_failure logs it
                self.service.record_failure(job_id, f"setup refused: {exc.detail}")
            except Exception as exc:
                log.exception("job %s: setup failed", job_id)
                self.service.record_failure(job_id, f"setup failed: {exc}")

    def _is_duplicate(self, job_id: str, digest: str) -> bool:
        state = self.service.job_state(job_id)
        if state is not None and not state.terminal:
            log.info("job %s: setup received again while it is %s; ignored", job_id, state.status.value)
            return True
        entry = self.ledger.get(job_id)
        if entry is not None and entry.digest == digest:
            if entry.settled is not None or state is not None:
                log.info("job %s: setup received again after it ended; ignored", job_id)
                return True
            return False  # accepted before a crash that left no record: run it now
        if state is not None:
            log.info("job %s: a new setup reuses the id of a finished job; starting afresh", job_id)
        return False

    def on_kill(self, body: dict[str, Any]) -> None:
        """Cancel the job (a no-op for unknown and finished jobs); no reply."""
        job_id = self._job_id(body, "kill")
        if job_id is not None:
            log.info("job %s: kill requested", job_id)
            self.service.cancel(job_id)

    def on_status(self, body: dict[str, Any]) -> None:
        """Publish the job's current status document."""
        self._status_request(body, "status", legacy=False)

    def _status_request(self, body: dict[str, Any], queue: str, *, legacy: bool) -> None:
        job_id = self._job_id(body, queue)
        if job_id is None:
            return
        if self.outbox is None:
            log.info("job %s: status requested, but message_queue_publish is off; not answered", job_id)
            return
        if legacy and self.service.job_state(job_id) is None:
            # 0.15.15 clients ask on the setup queue; the reference answered an unknown id
            # with a spurious `failed`.  Neither create a job nor fail it (mq-protocol 8.8).
            log.info("job %s: status request on the setup queue for an unknown job; not answered", job_id)
            return
        self._publish(self.service.status(job_id))

    # -- status updates ----------------------------------------------------------------

    def _announce(self, job_id: str, document: dict[str, Any]) -> None:
        """The service's listener: runs under the job lock, before the state is recorded."""
        assert self.outbox is not None
        if document.get("status") == JobState.CANCELLED.status.value:
            self.ledger.cancelled(job_id)  # not published unprompted (B6); see _maintain
            return
        self._publish(document)

    def _publish(self, document: dict[str, Any]) -> None:
        """Append to the outbox, the tool streams capped as the 0.15.16+ reference caps them
        (`job_stdout`/`job_stderr` are not cut)."""
        assert self.outbox is not None
        capped = dict(document)
        for key in ("stdout", "stderr"):
            if isinstance(capped.get(key), str):
                capped[key] = status_doc.head_and_tail(capped[key], STREAM_CAP)
        self.outbox.put(capped)

    def on_delivered(self, document: dict[str, Any]) -> None:
        """The broker confirmed a terminal update: settle the job and clean up after it
        (only jobs that came over the queue, and only once)."""
        job_id = str(document.get("job_id"))
        with self._admission:
            try:
                state = self.service.job_state(job_id)
            except InvalidArgument:
                return
            if state is not None and not state.terminal:
                return  # the id was set up again meanwhile; that job is not finished
            before = self.ledger.settle(job_id)
            if before is not None and before.settled is None:
                self._clean(job_id, document.get("status"), document.get("returncode"))

    def _clean(self, job_id: str, status: Any, returncode: Any) -> None:
        policy = self.options.cleanup_job
        if policy == "never" or (policy == "onsuccess" and (status != "complete" or returncode != 0)):
            return
        log.debug("job %s: %s delivered; removing its directory", job_id, status)
        self.service.clean(job_id)

    def resend_unconfirmed(self) -> int:
        """Queue the terminal document of every message-queue job that ended but whose update
        was never confirmed and is not waiting in the outbox.  Run before the drain starts."""
        assert self.outbox is not None
        waiting = {doc.get("job_id") for doc in self.outbox.pending() if doc.get("complete") == "true"}
        count = 0
        for entry in self.ledger.entries():
            if entry.settled is not None or entry.job_id in waiting:
                continue
            state = self.service.job_state(entry.job_id)
            if state is None or not state.terminal or state is JobState.CANCELLED:
                continue
            self._publish(self.service.status(entry.job_id))
            count += 1
        if count:
            log.info("manager %s: re-sending %d terminal status update(s) never confirmed", self.name, count)
        return count

    # -- maintenance -------------------------------------------------------------------

    def _maintain_loop(self) -> None:
        while True:
            try:
                self.maintain()
            except Exception:
                log.exception("manager %s: message-queue maintenance failed", self.name)
            if self._stopping.wait(self.options.maintenance_interval):
                return

    def maintain(self, now: float | None = None) -> None:
        """Settle (and clean up) cancelled jobs past their grace period, and forget ledger
        entries older than the retention: settled ones, and ones whose job never came to be."""
        now = time.time() if now is None else now
        for entry in self.ledger.entries():
            if entry.settled is not None:
                if now - entry.settled > RETENTION:
                    self.ledger.forget(entry.job_id)
                continue
            with self._admission:
                state = self.service.job_state(entry.job_id)
                if entry.cancelled is not None and now - entry.cancelled > self.options.cancelled_grace:
                    if state in (None, JobState.CANCELLED):
                        self.ledger.settle(entry.job_id)
                        self._clean(entry.job_id, JobState.CANCELLED.status.value, None)
                elif state is None and now - entry.received > RETENTION:
                    self.ledger.forget(entry.job_id)
