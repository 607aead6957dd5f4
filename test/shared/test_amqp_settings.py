"""`parse_amqp_options`: strict, string-tolerant, URL query merged with the keys (no broker)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from pulsar.shared.amqp import AmqpConfigError, parse_amqp_options, redact_url

URL = "amqp://guest:s3cret@rabbit.example.org:5672//"


def parse(url: str = URL, **options: Any) -> Any:
    return parse_amqp_options(url, options)


def test_defaults() -> None:
    settings = parse()
    assert settings.key_prefix is None
    assert settings.durable is True
    assert settings.heartbeat == 580
    assert settings.consumer_timeout == 0.2
    assert settings.acknowledge is False and settings.acks_enabled is False
    assert settings.ack_republish_time == 30.0
    assert settings.publish_retry is False
    assert dict(settings.publish_retry_policy) == {"max_retries": 5, "interval_start": 1.0, "interval_step": 2.0,
                                                   "interval_max": 30.0}
    assert settings.publish_options["priority"] == 0
    assert settings.publish_options["delivery_mode"] == 2
    assert settings.ssl is None
    assert settings.persistence_directory is None


@pytest.mark.parametrize("word, expected", [("false", False), ("FALSE", False), ("no", False), ("off", False),
                                            ("0", False), ("true", True), ("Yes", True), ("on", True), ("1", True),
                                            (False, False), (True, True)])
def test_booleans_from_strings(word: Any, expected: bool) -> None:
    assert parse(amqp_acknowledge=word).acknowledge is expected
    assert parse(amqp_durable=word).durable is expected


def test_acks_need_a_persistence_directory(tmp_path: Path) -> None:
    assert parse(amqp_acknowledge="true").acks_enabled is False
    settings = parse_amqp_options(URL, {"amqp_acknowledge": "true"}, persistence_directory=str(tmp_path))
    assert settings.acks_enabled is True
    assert settings.persistence_directory == tmp_path


@pytest.mark.parametrize("value, expected", [("0", 0), (0, 0), ("false", 0), ("off", 0), ("none", 0), ("", 0),
                                             (False, 0), ("true", 580), (True, 580), ("on", 580), ("1", 1), ("30", 30), (45, 45)])
def test_heartbeat(value: Any, expected: int) -> None:
    assert parse(amqp_heartbeat=value).heartbeat == expected


def test_consumer_timeout_none_means_block() -> None:
    assert parse(amqp_consumer_timeout="None").consumer_timeout is None
    assert parse(amqp_consumer_timeout="2.5").consumer_timeout == 2.5


def test_non_durable_default_delivery_mode_is_transient() -> None:
    assert parse(amqp_durable="false").publish_options["delivery_mode"] == 1


@pytest.mark.parametrize("value, expected", [("transient", 1), ("persistent", 2), ("1", 1), (2, 2)])
def test_delivery_mode(value: Any, expected: int) -> None:
    assert parse(amqp_publish_delivery_mode=value).publish_options["delivery_mode"] == expected


def test_retry_policy_keys_imply_retry() -> None:
    settings = parse(amqp_publish_retry_max_retries="60", amqp_publish_retry_interval_max="10")
    assert settings.publish_retry is True
    assert dict(settings.publish_retry_policy) == {"max_retries": 60, "interval_start": 1.0, "interval_step": 2.0,
                                                   "interval_max": 10.0}
    assert parse(amqp_publish_retry="false", amqp_publish_retry_max_retries=3).publish_retry is False


@pytest.mark.parametrize(
    "key, value",
    [
        ("amqp_acknowledge", "maybe"),
        ("amqp_durable", "2"),
        ("amqp_heartbeat", "-1"),
        ("amqp_heartbeat", "soon"),
        ("amqp_consumer_timeout", "0"),
        ("amqp_ack_republish_time", "-5"),
        ("amqp_publish_retry_max_retries", "1.5"),
        ("amqp_publish_retry_max_retries", "inf"),
        ("amqp_ack_republish_time", "nan"),
        ("amqp_publish_priority", "300"),
        ("amqp_publish_delivery_mode", "3"),
        ("amqp_publish_timeout", "x"),
        ("amqp_connect_ssl_cert_reqs", "sometimes"),
        ("amqp_connect_ssl_ca_certs", "/nonexistent/ca.pem"),
        ("amqp_exchange", "other"),
        ("amqp_publish_mandatory", "true"),
        ("amqp_connect_ssl_bogus", "x"),
    ],
)
def test_bad_values_and_unknown_keys_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(AmqpConfigError) as info:
        parse(**{key: value})
    message = str(info.value)
    assert message.startswith(f"{key}:")
    assert "\n" not in message


def test_misspelt_republish_time_gets_a_hint() -> None:
    with pytest.raises(AmqpConfigError, match="did you mean amqp_ack_republish_time"):
        parse(amqp_republish_time="1200")


def test_other_keys_are_ignored() -> None:
    assert parse(message_queue_url="x", persistence_directory="/tmp", manager="m").durable is True


@pytest.mark.parametrize("url", ["http://relay.example.org", "https://relay.example.org:9000/"])
def test_relay_urls_are_refused(url: str) -> None:
    with pytest.raises(AmqpConfigError, match="message_queue_url: .*pulsar-relay is not supported"):
        parse(url)


@pytest.mark.parametrize("url", ["redis://localhost", "guest:s3cret@localhost", "amqp://guest:s3cret@host:port/"])
def test_bad_urls_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(AmqpConfigError) as info:
        parse_amqp_options(url, {}, url_key="amqp_url")
    assert str(info.value).startswith("amqp_url:")
    assert "s3cret" not in str(info.value)


def test_unknown_query_parameter_is_refused() -> None:
    with pytest.raises(AmqpConfigError, match="unsupported query parameter 'foo'"):
        parse(URL + "?foo=1")


@pytest.mark.parametrize("url", ["amqp://guest:s3cret@host:5672//", "pyamqp://guest:s3cret@host//pulsar/x"])
def test_redact_url(url: str) -> None:
    assert "s3cret" not in redact_url(url)
    assert redact_url(url).startswith(url.split(":")[0] + "://guest:***@host")
    assert redact_url("amqp://host//") == "amqp://host//"


# --- TLS: the scheme, the query and the amqp_connect_ssl_* keys are merged (B14) ------------------


def test_amqps_and_ssl_query_turn_tls_on() -> None:
    assert parse("amqps://guest:pw@host//").ssl is True
    assert parse("pyamqp://guest:pw@host:5671//?ssl=1").ssl is True
    assert parse("amqp://guest:pw@host//?ssl=0").ssl is None


def test_ssl_keys_are_kept_with_ssl_query(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = parse("pyamqp://guest:pw@host:5671//?ssl=1", amqp_connect_ssl_ca_certs=str(ca),
                     amqp_connect_ssl_cert_reqs="cert_required")
    assert settings.ssl == {"ca_certs": str(ca), "cert_reqs": ssl.CERT_REQUIRED}


@pytest.mark.parametrize("value, expected", [("cert_required", ssl.CERT_REQUIRED), ("required", ssl.CERT_REQUIRED),
                                             ("CERT_NONE", ssl.CERT_NONE), ("cert_optional", ssl.CERT_OPTIONAL)])
def test_cert_reqs_upper_cased_to_ssl_constants(value: str, expected: ssl.VerifyMode) -> None:
    settings = parse(amqp_connect_ssl_cert_reqs=value)
    assert isinstance(settings.ssl, dict) or hasattr(settings.ssl, "keys")
    assert settings.ssl["cert_reqs"] == expected  # type: ignore[index]


def test_ssl_query_options_merge_with_keys(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = parse(f"amqps://guest:pw@host//?ssl_ca_certs={ca}", amqp_connect_ssl_cert_reqs="required")
    assert dict(settings.ssl) == {"ca_certs": str(ca), "cert_reqs": ssl.CERT_REQUIRED}  # type: ignore[arg-type]


def test_contradictions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AmqpConfigError, match="ssl=0 contradicts the amqps"):
        parse("amqps://guest:pw@host//?ssl=0")
    with pytest.raises(AmqpConfigError, match="ssl=0 contradicts"):
        parse("amqp://guest:pw@host//?ssl=0", amqp_connect_ssl_cert_reqs="required")
    with pytest.raises(AmqpConfigError, match="^amqp_heartbeat: 0 contradicts heartbeat=30"):
        parse(URL + "?heartbeat=30", amqp_heartbeat=0)


def test_heartbeat_from_the_query_when_the_key_is_unset() -> None:
    assert parse(URL + "?heartbeat=30").heartbeat == 30
    assert parse(URL + "?heartbeat=30", amqp_heartbeat="30").heartbeat == 30


def test_connection_url_drops_the_query() -> None:
    assert parse("amqps://guest:pw@host:5671//pulsar?ssl=1&heartbeat=10").connection_url == "amqps://guest:pw@host:5671//pulsar"


@pytest.mark.parametrize("query, key", [("?ssl=maybe", "message_queue_url ssl"), ("?heartbeat=x", "message_queue_url heartbeat"),
                                        ("?connect_timeout=-1", "message_queue_url connect_timeout")])
def test_bad_query_values_name_the_parameter(query: str, key: str) -> None:
    with pytest.raises(AmqpConfigError) as info:
        parse(URL + query)
    assert str(info.value).startswith(f"{key}:")
