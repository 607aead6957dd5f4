"""Nothing lost, nothing doubled, over the message queue, under the faults of issue 10:
the broker restarted and our server killed with SIGKILL while jobs run, 20 times each.

Our server runs as `pulsar -m webless` in a subprocess; our client manager runs in this
process, driven as Galaxy's PulsarMQJobRunner drives it.  Each job appends one line to a
file of its own every time it runs, so a second run shows.  A tap queue bound to the
manager's `status_update` routing key sees every update the server put on the wire; the
client's callback must see exactly one terminal status per job (duplicates on the wire are
allowed by at-least-once delivery; the client drops them, spec B25).

The broker restarts take most of the time (about 7 s each): these tests are for CI, where
the broker is the test's own.  PULSAR_TEST_MQ_FAULT_REPETITIONS lowers the count locally.
"""

from __future__ import annotations

import collections
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import kombu
import pytest

from pulsar.client import MessageQueueClientManager, build_client_manager
from test.support.mq_server import MqServer, start_our_mq_server
from test.support.mq_updates import StatusUpdates
from test.support.polling import wait_for
from test.support.rabbitmq import queue_prefix, restart_broker

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(1800)]

REPETITIONS = int(os.environ.get("PULSAR_TEST_MQ_FAULT_REPETITIONS", "20"))
JOBS_PER_REPETITION = 3
JOB_SECONDS = 2


class Tap:
    """A private queue bound to the manager's status_update routing key: a copy of every
    update the server published, read after the fact."""

    def __init__(self, url: str, manager: str):
        self.url = url
        routing_key = queue_prefix(manager) + "_status_update"
        self.name = f"tap-{manager}"
        self.exchange = kombu.Exchange("pulsar", type="direct", durable=True)
        self.queue = kombu.Queue(self.name, self.exchange, routing_key=routing_key, durable=True)
        with kombu.Connection(url) as connection:
            self.queue(connection.channel()).declare()

    def terminal_counts(self) -> collections.Counter[str]:
        counts: collections.Counter[str] = collections.Counter()
        with kombu.Connection(self.url) as connection:
            bound = self.queue(connection.channel())
            while (message := bound.get(no_ack=True)) is not None:
                body = json.loads(message.body)
                if body.get("complete") == "true":
                    counts[str(body["job_id"])] += 1
        return counts

    def delete(self) -> None:
        with kombu.Connection(self.url) as connection:
            self.queue(connection.channel()).delete()


@pytest.fixture
def server(tmp_path: Path, amqp_url: str, unique_manager: str) -> Iterator[MqServer]:
    running = start_our_mq_server(tmp_path / "server", amqp_url, unique_manager)
    try:
        yield running
    finally:
        running.kill()


@pytest.fixture
def tap(amqp_url: str, unique_manager: str) -> Iterator[Tap]:
    created = Tap(amqp_url, unique_manager)
    try:
        yield created
    finally:
        created.delete()


@pytest.fixture
def galaxy(tmp_path: Path, amqp_url: str, unique_manager: str) -> Iterator[tuple[StatusUpdates, MessageQueueClientManager]]:
    callback = StatusUpdates()
    manager = build_client_manager(amqp_url=amqp_url, manager=unique_manager, cache=None, transport=None,
                                   persistence_directory=str(tmp_path / "galaxy"))
    assert isinstance(manager, MessageQueueClientManager)
    manager.ensure_has_status_update_callback(callback)
    manager.ensure_has_ack_consumers()
    try:
        yield callback, manager
    finally:
        manager.shutdown()


def launch_jobs(manager: MessageQueueClientManager, server: MqServer, runs: Path, prefix: str) -> list[str]:
    job_ids = [f"{prefix}-{n}" for n in range(JOBS_PER_REPETITION)]
    for job_id in job_ids:
        client = manager.get_client({"jobs_directory": server.staging_directory, "default_file_action": "remote_transfer"},
                                    job_id)
        setup = client.setup("fault-probe", "1.0")
        # one line per run, then a pause that outlasts the fault, then the output
        command = (f"echo run >> {runs / job_id}; sleep {JOB_SECONDS}; "
                   f"echo done > {setup['outputs_directory']}/out.txt")
        client.launch(command, job_config=setup)
    return job_ids


def check_exactly_once(galaxy: StatusUpdates, tap: Tap, runs: Path, job_ids: list[str], what: str) -> collections.Counter[str]:
    for job_id in job_ids:
        wait_for(lambda job_id=job_id: galaxy.terminal(job_id), 120, what=f"{what}: a terminal status for {job_id}")
    wire = tap.terminal_counts()
    for job_id in job_ids:
        finals = galaxy.terminal(job_id)
        assert len(finals) == 1, f"{what}: {job_id} reached the client {len(finals)} times: {finals}"
        assert finals[0]["status"] == "complete" and finals[0]["returncode"] == 0, f"{what}: {finals[0]}"
        assert finals[0]["outputs_directory_contents"] == ["out.txt"], f"{what}: {finals[0]}"
        assert (runs / job_id).read_text() == "run\n", f"{what}: job {job_id} ran more than once"
        assert wire[job_id] >= 1
    return wire


def run_repetitions(name: str, fault: Callable[[int, list[str]], None], server: MqServer, tap: Tap, runs: Path,
                    galaxy: tuple[StatusUpdates, MessageQueueClientManager]) -> None:
    """REPETITIONS times: launch jobs, inject `fault(repetition, job_ids)` while they run,
    then check each ran once and reached the client once."""
    callback, manager = galaxy
    runs.mkdir()
    duplicates = 0
    for repetition in range(REPETITIONS):
        job_ids = launch_jobs(manager, server, runs, f"{name.split()[0]}{repetition}")
        fault(repetition, job_ids)
        wire = check_exactly_once(callback, tap, runs, job_ids, f"{name}, repetition {repetition}")
        duplicates += sum(wire[j] - 1 for j in job_ids)
    assert server.running(), server.log_text()[-3000:]
    print(f"{name} x{REPETITIONS}: {REPETITIONS * JOBS_PER_REPETITION} jobs, "
          f"{duplicates} duplicate terminal update(s) on the wire (dropped by the client)")


def test_server_killed_mid_job_loses_and_doubles_nothing(server: MqServer, tap: Tap, tmp_path: Path,
                                                         galaxy: tuple[StatusUpdates, MessageQueueClientManager]) -> None:
    callback = galaxy[0]

    def kill_server(repetition: int, job_ids: list[str]) -> None:
        wait_for(lambda: all(callback.saw(j, "running") for j in job_ids), 60,
                 what=f"repetition {repetition}: every job running")
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)  # the server only: its jobs keep running
        server.process.wait()
        server.start()

    run_repetitions("server kill -9", kill_server, server, tap, tmp_path / "runs", galaxy)


def test_broker_restarted_mid_job_loses_and_doubles_nothing(server: MqServer, tap: Tap, tmp_path: Path,
                                                            galaxy: tuple[StatusUpdates, MessageQueueClientManager]) -> None:
    runs = tmp_path / "runs"

    def restart(repetition: int, job_ids: list[str]) -> None:
        wait_for(lambda: all((runs / j).exists() for j in job_ids), 60, what=f"repetition {repetition}: every job started")
        restart_broker()

    run_repetitions("broker restart", restart, server, tap, runs, galaxy)
