"""Transport over the `requests` library (the default when it is installed)."""

from __future__ import annotations

import http.client
import threading
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests

from pulsar.client.exceptions import PulsarClientTransportError
from pulsar.client.transport.base import FileBody, HttpRequest, lower_headers


def _read_failed(exc: Exception) -> PulsarClientTransportError:
    return PulsarClientTransportError(
        PulsarClientTransportError.UNKNOWN, transport_message=f"reading response failed: {exc}"
    )


class _RequestsResponse:
    """A streamed response.  `readinto` fills the caller's buffer straight from the socket
    when the body is not content-encoded (urllib3's own `readinto` reads a fresh `bytes`
    and copies it, twice the memory traffic for a big download)."""

    def __init__(self, response: requests.Response):
        self._response = response
        self.status = response.status_code
        self.headers: Mapping[str, str] = lower_headers(response.headers)
        raw = response.raw
        # http.client's response under urllib3's, usable only while urllib3 has buffered
        # nothing and has nothing to decode (we ask for identity; a server may ignore that).
        fp = getattr(raw, "_fp", None)
        self._direct: http.client.HTTPResponse | None = None
        if isinstance(fp, http.client.HTTPResponse) and not self.headers.get("content-encoding") \
                and getattr(raw, "_fp_bytes_read", None) == 0:
            self._direct = fp

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def read(self, size: int = -1) -> bytes:
        if self._direct is not None:
            # Once readinto has taken bytes past urllib3, it must not read on its own.
            return self._read_direct(size)
        try:
            return self._response.raw.read(None if size < 0 else size, decode_content=True) or b""
        except Exception as exc:  # urllib3 raises its own family mid-body
            raise _read_failed(exc) from exc

    def _read_direct(self, size: int) -> bytes:
        assert self._direct is not None
        try:
            data = self._direct.read(None if size < 0 else size) or b""
        except Exception as exc:
            raise _read_failed(exc) from exc
        self._release_if_done()
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        if self._direct is None:
            data = self.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)
        try:
            count = self._direct.readinto(buffer)
        except Exception as exc:
            raise _read_failed(exc) from exc
        self._release_if_done()
        return count

    def _release_if_done(self) -> None:
        if self._direct is not None and self._direct.isclosed():
            # http.client closed itself at the end of the body: the connection is clean, so
            # hand it back to the pool for the next request (urllib3 does that only when it
            # read the body itself).
            self._response.raw.release_conn()

    def close(self) -> None:
        self._release_if_done()
        self._response.close()


class _Session(requests.Session):
    """A session that reads its environment settings once per origin, not once per request.

    With `trust_env` (the default, kept), requests scans the whole process environment for
    proxy variables twice per request (about a third of its client-side CPU per small
    request).  The result depends only on the origin (`no_proxy` matches host and port) and
    the arguments, so it is computed once per origin; a change of `*_proxy` or CA bundle
    variables after the first request to a server is seen by new sessions only.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Any, ...], dict[str, Any]] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        parts = urlsplit(str(url))
        key = (parts.scheme, parts.netloc, tuple(sorted((proxies or {}).items())), stream, verify, cert)
        settings = self._environment.get(key)
        if settings is None:
            settings = dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
            self._environment[key] = settings
        return {**settings, "proxies": dict(settings["proxies"])}


class RequestsTransport:
    """One `requests.Session` per thread (connection reuse; sessions are not thread-safe)."""

    def __init__(self, timeout: float | None = None):
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = _Session()
            self._local.session = session
        return session

    def send(self, request: HttpRequest) -> _RequestsResponse:
        headers = {"Accept-Encoding": "identity", **request.headers}
        body: Any = request.body
        if body is not None and len(body) == 0:
            body = b""  # requests would send an empty iterable chunked
        if body is not None:
            headers["Content-Length"] = str(len(body))
        elif request.method in ("POST", "PUT"):
            headers["Content-Length"] = "0"
        if isinstance(body, FileBody):
            body = body.sized_blocks()  # large blocks, not urllib3's 16 KiB reads
        try:
            response = self._session().request(
                request.method, request.url, data=body, headers=headers, stream=True, timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.Timeout as exc:
            raise PulsarClientTransportError(PulsarClientTransportError.TIMEOUT, transport_message=str(exc)) from exc
        except requests.exceptions.ConnectionError as exc:
            raise PulsarClientTransportError(
                PulsarClientTransportError.CONNECTION_REFUSED, transport_message=str(exc)
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise PulsarClientTransportError(PulsarClientTransportError.UNKNOWN, transport_message=str(exc)) from exc
        return _RequestsResponse(response)
