"""What integrity costs: the server's `Repr-Digest` for a download, and sha256 itself.

Our server answers `Want-Repr-Digest: sha-256` by hashing the file once (sendfile cannot hash
on the way) and remembers the digest per file version.  Measured on our server only (the
reference has no digests), with the harness as a bare HTTP client that reads into one
buffer and keeps nothing, so the client side costs next to nothing:

* the same 1 GiB output downloaded without a digest, with one computed for this request
  (first time), and with the remembered one (again);
* sha256 over an in-memory buffer, the machine's hashing ceiling (our client hashes every
  download and upload while streaming; the server hashes every upload the same way).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import time
import urllib.parse
from pathlib import Path

from bench.sampling import MIB
from bench.servers import TOKEN, BenchServer, request

BLOCK = MIB


def sha256_ceiling(size: int) -> float:
    """MB/s of hashlib's sha256 over `size` bytes of an in-memory buffer."""
    block = os.urandom(4 * MIB)
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(max(size // len(block), 1)):
        digest.update(block)
    return max(size // len(block), 1) * len(block) / (time.perf_counter() - started) / 1e6


def _upload_output(port: int, job_id: str, name: str, path: Path) -> None:
    query = urllib.parse.urlencode({"name": name, "type": "output", "private_token": TOKEN})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        size = path.stat().st_size
        connection.putrequest("POST", f"/jobs/{job_id}/files?{query}")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        with open(path, "rb") as handle:
            while block := handle.read(BLOCK):
                connection.send(block)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"staging the output failed: HTTP {response.status}")
    finally:
        connection.close()


def _timed_download(port: int, job_id: str, name: str, want_digest: bool) -> tuple[float, str | None]:
    """Seconds from request to last byte; the `Repr-Digest` the server sent, if any."""
    query = urllib.parse.urlencode({"name": name, "type": "output", "private_token": TOKEN})
    headers = {"Want-Repr-Digest": "sha-256=9"} if want_digest else {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    buffer = memoryview(bytearray(BLOCK))
    try:
        started = time.perf_counter()
        connection.request("GET", f"/jobs/{job_id}/files?{query}", headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"download failed: HTTP {response.status}")
        while response.readinto(buffer):
            pass
        return time.perf_counter() - started, response.getheader("Repr-Digest")
    finally:
        connection.close()


def run_digest_cost(server: BenchServer, input_path: Path, sha256: str, job_id: str) -> dict:
    """Stage `input_path` as an output of a fresh job, then download it three ways."""
    size = input_path.stat().st_size
    status, body = request(server.port, "POST", "/jobs", {"job_id": job_id})
    if status != 200:
        raise RuntimeError(f"setup failed: HTTP {status} {body[:200]!r}")
    _upload_output(server.port, job_id, "digest.dat", input_path)
    time.sleep(0.2)  # past the digest cache's racy window, as for any output a job wrote earlier
    plain, plain_digest = _timed_download(server.port, job_id, "digest.dat", False)
    first, first_digest = _timed_download(server.port, job_id, "digest.dat", True)
    again, again_digest = _timed_download(server.port, job_id, "digest.dat", True)
    request(server.port, "DELETE", f"/jobs/{job_id}")
    return {
        "download_plain_MBps": size / plain / 1e6,
        "download_digest_first_MBps": size / first / 1e6,
        "download_digest_cached_MBps": size / again / 1e6,
        "ok": plain_digest is None and first_digest == again_digest == _repr_digest(sha256),
    }


def _repr_digest(sha256_hex: str) -> str:
    return "sha-256=:" + base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii") + ":"
