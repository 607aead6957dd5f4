"""Transport over the `requests` library (the default when it is installed)."""

from __future__ import annotations

import threading
from typing import Any, Mapping

import requests

from pulsar.client.exceptions import PulsarClientTransportError
from pulsar.client.transport.base import HttpRequest, lower_headers


class _RequestsResponse:
    def __init__(self, response: requests.Response):
        self._response = response
        self.status = response.status_code
        self.headers: Mapping[str, str] = lower_headers(response.headers)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def read(self, size: int = -1) -> bytes:
        try:
            return self._response.raw.read(None if size < 0 else size, decode_content=True) or b""
        except Exception as exc:  # urllib3 raises its own family mid-body
            raise PulsarClientTransportError(
                PulsarClientTransportError.UNKNOWN, transport_message=f"reading response failed: {exc}"
            ) from exc

    def close(self) -> None:
        self._response.close()


class RequestsTransport:
    """One `requests.Session` per thread (connection reuse; sessions are not thread-safe)."""

    def __init__(self, timeout: float | None = None):
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
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
