"""Client managers: the factory Galaxy calls once, and `get_client` per job.

Implemented: HTTP/REST (`ClientManager` with a transport), in-process (`pulsar_app=`:
the embedded runner; requests go straight into the server's WSGI app) and message queues
(`amqp_url`: `MessageQueueClientManager`, see `pulsar.client.mq_manager`; needs the
optional kombu dependency, imported only then).  Not implemented, and refused with
`UnsupportedClientMode` so Galaxy fails at startup with a clear message: pulsar-relay
(`relay_url`), Kubernetes/TES/GCP co-execution (`*_enabled`), and the caller-supplied
`job_manager`.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, overload

from pulsar.client.client import JobClient
from pulsar.client.destination import base_url, url_to_destination_params
from pulsar.client.exceptions import UnsupportedClientMode
from pulsar.client.http_api import HttpApi, RetryPolicy
from pulsar.client.input_cache import InputCacher, cache_enabled
from pulsar.client.mq_manager import MessageQueueClientManager
from pulsar.client.transport import Transport, WsgiTransport, get_transport

log = logging.getLogger(__name__)

EMBEDDED_URL = "http://pulsar.embedded/"
TRANSPORT_PREFIX = "transport_"


class ClientManager:
    """Builds `JobClient`s over one transport.  Holds no per-job state."""

    def __init__(self, transport: str | Transport | None = None, pulsar_app: Any = None, cache: Any = None,
                 retry: RetryPolicy | None = None, **kwds: Any):
        transport_options = {k[len(TRANSPORT_PREFIX):]: v for k, v in kwds.items() if k.startswith(TRANSPORT_PREFIX)}
        #: The input-cache threads when caching is on (`cache`, else PULSAR_CACHE_TRANSFERS).
        self.cacher: InputCacher | None = None
        if cache_enabled(cache):
            log.info("pulsar client: inputs go through the server's file cache")
            self.cacher = InputCacher(kwds.get("transfer_threads"))
        self.pulsar_app = pulsar_app
        self.retry = retry or RetryPolicy()
        if pulsar_app is not None:
            # embedded mode: the server lives in-process and serves its own WSGI app
            self.transport: Transport = WsgiTransport(pulsar_app.wsgi_app())
            self._embedded_token = getattr(pulsar_app, "private_token", None)
        elif isinstance(transport, str) or transport is None:
            self.transport = get_transport(transport, timeout=transport_options.get("timeout"))
        else:
            self.transport = transport

    def get_client(self, destination_params: Mapping[str, Any] | str, job_id: str, **kwargs: Any) -> JobClient:
        """A client for one job.  `kwargs` (Galaxy: `files_endpoint`, `token_endpoint`,
        `env`) are merged over the destination params."""
        if isinstance(destination_params, str):
            params: dict[str, Any] = url_to_destination_params(destination_params)
        else:
            params = dict(destination_params)
        params.update(kwargs)
        if self.pulsar_app is not None:
            url_params = {"url": EMBEDDED_URL, "manager": params.get("manager")}
            token = self._embedded_token
        else:
            url_params = params
            token = params.get("private_token")
        for key in ("k8s_enabled", "tes_url", "project_id"):
            if params.get(key):
                raise UnsupportedClientMode(
                    f"destination parameter {key!r} selects co-execution, which this pulsar.client does not implement"
                )
        api = HttpApi(base_url(url_params), self.transport, private_token=token, retry=self.retry)
        return JobClient(params, str(job_id), api, cacher=self.cacher)

    def shutdown(self, ensure_cleanup: bool = False) -> None:
        """Stop the input-cache threads, if any (HTTP clients own no others)."""
        if self.cacher is not None:
            self.cacher.shutdown()


_RelayArgs = str | None  # the relay_* parameters (refused; kept for Galaxy's signature)


@overload
def build_client_manager(
    job_manager: Any = None, relay_url: _RelayArgs = None, relay_username: _RelayArgs = None,
    relay_password: _RelayArgs = None, relay_topic_prefix: _RelayArgs = None, relay_refresh_token: _RelayArgs = None,
    amqp_url: None = None, k8s_enabled: bool | None = None, tes_enabled: bool | None = None,
    gcp_batch_enabled: bool | None = None, **kwargs: Any,
) -> ClientManager: ...


@overload
def build_client_manager(
    job_manager: Any = None, relay_url: _RelayArgs = None, relay_username: _RelayArgs = None,
    relay_password: _RelayArgs = None, relay_topic_prefix: _RelayArgs = None, relay_refresh_token: _RelayArgs = None,
    *, amqp_url: str, k8s_enabled: bool | None = None, tes_enabled: bool | None = None,
    gcp_batch_enabled: bool | None = None, **kwargs: Any,
) -> MessageQueueClientManager: ...


def build_client_manager(
    job_manager: Any = None,
    relay_url: str | None = None,
    relay_username: str | None = None,
    relay_password: str | None = None,
    relay_topic_prefix: str | None = None,
    relay_refresh_token: str | None = None,
    amqp_url: str | None = None,
    k8s_enabled: bool | None = None,
    tes_enabled: bool | None = None,
    gcp_batch_enabled: bool | None = None,
    **kwargs: Any,
) -> ClientManager | MessageQueueClientManager:
    """Pick the client manager for Galaxy's runner kwargs (see the module docstring).

    Galaxy always passes `manager`, `cache`, `transport`, `persistence_directory`, plus any
    configured `transport_*` (e.g. `transport_timeout`) or `amqp_*` params, and `pulsar_app`
    when embedded.  With `amqp_url` the result is `MessageQueueClientManager(amqp_url,
    **kwargs)`; its option errors (`AmqpConfigError`, a `ValueError`) name the bad key.
    """
    if job_manager is not None:
        raise UnsupportedClientMode("build_client_manager(job_manager=...) is not supported; pass pulsar_app= for in-process use")
    if relay_url:
        raise UnsupportedClientMode("pulsar-relay client managers (relay_url) are not implemented by this pulsar.client")
    if k8s_enabled or tes_enabled or gcp_batch_enabled:
        raise UnsupportedClientMode("Kubernetes/TES/GCP co-execution client managers are not implemented by this pulsar.client")
    if amqp_url:
        return MessageQueueClientManager(amqp_url, **kwargs)
    ignored = {"manager", "persistence_directory"}
    options = {k: v for k, v in kwargs.items() if k not in ignored and not k.startswith(("amqp_", "relay_"))}
    return ClientManager(**options)
