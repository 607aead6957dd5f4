"""Big-file staging: one input uploaded and one output downloaded through a client library,
with the server's RSS sampled during each leg and the SHA-256 checked afterwards."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from bench.clients import ClientKind, run_driver
from bench.sampling import MIB, Sampler
from bench.servers import BenchServer

BLOCK = 4 * MIB


def make_input(path: Path, size: int) -> str:
    """Write `size` random bytes (incompressible, so nothing can cheat) and return the SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        remaining = size
        while remaining > 0:
            block = os.urandom(min(BLOCK, remaining))
            handle.write(block)
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest()


def run_transfer(server: BenchServer, client: ClientKind, input_path: Path, sha256: str, size: int,
                 workdir: Path, job_id: str) -> dict:
    os.sync()  # start from a clean page cache, not with the last run's write-back pending
    spec = {"mode": "transfer", "url": server.url, "job_id": job_id, "input_path": str(input_path),
            "sha256": sha256}
    with Sampler({"server": list(server.server_processes)}, interval=0.02) as sampler:
        result = run_driver(client, spec, workdir, sampler=sampler)
    upload = tuple(result["upload"])
    download = tuple(result["download"])
    return {
        "upload_MBps": size / (upload[1] - upload[0]) / 1e6,
        "download_MBps": size / (download[1] - download[0]) / 1e6,
        "server_rss_growth_upload_MiB": sampler.growth("server", upload) / MIB,
        "server_rss_growth_download_MiB": sampler.growth("server", download) / MIB,
        "client_peak_rss_upload_MiB": sampler.peak("client", upload) / MIB,
        "client_peak_rss_download_MiB": sampler.peak("client", download) / MIB,
        "checksum_ok": bool(result["checksum_ok"]),
        "ok": bool(result["ok"]),
        "detail": {k: result[k] for k in ("status", "failures", "bytes")},
    }
