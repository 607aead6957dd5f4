"""The `amqp_*` options and the broker URL, parsed once into an immutable `AmqpSettings`.

Both sides (the server's app.yml keys and Galaxy's runner parameters) pass the same option
names (spec §5, §6.1).  Parsing is strict, because a misspelt or mis-typed option that is
silently ignored changes delivery guarantees without anyone noticing:

* an unknown `amqp_*` key, a value of the wrong type or range, or an unsupported URL
  scheme or query parameter raises `AmqpConfigError`, whose one-line message starts with
  the offending key;
* values may be strings (INI files, environment overrides): booleans are parsed as words
  (`"false"` is false, unlike the reference's truthiness, B15);
* the URL query (`?ssl=1`, `?ssl_<x>=`, `?heartbeat=N`) is merged with the
  `amqp_connect_ssl_*` / `amqp_heartbeat` keys instead of silently overriding them (B14);
  two different values for the same setting are refused.

Nothing here logs or raises with the URL's password in it (see `redact_url`).
"""

from __future__ import annotations

import math
import ssl as ssl_module
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pulsar.util import flags

SCHEMES = ("amqp", "amqps", "pyamqp")
DEFAULT_HEARTBEAT = 580
DEFAULT_RETRY_POLICY: Mapping[str, float] = MappingProxyType(
    {"max_retries": 5, "interval_start": 1.0, "interval_step": 2.0, "interval_max": 30.0}
)
#: Seconds a publish waits for the broker's confirm before it counts as failed.
DEFAULT_CONFIRM_TIMEOUT = 30.0

#: `amqp_connect_ssl_<x>` / `?ssl_<x>=` names py-amqp understands (its `ssl` dict).
SSL_KEYS = ("ca_certs", "certfile", "keyfile", "cert_reqs", "server_hostname", "ciphers")
_SSL_FILES = ("ca_certs", "certfile", "keyfile")
_RETRY_KEYS = ("max_retries", "interval_start", "interval_step", "interval_max")
_PUBLISH_KEYS = ("priority", "delivery_mode", "timeout", "confirm_timeout")
_HEARTBEAT_OFF = frozenset({"0", "false", "off", "none", "no", ""})
_MISSPELLINGS = {"amqp_republish_time": "amqp_ack_republish_time"}


class AmqpConfigError(ValueError):
    """An AMQP option or the broker URL is unusable; the message names the key, in one line."""


@dataclass(frozen=True)
class AmqpSettings:
    """Everything `PulsarExchange` needs, validated.  Build it with `parse_amqp_options`.

    `ssl` is None (plain AMQP), True (TLS with default verification against the system CA
    store) or the py-amqp `ssl` dict (TLS with those options).  `publish_options` always
    holds `priority`, `delivery_mode` and `confirm_timeout`.
    """

    url: str
    key_prefix: str | None = None
    durable: bool = True
    heartbeat: int = DEFAULT_HEARTBEAT
    consumer_timeout: float | None = 0.2
    acknowledge: bool = False
    ack_republish_time: float = 30.0
    publish_retry: bool = False
    publish_retry_policy: Mapping[str, float] = field(default_factory=lambda: DEFAULT_RETRY_POLICY)
    publish_options: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType(
            {"priority": 0, "delivery_mode": 2, "confirm_timeout": DEFAULT_CONFIRM_TIMEOUT}
        )
    )
    ssl: Mapping[str, Any] | bool | None = None
    persistence_directory: Path | None = None
    connect_timeout: float = 5.0

    @property
    def acks_enabled(self) -> bool:
        """True when this side requests acks: `amqp_acknowledge` and a persistence directory (spec §3.6)."""
        return self.acknowledge and self.persistence_directory is not None

    @property
    def connection_url(self) -> str:
        """The URL without its query: what kombu is given (the query is already in the fields)."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)


def redact_url(url: str) -> str:
    """`url` with its password replaced by `***` (amqp://guest:***@host:5672//); never raises."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostport}{slash}{tail}"


def parse_bool(value: Any, key: str) -> bool:
    """A boolean option (`pulsar.util.flags.parse_bool`), its error an AmqpConfigError."""
    try:
        return flags.parse_bool(value, key)
    except ValueError as exc:
        raise AmqpConfigError(str(exc)) from None


def parse_amqp_options(
    url: str,
    options: Mapping[str, Any],
    *,
    persistence_directory: str | Path | None = None,
    url_key: str = "message_queue_url",
) -> AmqpSettings:
    """Validate the broker URL and every `amqp_*` key of `options` (other keys are ignored).

    `url_key` only names the URL in error messages (`amqp_url` on Galaxy's side).  Raises
    `AmqpConfigError` for an unknown `amqp_*` key, a bad value, a non-AMQP URL (`http(s)://`
    would select pulsar-relay, which is not supported) or a URL query that contradicts a key.
    A None value means "not set", except for `amqp_consumer_timeout` where it means "block".
    """
    given = {key: value for key, value in options.items() if key.startswith("amqp_")}
    if given.get("amqp_url") == url:  # the URL itself, passed along with the other amqp_* params
        del given["amqp_url"]
    _check_known(given)
    scheme, query = _split_url(url, url_key)

    durable = _opt(given, "amqp_durable", parse_bool, True)
    heartbeat = _merge_heartbeat(given, query, url_key)
    consumer_timeout: float | None = 0.2
    if "amqp_consumer_timeout" in given:
        consumer_timeout = _consumer_timeout(given["amqp_consumer_timeout"])
    retry_policy = {name: _opt(given, f"amqp_publish_retry_{name}", _retry_value(name), None) for name in _RETRY_KEYS}
    explicit_policy = {name: value for name, value in retry_policy.items() if value is not None}
    retry = _opt(given, "amqp_publish_retry", parse_bool, None)
    if retry is None:
        retry = bool(explicit_policy)  # setting any retry_* key implies retry (spec §5)
    return AmqpSettings(
        url=url,
        key_prefix=_opt(given, "amqp_key_prefix", _string, None),
        durable=durable,
        heartbeat=heartbeat,
        consumer_timeout=consumer_timeout,
        acknowledge=_opt(given, "amqp_acknowledge", parse_bool, False),
        ack_republish_time=_opt(given, "amqp_ack_republish_time", _positive_float, 30.0),
        publish_retry=retry,
        publish_retry_policy=MappingProxyType({**DEFAULT_RETRY_POLICY, **explicit_policy}),
        publish_options=MappingProxyType(_publish_options(given, durable)),
        ssl=_merge_ssl(scheme, given, query, url_key),
        persistence_directory=Path(persistence_directory) if persistence_directory else None,
        connect_timeout=_query_value(query, "connect_timeout", url_key, _positive_float, 5.0),
    )


# --- keys ------------------------------------------------------------------------------------


#: Every `amqp_*` option (the options schema, pulsar.options, lists them as one family).
KNOWN_KEYS = frozenset(
    {"amqp_key_prefix", "amqp_durable", "amqp_heartbeat", "amqp_consumer_timeout", "amqp_acknowledge",
     "amqp_ack_republish_time", "amqp_publish_retry"}
    | {f"amqp_publish_retry_{name}" for name in _RETRY_KEYS}
    | {f"amqp_publish_{name}" for name in _PUBLISH_KEYS}
    | {f"amqp_connect_ssl_{name}" for name in SSL_KEYS}
)


def _is_known(key: str) -> bool:
    return key in KNOWN_KEYS


def _check_known(given: Mapping[str, Any]) -> None:
    for key in sorted(given):
        if not _is_known(key):
            hint = f" (did you mean {_MISSPELLINGS[key]}?)" if key in _MISSPELLINGS else ""
            raise AmqpConfigError(f"{key}: unknown AMQP option{hint}")


def _opt(given: Mapping[str, Any], key: str, convert: Any, default: Any) -> Any:
    value = given.get(key)
    if value is None:
        return default
    try:
        return convert(value, key)
    except AmqpConfigError:
        raise
    except (TypeError, ValueError):
        raise AmqpConfigError(f"{key}: invalid value {value!r}") from None


# --- values ----------------------------------------------------------------------------------


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise AmqpConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise AmqpConfigError(f"{key}: expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise AmqpConfigError(f"{key}: expected a finite number, got {value!r}")
    return number


def _positive_float(value: Any, key: str) -> float:
    number = _number(value, key)
    if not number > 0:
        raise AmqpConfigError(f"{key}: must be greater than 0, got {value!r}")
    return number


def _non_negative_int(value: Any, key: str) -> int:
    number = _number(value, key)
    if number < 0 or number != int(number):
        raise AmqpConfigError(f"{key}: expected a whole number >= 0, got {value!r}")
    return int(number)


def _retry_value(name: str) -> Any:
    if name == "max_retries":
        return _non_negative_int

    def interval(value: Any, key: str) -> float:
        number = _number(value, key)
        if number < 0:
            raise AmqpConfigError(f"{key}: must be >= 0, got {value!r}")
        return number

    return interval


def _consumer_timeout(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    return float(_opt({"amqp_consumer_timeout": value}, "amqp_consumer_timeout", _positive_float, None))


def _heartbeat(value: Any, key: str) -> int:
    if value is True:
        return DEFAULT_HEARTBEAT
    if value is False or value is None:
        return 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _HEARTBEAT_OFF:
            return 0
        if word in ("true", "yes", "on"):  # not "1": that is one second
            return DEFAULT_HEARTBEAT
    return _non_negative_int(value, key)


def _delivery_mode(value: Any, key: str) -> int:
    if isinstance(value, str) and value.strip().lower() in ("transient", "persistent"):
        return 1 if value.strip().lower() == "transient" else 2
    mode = _non_negative_int(value, key)
    if mode not in (1, 2):
        raise AmqpConfigError(f"{key}: expected transient, persistent, 1 or 2, got {value!r}")
    return mode


def _priority(value: Any, key: str) -> int:
    priority = _non_negative_int(value, key)
    if priority > 255:
        raise AmqpConfigError(f"{key}: expected 0..255, got {value!r}")
    return priority


def _publish_options(given: Mapping[str, Any], durable: bool) -> dict[str, Any]:
    options: dict[str, Any] = {
        "priority": _opt(given, "amqp_publish_priority", _priority, 0),
        "delivery_mode": _opt(given, "amqp_publish_delivery_mode", _delivery_mode, 2 if durable else 1),
        "confirm_timeout": _opt(given, "amqp_publish_confirm_timeout", _positive_float, DEFAULT_CONFIRM_TIMEOUT),
    }
    timeout = _opt(given, "amqp_publish_timeout", _positive_float, None)
    if timeout is not None:
        options["timeout"] = timeout
    return options


# --- URL, heartbeat and TLS --------------------------------------------------------------------


def _split_url(url: str, url_key: str) -> tuple[str, dict[str, str]]:
    """The scheme and the query of a broker URL, both checked."""
    if not isinstance(url, str) or "://" not in url:  # not echoed: it may hold a password
        raise AmqpConfigError(f"{url_key}: expected an amqp://, amqps:// or pyamqp:// URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a non-numeric port)
    except ValueError as exc:
        raise AmqpConfigError(f"{url_key}: malformed URL {redact_url(url)} ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        raise AmqpConfigError(f"{url_key}: {scheme}:// selects pulsar-relay, and pulsar-relay is not supported")
    if scheme not in SCHEMES:
        raise AmqpConfigError(f"{url_key}: unsupported scheme {scheme!r} (use amqp://, amqps:// or pyamqp://)")
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        allowed = name in ("ssl", "heartbeat", "connect_timeout") or name.removeprefix("ssl_") in SSL_KEYS
        if not allowed:
            raise AmqpConfigError(f"{url_key}: unsupported query parameter {name!r}")
        if name in query and query[name] != value:
            raise AmqpConfigError(f"{url_key}: query parameter {name!r} given twice")
        query[name] = value
    return scheme, query


def _query_value(query: Mapping[str, str], name: str, url_key: str, convert: Any, default: Any) -> Any:
    """A URL query parameter converted like a key; errors name it `<url_key> <name>`."""
    key = f"{url_key} {name}"
    return _opt({key: query.get(name)}, key, convert, default)


def _merge_heartbeat(given: Mapping[str, Any], query: Mapping[str, str], url_key: str) -> int:
    from_key = _opt(given, "amqp_heartbeat", _heartbeat, None)
    from_url = _query_value(query, "heartbeat", url_key, _heartbeat, None)
    if from_url is None:
        return DEFAULT_HEARTBEAT if from_key is None else int(from_key)
    if from_key is not None and from_key != from_url:
        raise AmqpConfigError(
            f"amqp_heartbeat: {from_key} contradicts heartbeat={from_url} in {url_key}; set only one"
        )
    return int(from_url)


def _cert_reqs(value: Any, key: str) -> ssl_module.VerifyMode:
    if isinstance(value, ssl_module.VerifyMode):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return ssl_module.VerifyMode(value)
    name = _string(value, key).strip().upper()
    name = name if name.startswith("CERT_") else f"CERT_{name}"
    mode = getattr(ssl_module, name, None)
    if not isinstance(mode, ssl_module.VerifyMode):
        raise AmqpConfigError(f"{key}: expected cert_none, cert_optional or cert_required, got {value!r}")
    return mode


def _ssl_value(name: str, value: Any, key: str) -> Any:
    if name == "cert_reqs":
        return _cert_reqs(value, key)
    text = _string(value, key)
    if name in _SSL_FILES and not Path(text).is_file():
        raise AmqpConfigError(f"{key}: no such file {text!r}")
    return text


def _merge_ssl(scheme: str, given: Mapping[str, Any], query: Mapping[str, str], url_key: str) -> Mapping[str, Any] | bool | None:
    """TLS settings from the scheme, `?ssl=`, `?ssl_<x>=` and `amqp_connect_ssl_<x>`, merged.

    Any TLS option turns TLS on (as a kombu `ssl` dict does); `?ssl=0` together with
    `amqps://` or a TLS option is a contradiction and refused.
    """
    wanted: bool | None = None
    if "ssl" in query:
        wanted = _query_value(query, "ssl", url_key, parse_bool, None)
    if scheme == "amqps":
        if wanted is False:
            raise AmqpConfigError(f"{url_key}: ssl=0 contradicts the amqps:// scheme")
        wanted = True
    options: dict[str, Any] = {}
    for name in SSL_KEYS:
        key = f"amqp_connect_ssl_{name}"
        from_key = _ssl_value(name, given[key], key) if given.get(key) is not None else None
        from_url = _ssl_value(name, query[f"ssl_{name}"], f"{url_key} ssl_{name}") if f"ssl_{name}" in query else None
        if from_key is not None and from_url is not None and from_key != from_url:
            raise AmqpConfigError(f"{key}: contradicts ssl_{name} in {url_key}; set only one")
        value = from_key if from_key is not None else from_url
        if value is not None:
            options[name] = value
    if options:
        if wanted is False:
            raise AmqpConfigError(f"{url_key}: ssl=0 contradicts the amqp_connect_ssl_* options")
        return MappingProxyType(options)
    return True if wanted else None
