"""Functional probes: HTTP features a Pulsar client or proxy may use that depend on the host,
not on our application.  Each probe returns "ok" or a short description of what went wrong;
none raises, so a host that lacks a feature gets a note in the table instead of a crash.

* `chunked_upload`: an upload with `Transfer-Encoding: chunked` (no Content-Length); the
  app needs the host to de-chunk and terminate `wsgi.input` (`wsgi.input_terminated`);
* `expect_100`: an upload with `Expect: 100-continue`: does the host send the interim
  `100 Continue` (curl and some proxies wait ~1 s for it) and then accept the body?
* `range`: a download with `Range: bytes=10-19` (the app answers 206; the host must pass it);
* `long_query`: a 64 KiB query string (submit parameters travel in the query string and
  grow with the command line and staging description).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import time
import urllib.parse

from bench.servers import TOKEN

TIMEOUT = 30.0


def _query(**params: str) -> str:
    return urllib.parse.urlencode({**params, "private_token": TOKEN})


def setup_job(port: int, job_id: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("POST", f"/jobs?{_query(job_id=job_id)}", headers={"Content-Length": "0"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"setup answered {response.status}: {body[:200]!r}")
    finally:
        connection.close()


def _upload(port: int, job_id: str, name: str, payload: bytes, kind: str = "output") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("POST", f"/jobs/{job_id}/files?{_query(name=name, type=kind)}", body=payload,
                           headers={"Content-Length": str(len(payload))})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _download(port: int, job_id: str, name: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", f"/jobs/{job_id}/files?{_query(name=name, type='output')}", headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _stored(body: bytes) -> tuple[int | None, str | None]:
    """(size, sha256) from an upload's JSON answer."""
    try:
        document = json.loads(body)
    except ValueError:
        return None, None
    return document.get("size"), document.get("sha256")


def clean_job(port: int, job_id: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("DELETE", f"/jobs/{job_id}?{_query()}")
        connection.getresponse().read()
    except OSError:
        pass
    finally:
        connection.close()


def probe_chunked_upload(port: int, job_id: str) -> str:
    blocks = [os.urandom(64 * 1024) for _ in range(3)]
    expected = hashlib.sha256(b"".join(blocks)).hexdigest()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.putrequest("POST", f"/jobs/{job_id}/files?{_query(name='chunked.dat', type='input')}")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        for block in blocks:
            connection.send(b"%x\r\n%s\r\n" % (len(block), block))
        connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        body = response.read()
    except OSError as exc:
        return f"connection error {type(exc).__name__}: {exc}"
    finally:
        connection.close()
    if response.status != 200:
        return f"HTTP {response.status}: {body[:120].decode(errors='replace')}"
    size, sha256 = _stored(body)
    if sha256 != expected:
        return f"stored {size} of {sum(map(len, blocks))} bytes"
    return "ok"


def probe_expect_100(port: int, job_id: str) -> str:
    """Raw socket: send headers, wait up to 3 s for `100 Continue`, then the body."""
    payload = os.urandom(256 * 1024)
    head = (f"POST /jobs/{job_id}/files?{_query(name='expect.dat', type='input')} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nContent-Length: {len(payload)}\r\nExpect: 100-continue\r\n"
            "Connection: close\r\n\r\n").encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(head)
            sock.settimeout(3.0)
            started = time.monotonic()
            try:
                interim = sock.recv(4096)
            except TimeoutError:
                interim = b""
            waited = time.monotonic() - started
            sock.settimeout(TIMEOUT)
            got_continue = interim.startswith(b"HTTP/1.1 100")
            if interim and not got_continue:
                first_line = interim.split(b"\r\n", 1)[0].decode(errors="replace")
                return f"answered before the body: {first_line}"
            sock.sendall(payload)
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except OSError as exc:
        return f"connection error {type(exc).__name__}: {exc}"
    reply = b"".join(chunks)
    status_line = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200 " not in status_line + " ":
        return f"final answer {status_line!r}"
    size, _sha256 = _stored(reply.split(b"\r\n\r\n", 1)[-1])
    if size != len(payload):
        return f"stored size {size}, sent {len(payload)}"
    return "ok" if got_continue else f"no 100 Continue (client waited {waited:.1f} s), then ok"


def probe_range(port: int, job_id: str) -> str:
    payload = os.urandom(4096)
    status, body = _upload(port, job_id, "range.dat", payload)
    if status != 200:
        return f"upload HTTP {status}"
    status, content = _download(port, job_id, "range.dat", {"Range": "bytes=10-19"})
    if status == 206 and content == payload[10:20]:
        return "ok"
    return f"HTTP {status}, {len(content)} bytes"


def probe_long_query(port: int, job_id: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", f"/jobs/{job_id}/status?{_query(pad='x' * 64 * 1024)}")
        response = connection.getresponse()
        response.read()
    except OSError as exc:
        return f"connection error {type(exc).__name__}: {exc}"
    finally:
        connection.close()
    return "ok" if response.status == 200 else f"HTTP {response.status}"


PROBES = {
    "chunked_upload": probe_chunked_upload,
    "expect_100": probe_expect_100,
    "range": probe_range,
    "long_query": probe_long_query,
}


def run_probes(port: int, job_id: str) -> dict[str, str]:
    """Every probe against the server on `port`, on one job it sets up and cleans."""
    try:
        setup_job(port, job_id)
    except (OSError, RuntimeError) as exc:
        return {name: f"setup failed: {exc}" for name in PROBES}
    results = {}
    for name, probe in PROBES.items():
        try:
            results[name] = probe(port, job_id)
        except Exception as exc:  # a probe must never stop the benchmark
            results[name] = f"probe error {type(exc).__name__}: {exc}"
    clean_job(port, job_id)
    return results
