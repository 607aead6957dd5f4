"""Input file cache (issue 14): N jobs sharing one big input, C at a time, through a client
library with its input cache on or off; total HTTP bytes the client sent and received and
the wall time from the first setup to the last finished job."""

from __future__ import annotations

from pathlib import Path

from bench.clients import ClientKind, run_driver
from bench.servers import BenchServer

#: Jobs in flight at once (Galaxy's runner works several jobs at a time).
CONCURRENCY = 4


def run_shared_input(server: BenchServer, client: ClientKind, input_path: Path, count: int, cache: bool,
                     workdir: Path, id_prefix: str) -> dict:
    spec = {"mode": "shared_input", "url": server.url, "count": count, "concurrency": CONCURRENCY,
            "poll_interval": 0.05, "id_prefix": id_prefix, "input_path": str(input_path), "cache": cache}
    result = run_driver(client, spec, workdir)
    start, end = result["window"]
    return {
        "wire_MB": (result["sent"] + result["received"]) / 1e6,
        "wall_s": end - start,
        "client_cpu_s": result["client_cpu_s"],
        "failed": result["failed"],
        "problems": result["problems"],
        "ok": result["failed"] == 0,
    }
