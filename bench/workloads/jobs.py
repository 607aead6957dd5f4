"""Many small jobs (throughput, latency, server CPU per job) and exit -> `complete` latency."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.clients import ClientKind, run_driver
from bench.sampling import cpu_split
from bench.servers import BenchServer


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation; fine for the sample sizes used here)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def run_trivial_jobs(server: BenchServer, client: ClientKind, count: int, concurrency: int,
                     poll_interval: float, workdir: Path, id_prefix: str) -> dict:
    spec = {"mode": "jobs", "url": server.url, "count": count, "concurrency": concurrency,
            "poll_interval": poll_interval, "id_prefix": id_prefix}
    user_before, system_before = cpu_split(server.server_processes)
    result = run_driver(client, spec, workdir)
    user_after, system_after = cpu_split(server.server_processes)
    system_used = system_after - system_before
    cpu_used = user_after - user_before + system_used
    return {
        **throughput_summary(result, count),
        "server_cpu_ms_per_job": cpu_used * 1000 / count,
        "server_system_cpu_ms_per_job": system_used * 1000 / count,
        "failed": result["failed"],
        "ok": result["failed"] == 0,
        "failure_examples": result["failure_examples"],
    }


def throughput_summary(result: dict, count: int) -> dict:
    """Rate over the driver's window, per-job latency p50/p90 and the client's CPU per job."""
    start, end = result["window"]
    latencies = result["latencies"]
    return {
        "jobs_per_s": count / (end - start),
        "latency_p50_ms": percentile(latencies, 0.5) * 1000,
        "latency_p90_ms": percentile(latencies, 0.9) * 1000,
        "client_cpu_ms_per_job": result["client_cpu_s"] * 1000 / count,
    }


def run_exit_latency(server: BenchServer, client: ClientKind, count: int, poll_interval: float,
                     workdir: Path, id_prefix: str) -> dict:
    spec = {"mode": "exit_latency", "url": server.url, "count": count, "poll_interval": poll_interval,
            "job_sleep": 0.05, "id_prefix": id_prefix}
    return exit_latency_summary(run_driver(client, spec, workdir), "exit_to_complete")


def exit_latency_summary(result: dict, name: str) -> dict:
    """A driver's exit-latency result (seconds per job, problems) as `<name>_p50_ms` etc."""
    latencies = result["latencies"]
    return {
        f"{name}_p50_ms": percentile(latencies, 0.5) * 1000,
        f"{name}_p90_ms": percentile(latencies, 0.9) * 1000,
        f"{name}_mean_ms": (statistics.fmean(latencies) * 1000) if latencies else float("nan"),
        "failed": result["failed"],
        "ok": result["failed"] == 0,
        "problems": result["problems"],
    }
