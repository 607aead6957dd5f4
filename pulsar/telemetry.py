"""The server's Prometheus metrics (`GET /metrics`), one registry per `PulsarApp`.

Why a registry of our own and not prometheus_client's global one: several apps live in one
process (tests, Galaxy embedding the server), and each must count only its own jobs.

Where the figures come from, so nothing is counted twice or in many places:
* job transitions: the job table's state observer (`observe_jobs`), one call per change of
  a job's recorded state -- submissions, terminal outcomes, queue wait and run time;
* jobs by state, message-queue consumers and outbox depth: read at scrape time from the app
  (`watch`), so they are never stale and cost nothing between scrapes;
* HTTP: `pulsar.web.app` records each request once, when its response is done (downloads
  when the last byte has gone), with the route *pattern* as label, never the raw path;
* bytes staged: the upload handler, the download's end, and server-side remote staging
  (`transfer_observer`, passed to `pulsar.jobs.remote_staging`).

Label values are bounded: manager names come from the configuration (a request naming an
unknown manager fails before anything is counted), routes from the route table, HTTP
methods are folded into a fixed set.

prometheus_client is imported only when an app builds its metrics (`build_metrics`): Galaxy
imports `pulsar.core` and builds the app in its own venv, where this package is installed
with `--no-deps` (README, "Inside Galaxy"); there the app runs without metrics and
`/metrics` answers 501.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from pulsar.errors import PulsarError
from pulsar.jobs.events import StateObserver
from pulsar.jobs.state import JobState

if TYPE_CHECKING:
    from prometheus_client.core import Metric

log = logging.getLogger(__name__)

#: Content-Type of the exposition: text format 0.0.4, what `generate_latest` writes for our
#: (plain ASCII) names and what every Prometheus version reads -- prometheus_client's own
#: handler answers it too when the scraper asks for nothing newer.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

OUTCOMES = ("complete", "failed", "cancelled", "lost")
#: States a job is counted in by `pulsar_jobs` (the terminal ones are counters instead; a job
#: set up but not submitted has no record, so SETUP would always read 0 and is left out).
ACTIVE_STATES = tuple(state for state in JobState if not state.terminal and state is not JobState.SETUP)
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})
UNMATCHED_ROUTE = "unmatched"

# Jobs wait and run from seconds to days; transfers take milliseconds to an hour.
JOB_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600)
TRANSFER_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)

#: (bytes, seconds) of one file moved.
TransferObserver = Callable[[int, float], None]


class MetricsUnavailable(PulsarError):
    """`GET /metrics` on a server whose environment lacks prometheus_client."""

    http_status = 501
    error = "metrics_unavailable"


def build_metrics() -> ServerMetrics:
    """The app's metrics; a `NullMetrics` (and one log line) without prometheus_client."""
    if importlib.util.find_spec("prometheus_client") is None:
        log.info("prometheus_client is not installed: no metrics (GET /metrics answers 501)")
        return NullMetrics()
    return ServerMetrics()


class ServerMetrics:
    """Every metric of one app, in its own `CollectorRegistry`."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.submissions = Counter(
            "pulsar_job_submissions", "Jobs handed to a manager (queued or set to stage in) for the first time.",
            ["manager"], registry=registry)
        self.outcomes = Counter(
            "pulsar_job_outcomes", "Jobs that reached a terminal state, by outcome.",
            ["manager", "outcome"], registry=registry)
        self.queue_wait = Histogram(
            "pulsar_job_queue_wait_seconds", "Time from queued to running (jobs queued since this start).",
            ["manager"], buckets=JOB_BUCKETS, registry=registry)
        self.run_time = Histogram(
            "pulsar_job_run_seconds", "Time a job spent running (jobs that started running since this start).",
            ["manager"], buckets=JOB_BUCKETS, registry=registry)
        self.recovered = Counter(
            "pulsar_jobs_recovered", "Unfinished jobs found in the job store and carried on at start.",
            ["manager"], registry=registry)
        self.staged_bytes = Counter(
            "pulsar_staged_bytes", "Bytes of job files moved: via http (client uploads and downloads) or "
            "remote (the server's own staging); direction in (to the job) or out.",
            ["manager", "direction", "via"], registry=registry)
        self.transfer_seconds = Histogram(
            "pulsar_transfer_seconds", "Duration of one file transfer (see pulsar_staged_bytes).",
            ["manager", "direction", "via"], buckets=TRANSFER_BUCKETS, registry=registry)
        self.http_requests = Counter(
            "pulsar_http_requests", "HTTP requests answered, by route pattern, method and status.",
            ["route", "method", "status"], registry=registry)
        self.http_seconds = Histogram(
            "pulsar_http_request_duration_seconds", "Time from request to the last byte of the response.",
            ["route", "method"], registry=registry)
        # Children looked up once: labels() takes a lock and builds a key on every call.
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._http_lock = threading.Lock()

    def exposition(self) -> bytes:
        """The text format of every metric, as of now."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    # -- managers -------------------------------------------------------------------------

    def add_manager(self, name: str) -> None:
        """Create the manager's series at zero, so a rate() over them exists from the start."""
        self.submissions.labels(name)
        self.recovered.labels(name)
        for outcome in OUTCOMES:
            self.outcomes.labels(name, outcome)

    def observe_jobs(self, manager: str) -> StateObserver:
        """The job table observer of `manager` (see `pulsar.jobs.events.StateObserver`)."""
        return _JobTimings(self, manager)

    def transfer_observer(self, manager: str, direction: str, via: str) -> TransferObserver:
        bytes_counter = self.staged_bytes.labels(manager, direction, via)
        seconds = self.transfer_seconds.labels(manager, direction, via)

        def transferred(size: int, duration: float) -> None:
            bytes_counter.inc(size)
            seconds.observe(duration)

        return transferred

    def transferred(self, manager: str, direction: str, via: str, size: int, duration: float) -> None:
        self.transfer_observer(manager, direction, via)(size, duration)

    def recovered_jobs(self, manager: str, count: int) -> None:
        self.recovered.labels(manager).inc(count)

    # -- HTTP -----------------------------------------------------------------------------

    def request_done(self, route: str, method: str, status: int, duration: float) -> None:
        method = method if method in METHODS else "other"
        key = (route, method, status)
        children = self._http_children.get(key)
        if children is None:
            with self._http_lock:
                children = (self.http_requests.labels(route, method, str(status)), self.http_seconds.labels(route, method))
                self._http_children[key] = children
        children[0].inc()
        children[1].observe(duration)

    # -- read at scrape time --------------------------------------------------------------

    def watch(self, services: Callable[[], Mapping[str, Any]], bindings: Callable[[], Iterable[Any]]) -> None:
        """Report, at each scrape, the jobs of `services()` by state and the consumers and
        outboxes of `bindings()` (`pulsar.messaging.bind.MessageQueueBinding`)."""
        self.registry.register(_AppCollector(services, bindings))


class _JobTimings:
    """Counts one manager's job transitions and times queued -> running -> done.

    The entry times live here, for jobs seen entering a state since this start; a job
    recovered at start is counted when it ends but not timed (when it entered its state is
    not known to this process)."""

    def __init__(self, metrics: ServerMetrics, manager: str):
        self._submissions = metrics.submissions.labels(manager)
        self._outcomes = {outcome: metrics.outcomes.labels(manager, outcome) for outcome in OUTCOMES}
        self._queue_wait = metrics.queue_wait.labels(manager)
        self._run_time = metrics.run_time.labels(manager)
        self._entered: dict[str, float] = {}

    def __call__(self, job_id: str, previous: JobState | None, state: JobState) -> None:
        now = time.monotonic()
        entered = self._entered.pop(job_id, None)
        if previous in (None, JobState.SETUP) and state in (JobState.STAGING_IN, JobState.QUEUED):
            self._submissions.inc()
        if entered is not None and previous is JobState.QUEUED and state is JobState.RUNNING:
            self._queue_wait.observe(now - entered)
        elif entered is not None and previous is JobState.RUNNING:
            self._run_time.observe(now - entered)
        if state.terminal:
            self._outcomes[state.status.value].inc()
        elif state in (JobState.QUEUED, JobState.RUNNING):
            self._entered[job_id] = now


class NullMetrics(ServerMetrics):
    """The same calls, counting nothing (see `build_metrics`)."""

    def __init__(self) -> None:  # no registry: prometheus_client is not there
        pass

    def exposition(self) -> bytes:
        raise MetricsUnavailable("this server has no metrics: prometheus_client is not installed")

    def add_manager(self, name: str) -> None:
        pass

    def observe_jobs(self, manager: str) -> StateObserver:
        return lambda job_id, previous, state: None

    def transfer_observer(self, manager: str, direction: str, via: str) -> TransferObserver:
        return lambda size, duration: None

    def recovered_jobs(self, manager: str, count: int) -> None:
        pass

    def request_done(self, route: str, method: str, status: int, duration: float) -> None:
        pass

    def watch(self, services: Callable[[], Mapping[str, Any]], bindings: Callable[[], Iterable[Any]]) -> None:
        pass


class _AppCollector:
    """What is read at scrape time (a prometheus_client collector: `collect`, `describe`)."""

    def __init__(self, services: Callable[[], Mapping[str, Any]], bindings: Callable[[], Iterable[Any]]):
        self._services = services
        self._bindings = bindings

    def describe(self) -> Iterable[Metric]:
        return []  # the families depend on the app at scrape time

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        jobs = GaugeMetricFamily("pulsar_jobs", "Unfinished jobs, by manager and state.", labels=["manager", "state"])
        for name, service in self._services().items():
            counts = service.table.state_counts()
            for state in ACTIVE_STATES:
                jobs.add_metric([name, state.name.lower()], counts.get(state, 0))
        yield jobs
        connected = GaugeMetricFamily(
            "pulsar_mq_consumer_connected", "1 while the consumer of a message queue is registered on a live "
            "connection, 0 while it is disconnected.", labels=["manager", "queue"])
        outbox = GaugeMetricFamily(
            "pulsar_mq_outbox_depth", "Status updates on disk waiting to be published.", labels=["manager"])
        for binding in self._bindings():
            for consumer in binding.consumers:
                connected.add_metric([binding.name, consumer.queue], 1 if consumer.connected else 0)
            if binding.outbox is not None:
                outbox.add_metric([binding.name], len(binding.outbox))
        yield connected
        yield outbox
