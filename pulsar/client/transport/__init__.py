"""Transports: `http.client` with kept-alive connections (the default), `requests`,
`urllib`, and in-process WSGI.

`get_transport(name)` picks one by the name Galaxy's `transport` runner param carries.
`curl` (the reference's pycurl transport) is not provided; it is served by `requests`,
which has the same observable behaviour plus HTTP status checking.  The default is chosen
by cost: see `http_transport`.
"""

from __future__ import annotations

import logging
import os

from pulsar.client.exceptions import UnsupportedClientMode
from pulsar.client.transport.base import FileBody, HttpRequest, HttpResponse, Transport
from pulsar.client.transport.http_transport import HttpClientTransport
from pulsar.client.transport.urllib_transport import UrllibTransport
from pulsar.client.transport.wsgi import WsgiTransport

log = logging.getLogger(__name__)

TRANSPORT_NAMES = ("http", "requests", "urllib", "curl")


def requests_available() -> bool:
    try:
        import requests  # noqa: F401
    except ImportError:
        return False
    return True


def get_transport(name: str | None = None, timeout: float | str | None = None) -> Transport:
    """Build the transport called `name` (None or "http": `HttpClientTransport`).  With no
    name, `PULSAR_CURL_TRANSPORT` set (not "0") asks for "curl", as with the reference client."""
    if name is None and os.environ.get("PULSAR_CURL_TRANSPORT", "0") not in ("", "0"):
        name = "curl"
    timeout_value = float(timeout) if timeout not in (None, "") else None
    if name in (None, "", "http"):
        return HttpClientTransport(timeout=timeout_value)
    if name in ("requests", "curl"):
        if requests_available():
            if name == "curl":
                log.info("transport 'curl' is served by the requests transport")
            from pulsar.client.transport.requests_transport import RequestsTransport

            return RequestsTransport(timeout=timeout_value)
        if name == "requests":
            raise UnsupportedClientMode("transport 'requests' needs the requests package")
        return UrllibTransport(timeout=timeout_value)  # curl without requests
    if name == "urllib":
        return UrllibTransport(timeout=timeout_value)
    raise UnsupportedClientMode(f"unknown transport {name!r}; expected one of {TRANSPORT_NAMES}")


__all__ = [
    "FileBody", "HttpClientTransport", "HttpRequest", "HttpResponse", "Transport", "UrllibTransport", "WsgiTransport",
    "get_transport",
]
