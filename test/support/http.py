"""A bare HTTP client for driving the server's REST API in tests, with Galaxy-like polling."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from typing import Any

import requests


class Api:
    """Speaks the wire protocol directly (no pulsar.client), so server tests stand alone."""

    def __init__(self, url: str, token: str | None):
        self.url = url if url.endswith("/") else url + "/"
        self.token = token
        self.session = requests.Session()

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        merged = dict(params)
        if self.token is not None:
            merged["private_token"] = self.token
        return merged

    def request(self, method: str, path: str, body: bytes | None = None, **params: Any) -> requests.Response:
        return self.session.request(method, self.url + path, params=self._params(params), data=body, timeout=60)

    def setup(self, job_id: str) -> dict[str, Any]:
        response = self.request("POST", "jobs", job_id=job_id, tool_id="t", tool_version="1")
        response.raise_for_status()
        return response.json()

    def upload(self, job_id: str, name: str, data: bytes, type: str = "input") -> dict[str, Any]:
        response = self.request("POST", f"jobs/{job_id}/files", body=data, name=name, type=type)
        response.raise_for_status()
        return response.json()

    def submit(self, job_id: str, command_line: str, **json_params: Any) -> None:
        params = {k: json.dumps(v) for k, v in json_params.items()}
        response = self.request("POST", f"jobs/{job_id}/submit", command_line=command_line, **params)
        response.raise_for_status()

    def status(self, job_id: str) -> dict[str, Any]:
        response = self.request("GET", f"jobs/{job_id}/status")
        response.raise_for_status()
        return response.json()

    def download(self, job_id: str, name: str, type: str = "output") -> bytes:
        response = self.request("GET", f"jobs/{job_id}/files", name=name, type=type)
        response.raise_for_status()
        return response.content

    def poll_until_terminal(self, job_id: str, timeout: float = 120.0, interval: float = 0.1) -> dict[str, Any]:
        """Poll as Galaxy does: transport errors (server down, restarting) just mean try again."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.status(job_id)
                if last["complete"] == "true":
                    return last
            except (requests.ConnectionError, requests.HTTPError, requests.Timeout) as exc:
                last = exc
            time.sleep(interval)
        raise AssertionError(f"job {job_id} not terminal after {timeout}s; last answer: {last!r}")


def raw_request(url: str, method: str, target: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send an exact request target (no client-side normalisation of '..' or encoding)."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            connection.putheader(key, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()
