"""The real RabbitMQ broker of `test/infra/start-rabbitmq.sh`, for the message-queue tests.

Every test gets its own queue names (a unique manager name, so `pulsar_<manager>__setup`
etc.), so tests never see each other's messages on the shared broker.  A missing broker
skips with the reason -- except where the run promises it (CI sets
PULSAR_TEST_REQUIRE_SCHEDULERS=1 and starts it): there it is a failure.

    from test.support.rabbitmq import amqp_url, unique_manager, broker   # fixtures below
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from test.support.system import unavailable

STATE_DIR = Path(os.environ.get("DRM_STATE_DIR", "/run/drm-ci")) / "rabbitmq"
TLS_ENV = STATE_DIR / "tls.env"
INFRA = Path(__file__).resolve().parent.parent / "infra"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672//"


def broker_url() -> str:
    return os.environ.get("PULSAR_TEST_AMQP_URL", DEFAULT_URL)


def port_open(host: str = "127.0.0.1", port: int = 5672, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_broker() -> str:
    """The broker URL, or skip/fail (see the module docstring) when nothing listens."""
    if not port_open():
        unavailable("RabbitMQ is not running: start it with `bash test/infra/start-rabbitmq.sh`")
    return broker_url()


def tls_settings() -> dict[str, str]:
    """RABBITMQ_AMQPS_URL, RABBITMQ_TLS_CA, RABBITMQ_TLS_CLIENT_CERT, RABBITMQ_TLS_CLIENT_KEY
    from tls.env (the broker must have been started with RABBITMQ_TLS=1)."""
    if not TLS_ENV.is_file() or not port_open(port=5671):
        unavailable(f"RabbitMQ has no TLS listener: start it with `RABBITMQ_TLS=1 bash {INFRA}/start-rabbitmq.sh`")
    values: dict[str, str] = {}
    script = f". {TLS_ENV} && env -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout.decode()
    for item in out.split("\0"):
        key, _, value = item.partition("=")
        if key.startswith("RABBITMQ_"):
            values[key] = value
    return values


def restart_broker() -> None:
    """Stop and start the real broker (keeps TLS if it was on).  Durable queues and
    persistent messages survive; every connection is cut."""
    env = dict(os.environ)
    if TLS_ENV.is_file():
        env["RABBITMQ_TLS"] = "1"
    subprocess.run(["bash", str(INFRA / "stop-rabbitmq.sh")], check=True, capture_output=True, env=env, timeout=120)
    start_broker(env)


def stop_broker() -> None:
    subprocess.run(["bash", str(INFRA / "stop-rabbitmq.sh")], check=True, capture_output=True, timeout=120)


def start_broker(env: dict[str, str] | None = None) -> None:
    env = dict(env or os.environ)
    subprocess.run(["bash", str(INFRA / "start-rabbitmq.sh")], check=True, capture_output=True, env=env, timeout=300)


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=True, timeout=60).stdout


def queue_consumers(url: str, queue: str) -> int | None:
    """How many consumers `queue` has, or None when it is not declared (a passive declare)."""
    import kombu  # the broker tests' dependency only

    with kombu.Connection(url, connect_timeout=10) as connection:
        channel = connection.channel()
        try:
            _, _, consumers = channel.queue_declare(queue=queue, passive=True)
            return int(consumers)
        except connection.channel_errors:  # 404 NOT_FOUND: not declared (and the channel is closed)
            return None
        finally:
            try:
                channel.close()
            except connection.connection_errors + connection.channel_errors:
                pass


def wait_for_consumers(url: str, queue: str, timeout: float = 60.0, alive: Callable[[], bool] | None = None) -> None:
    """Poll until `queue` has a consumer; TimeoutError after `timeout`, RuntimeError as soon as
    `alive()` (e.g. "the server process still runs") turns false."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"gave up waiting for a consumer on {queue}: the process exited")
        try:
            if queue_consumers(url, queue):
                return
        except Exception as exc:  # the broker is (re)starting: keep polling until the deadline
            last_error = f" (last error: {exc!r})"
        time.sleep(0.2)
    raise TimeoutError(f"nobody consumes {queue} after {timeout}s{last_error}")


def queue_prefix(manager: str, amqp_key_prefix: str | None = None) -> str:
    """The queue-name prefix (mq-protocol.md §2.2): `pulsar_` for `_default_`, else
    `pulsar_<manager>_`; an amqp_key_prefix replaces it.  Queue = prefix + "_" + logical name."""
    if amqp_key_prefix is not None:
        return amqp_key_prefix
    return "pulsar_" if manager == "_default_" else f"pulsar_{manager}_"


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def amqp_url() -> str:
    """URL of the real broker (plain AMQP on 127.0.0.1:5672)."""
    return require_broker()


#: Every logical queue of a manager (mq-protocol.md §2.2).
LOGICAL_QUEUES = ("setup", "kill", "status", "status_update", "setup_ack", "kill_ack", "status_update_ack")


def delete_manager_queues(url: str, manager: str) -> None:
    """Delete the queues of `manager` (those that exist), so a long run leaves no thousands
    of durable queues behind on the broker."""
    import kombu  # the broker tests' dependency only

    prefix = queue_prefix(manager)
    with kombu.Connection(url, connect_timeout=10) as connection:
        for logical in LOGICAL_QUEUES:
            channel = connection.channel()
            try:
                channel.queue_delete(queue=f"{prefix}_{logical}")
            except connection.channel_errors:
                pass
            finally:
                try:
                    channel.close()
                except connection.connection_errors + connection.channel_errors:
                    pass


@pytest.fixture
def unique_manager() -> Iterator[str]:
    """A manager name no other test uses: its queues are `pulsar_<name>__setup` etc., deleted
    at teardown when the broker is up."""
    name = unique_name("mgr")
    yield name
    if port_open():
        try:
            delete_manager_queues(broker_url(), name)
        except Exception as exc:  # cleanup only: a broker restarting in a fault test, say
            print(f"could not delete the queues of manager {name}: {exc}")
