"""The default transport: `http.client` with kept-alive connections, one set per thread.

Why not `requests` by default: Galaxy talks to Pulsar in many small requests (setup, uploads,
submit, a status poll every few seconds per job, downloads, clean), and on this kind of
machine `requests` costs about 0.8 ms of client CPU per small request against 0.15 ms for
`http.client` on a kept-alive connection (`/healthz` on loopback, 2,000 requests).  Galaxy's
job handlers pay that for every job.

What `requests` gives that this does not, and how it is kept:
* proxies: an origin for which the environment names a proxy (`*_proxy`, minus `no_proxy`)
  is sent through the `requests` transport (`urllib` if requests is not installed);
* CA bundles: `REQUESTS_CA_BUNDLE` or `CURL_CA_BUNDLE` name the CA file, as with requests;
  otherwise the system's trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR` apply);
* proxy settings are read once per origin: a change of `*_proxy` after the first request to
  a server is seen by new transports only (the requests transport caches the same way);
* stale connections: a kept-alive connection the server closed while idle is noticed before
  reuse, and a request that fails on a reused connection before any answer is sent once
  more on a fresh one (its body rewound).
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
import urllib.request
from typing import Mapping
from urllib.parse import urlsplit

from pulsar.client.exceptions import PulsarClientTransportError
from pulsar.client.transport.base import FileBody, HttpRequest, HttpResponse, Transport, lower_headers

Origin = tuple[str, str, int]

#: Failures that mean "the server had closed this kept-alive connection".
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def _failure(exc: BaseException, what: str) -> PulsarClientTransportError:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        code = PulsarClientTransportError.TIMEOUT
    elif isinstance(exc, ConnectionRefusedError):
        code = PulsarClientTransportError.CONNECTION_REFUSED
    else:
        code = PulsarClientTransportError.UNKNOWN
    return PulsarClientTransportError(code, transport_message=f"{what}: {exc}")


class _Response:
    """A response read straight from the connection; the connection goes back to the pool
    when the body was read to its end, and is closed otherwise."""

    def __init__(self, raw: http.client.HTTPResponse, connection: http.client.HTTPConnection,
                 release: "_ThreadPool", origin: Origin):
        self._raw = raw
        self._connection: http.client.HTTPConnection | None = connection
        self._release = release
        self._origin = origin
        self.status = raw.status
        self.headers: Mapping[str, str] = lower_headers(raw.getheaders())

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._raw.read() if size is None or size < 0 else self._raw.read(size)
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise _failure(exc, "reading response failed") from exc
        self._release_if_done()
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        try:
            count = self._raw.readinto(buffer)
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise _failure(exc, "reading response failed") from exc
        self._release_if_done()
        return count

    def _release_if_done(self) -> None:
        if self._connection is not None and self._raw.isclosed():
            connection, self._connection = self._connection, None
            if self._raw.will_close:
                connection.close()
            else:
                self._release.give_back(self._origin, connection)

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        self._release_if_done()
        if self._connection is not None:  # body not read to its end: the connection is unusable
            self._raw.close()
            self._drop()


class _ThreadPool:
    """Idle connections of one thread, by origin."""

    def __init__(self) -> None:
        self.idle: dict[Origin, list[http.client.HTTPConnection]] = {}

    def take(self, origin: Origin) -> http.client.HTTPConnection | None:
        connections = self.idle.get(origin)
        while connections:
            connection = connections.pop()
            if _still_open(connection):
                return connection
            connection.close()
        return None

    def give_back(self, origin: Origin, connection: http.client.HTTPConnection) -> None:
        self.idle.setdefault(origin, []).append(connection)


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection should have nothing to read; readable means the server
    closed it (EOF) or broke the protocol."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _tls_context() -> ssl.SSLContext:
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
    return ssl.create_default_context(cafile=bundle)


class HttpClientTransport:
    def __init__(self, timeout: float | None = None):
        self.timeout = timeout
        self._local = threading.local()
        self._tls: ssl.SSLContext | None = None
        self._proxied: dict[Origin, bool] = {}
        self._fallback: Transport | None = None
        self._lock = threading.Lock()

    def _pool(self) -> _ThreadPool:
        pool: _ThreadPool | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = _ThreadPool()
            self._local.pool = pool
        return pool

    def _connect(self, origin: Origin) -> http.client.HTTPConnection:
        scheme, host, port = origin
        if scheme == "https":
            with self._lock:
                if self._tls is None:
                    self._tls = _tls_context()
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._tls)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)  # sets TCP_NODELAY itself

    def _uses_proxy(self, origin: Origin) -> bool:
        known = self._proxied.get(origin)
        if known is None:
            scheme, host, port = origin
            proxies = urllib.request.getproxies()
            known = scheme in proxies and not urllib.request.proxy_bypass(f"{host}:{port}")
            self._proxied[origin] = known
        return known

    def _proxy_transport(self) -> Transport:
        with self._lock:
            if self._fallback is None:
                try:
                    from pulsar.client.transport.requests_transport import RequestsTransport

                    self._fallback = RequestsTransport(timeout=self.timeout)
                except ImportError:
                    from pulsar.client.transport.urllib_transport import UrllibTransport

                    self._fallback = UrllibTransport(timeout=self.timeout)
            return self._fallback

    def send(self, request: HttpRequest) -> HttpResponse:
        parts = urlsplit(request.url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise PulsarClientTransportError(PulsarClientTransportError.UNKNOWN,
                                             transport_message=f"cannot send to {request.url.split('?', 1)[0]!r}")
        origin: Origin = (scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80))
        if self._uses_proxy(origin):
            return self._proxy_transport().send(request)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Accept-Encoding": "identity", **request.headers}
        body = request.body
        if body is not None:
            headers["Content-Length"] = str(len(body))
            headers.setdefault("Content-Type", "application/octet-stream")
        elif request.method in ("POST", "PUT"):
            headers["Content-Length"] = "0"
        pool = self._pool()
        while True:
            connection = pool.take(origin)
            reused = connection is not None
            if connection is None:
                connection = self._connect(origin)
            try:
                _send_request(connection, request.method, target, headers, body)
                raw = connection.getresponse()
            except _STALE as exc:
                connection.close()
                if reused:  # the server had closed it while idle: once more on a fresh one
                    if isinstance(body, FileBody):
                        body.rewind()
                    continue
                raise _failure(exc, "no response") from exc
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                raise _failure(exc, "no response") from exc
            return _Response(raw, connection, pool, origin)


def _send_request(connection: http.client.HTTPConnection, method: str, target: str, headers: dict[str, str],
                  body: bytes | FileBody | None) -> None:
    connection.putrequest(method, target, skip_accept_encoding=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    if isinstance(body, FileBody):
        connection.endheaders()
        for block in body.blocks():
            connection.send(block)
    else:
        connection.endheaders(message_body=body or None)  # head and a small body in one send


__all__ = ["HttpClientTransport"]
