"""AMQPS against the real broker's TLS listener (spec §8 scenario 20)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pulsar.shared.amqp import PublishError
from test.shared.conftest import Mq
from test.support.polling import wait_for
from test.support.rabbitmq import tls_settings

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def tls() -> dict[str, str]:
    return tls_settings()


def round_trip(mq: Mq, url: str, **options: Any) -> None:
    exchange = mq.exchange(url=url, **options)
    received: list[dict[str, Any]] = []
    mq.consume(exchange, "setup", received.append)
    exchange.publish("setup", {"job_id": "tls"})
    wait_for(lambda: received)
    assert received == [{"job_id": "tls"}]


def test_amqps_with_the_right_ca(mq: Mq, tls: dict[str, str]) -> None:
    round_trip(mq, tls["RABBITMQ_AMQPS_URL"], amqp_connect_ssl_ca_certs=tls["RABBITMQ_TLS_CA"],
               amqp_connect_ssl_cert_reqs="cert_required")


def test_ssl_query_merged_with_client_certificate_options(mq: Mq, tls: dict[str, str]) -> None:
    """B14: `?ssl=1` must not discard the amqp_connect_ssl_* keys."""
    url = tls["RABBITMQ_AMQPS_URL"].replace("amqps://", "pyamqp://").replace("5671//", "5671//?ssl=1")
    assert url.startswith("pyamqp://") and url.endswith("?ssl=1")
    round_trip(mq, url, amqp_connect_ssl_ca_certs=tls["RABBITMQ_TLS_CA"],
               amqp_connect_ssl_certfile=tls["RABBITMQ_TLS_CLIENT_CERT"],
               amqp_connect_ssl_keyfile=tls["RABBITMQ_TLS_CLIENT_KEY"])


def test_amqps_with_a_wrong_ca_fails(mq: Mq, tls: dict[str, str], tmp_path: Path) -> None:
    wrong_ca = tmp_path / "wrong-ca.pem"
    wrong_ca.write_text(Path(tls["RABBITMQ_TLS_CLIENT_CERT"]).read_text())  # a certificate, but not the CA
    exchange = mq.exchange(url=tls["RABBITMQ_AMQPS_URL"], amqp_connect_ssl_ca_certs=str(wrong_ca))
    with pytest.raises(PublishError, match="(?i)certificate"):
        exchange.publish("setup", {"job_id": "never"})


def test_amqps_against_the_system_store_fails_for_a_private_ca(mq: Mq, tls: dict[str, str]) -> None:
    exchange = mq.exchange(url=tls["RABBITMQ_AMQPS_URL"])
    with pytest.raises(PublishError, match="(?i)certificate"):
        exchange.publish("setup", {"job_id": "never"})
