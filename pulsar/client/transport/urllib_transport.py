"""Transport over the standard library (`urllib.request`); no third-party dependency."""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from typing import Any, Mapping

from pulsar.client.exceptions import PulsarClientTransportError
from pulsar.client.transport.base import FileBody, HttpRequest, lower_headers


class _UrllibResponse:
    def __init__(self, raw: Any, status: int):
        self._raw = raw
        self.status = status
        self.headers: Mapping[str, str] = lower_headers(raw.headers.items())
        # `urlopen` returns http.client's response, which reads into the caller's buffer
        # straight from the socket; an HTTPError wraps it and may not.
        self._readinto = raw.readinto if isinstance(raw, http.client.HTTPResponse) else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def read(self, size: int = -1) -> bytes:
        try:
            return self._raw.read(size if size >= 0 else None) or b""
        except Exception as exc:
            raise PulsarClientTransportError(
                PulsarClientTransportError.UNKNOWN, transport_message=f"reading response failed: {exc}"
            ) from exc

    def readinto(self, buffer: bytearray | memoryview) -> int:
        if self._readinto is None:
            data = self.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)
        try:
            return self._readinto(buffer)
        except Exception as exc:
            raise PulsarClientTransportError(
                PulsarClientTransportError.UNKNOWN, transport_message=f"reading response failed: {exc}"
            ) from exc

    def close(self) -> None:
        self._raw.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class UrllibTransport:
    def __init__(self, timeout: float | None = None):
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect())

    def send(self, request: HttpRequest) -> _UrllibResponse:
        headers = {"Accept-Encoding": "identity", **request.headers}
        data: Any = request.body
        if data is not None:
            headers["Content-Length"] = str(len(data))
            headers.setdefault("Content-Type", "application/octet-stream")
            if len(data) == 0:
                data = b""
            elif isinstance(data, FileBody):
                data = data.sized_blocks()  # large blocks, not http.client's 8 KiB reads
        elif request.method in ("POST", "PUT"):
            data = b""
            headers["Content-Length"] = "0"
        raw_request = urllib.request.Request(request.url, data=data, headers=headers, method=request.method)
        try:
            raw = self._opener.open(raw_request, timeout=self.timeout)
            return _UrllibResponse(raw, raw.status)
        except urllib.error.HTTPError as error:
            return _UrllibResponse(error, error.code)
        except (socket.timeout, TimeoutError) as exc:
            raise PulsarClientTransportError(PulsarClientTransportError.TIMEOUT, transport_message=str(exc)) from exc
        except urllib.error.URLError as exc:
            code = PulsarClientTransportError.UNKNOWN
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                code = PulsarClientTransportError.TIMEOUT
            elif isinstance(exc.reason, ConnectionRefusedError):
                code = PulsarClientTransportError.CONNECTION_REFUSED
            raise PulsarClientTransportError(code, transport_message=str(exc.reason)) from exc
        except (ConnectionError, OSError) as exc:
            raise PulsarClientTransportError(PulsarClientTransportError.UNKNOWN, transport_message=str(exc)) from exc
