"""Message-queue mode during a broker outage: server memory while status updates wait, then delivery.

The shared broker cannot be stopped, so the server under test reaches it through an
`OutageProxy`; `cut()` plays the outage.  With the broker unreachable no `setup` message can
reach the server, so the updates are produced the honest way that remains: the server runs in
mixed mode (HTTP + message queue) and `jobs` trivial jobs (`true`) are submitted over its HTTP
API with our HTTP client, 8 at a time.  Every state change it would publish (`running` and the
terminal document per job) then waits in its outbox.  Measured: the server's RSS before the
outage (after a warm-up of a few jobs delivered normally), its peak while the jobs run and the
updates pile up, and after; the number of updates waiting (files in its outbox directory).
Then the proxy listens again and a consumer of our own on the broker (raw kombu, so
duplicates are seen, not filtered) checks every job's terminal update arrives exactly once.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kombu

from bench.mq_servers import MQServer, queue_name
from bench.sampling import MIB, Sampler, rss_bytes
from bench.servers import TOKEN
from test.support.outage_proxy import OutageProxy

TERMINAL = {"complete", "cancelled", "failed", "lost"}


class UpdateCounter:
    """Consumes a status_update queue straight from the broker and counts what arrives."""

    def __init__(self, url: str, queue: str):
        exchange = kombu.Exchange("pulsar", type="direct", durable=True)
        self.queue = kombu.Queue(queue, exchange, routing_key=queue, durable=True)
        self.url = url
        self.lock = threading.Lock()
        self.messages = 0
        self.terminal: dict[str, int] = {}
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-update-counter", daemon=True)

    def start(self, timeout: float = 30.0) -> UpdateCounter:
        self._thread.start()
        if not self.ready.wait(timeout):
            raise RuntimeError(f"update counter not consuming after {timeout}s: {self._error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def terminal_of(self, job_ids: list[str]) -> int:
        with self.lock:
            return sum(1 for job_id in job_ids if job_id in self.terminal)

    def _run(self) -> None:
        try:
            with kombu.Connection(self.url) as connection:
                with connection.Consumer(self.queue, callbacks=[self._on_message], accept=["json"]):
                    self.ready.set()
                    while not self._stop.is_set():
                        try:
                            connection.drain_events(timeout=0.2)
                        except socket.timeout:
                            pass
        except BaseException as exc:  # reported through start() / the counts
            self._error = exc
            raise

    def _on_message(self, body: Any, message: Any) -> None:
        if isinstance(body, (bytes, str)):
            body = json.loads(body)
        with self.lock:
            self.messages += 1
            if isinstance(body, dict) and body.get("status") in TERMINAL:
                job_id = str(body.get("job_id"))
                self.terminal[job_id] = self.terminal.get(job_id, 0) + 1
        message.ack()


def outbox_entries(persistence: Path) -> int | None:
    """Files waiting in the server's outbox directories (ours: `<manager>-mq-outbox`, the
    reference: `<manager>-status-outbox`); None if there is no such directory."""
    found = None
    for entry in os.scandir(persistence):
        if entry.is_dir() and entry.name.endswith("outbox"):
            found = (found or 0) + sum(1 for item in os.scandir(entry.path) if item.is_file())
    return found


def submit_over_http(server: MQServer, job_ids: list[str], command: str, timeout: float = 600.0) -> list[str]:
    """Submit `job_ids` over the HTTP API (our client, 8 threads) and wait until each is
    terminal.  Returns the statuses."""
    from pulsar.client import build_client_manager

    manager = build_client_manager()
    destination = {"url": server.url, "private_token": TOKEN, "manager": server.manager}

    def one(job_id: str) -> str:
        client = manager.get_client(destination, job_id)
        client.setup("bench_outage", "1.0")
        client.launch(command)
        deadline = time.monotonic() + timeout
        while True:
            status = client.get_status()
            if status in TERMINAL or time.monotonic() > deadline:
                return str(status)
            time.sleep(0.02)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, job_ids))


def wait_delivered(counter: UpdateCounter, job_ids: list[str], timeout: float) -> float | None:
    """Seconds until every job's terminal update arrived (None: not within `timeout`)."""
    started = time.perf_counter()
    while counter.terminal_of(job_ids) < len(job_ids):
        if time.perf_counter() - started > timeout:
            return None
        time.sleep(0.01)
    return time.perf_counter() - started


def run_outage(make_server: Any, broker_url: str, broker_port: int, jobs: int, id_prefix: str,
               warmup: int = 10, drain_timeout: float = 300.0) -> dict:
    """`make_server(amqp_url)` builds the (web + MQ) server, registered for cleanup by the caller."""
    proxy = OutageProxy(broker_port)
    proxied = broker_url.replace(f":{broker_port}/", f":{proxy.port}/")
    server: MQServer = make_server(proxied)
    counter = UpdateCounter(broker_url, queue_name(server.manager, "status_update")).start()
    try:
        server.start()
        warm = [f"{id_prefix}w{i}" for i in range(warmup)]
        submit_over_http(server, warm, "true")
        if wait_delivered(counter, warm, 60.0) is None:
            raise RuntimeError(f"warm-up: {counter.terminal_of(warm)} of {warmup} terminal updates delivered "
                               f"with the broker up\n{server.log_tail()}")
        messages_before = counter.messages
        proxy.cut()
        rss_before = rss_bytes(server.server_processes)
        ids = [f"{id_prefix}{i}" for i in range(jobs)]
        with Sampler({"server": list(server.server_processes)}, interval=0.05) as sampler:
            window_start = time.time()
            statuses = submit_over_http(server, ids, "true")
            window = (window_start, time.time())
        rss_after = rss_bytes(server.server_processes)
        queued = outbox_entries(server.persistence)
        leaked = counter.messages - messages_before  # anything that got through the "outage"
        proxy.restore()
        drain = wait_delivered(counter, ids, drain_timeout)
        time.sleep(1.0)  # late duplicates, if any, arrive now
        with counter.lock:
            delivered = sum(1 for job_id in ids if job_id in counter.terminal)
            duplicates = sum(counter.terminal.get(job_id, 0) - 1 for job_id in ids if job_id in counter.terminal)
            received = counter.messages - messages_before
    finally:
        counter.stop()
        proxy.restore()
        server.stop()
        proxy.cut()
    completed = sum(1 for status in statuses if status == "complete")
    return {
        "jobs": jobs,
        "jobs_complete": completed,
        "updates_queued": queued,
        "updates_received_after": received,
        "updates_through_outage": leaked,
        "rss_before_MiB": rss_before / MIB,
        "rss_after_MiB": rss_after / MIB,
        "rss_peak_MiB": sampler.peak("server", window) / MIB,
        "rss_growth_MiB": max(0, sampler.peak("server", window) - rss_before) / MIB,
        "drain_s": drain if drain is not None else float("nan"),
        "terminal_delivered": delivered,
        "terminal_lost": jobs - delivered,
        "terminal_duplicates": duplicates,
        "ok": completed == jobs and delivered == jobs and duplicates == 0,
    }
