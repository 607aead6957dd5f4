"""Message-queue mode, harness side: trivial-job throughput and job exit -> terminal status_update.

Each runs `workloads/mq_driver.py` under the server's own client library (a subprocess, so
the reference client can live in its venv) against a server already consuming its queues,
with Galaxy's job files API played by `GalaxyStandIn` under the driver's work directory.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from bench.clients import ClientKind, run_driver
from bench.mq_servers import GalaxyStandIn, MQServer
from bench.sampling import cpu_seconds, cpu_split
from bench.workloads.jobs import exit_latency_summary, percentile, throughput_summary

MQ_DRIVER = Path(__file__).resolve().parent / "mq_driver.py"


def reaped_children_cpu(server: MQServer) -> float:
    """CPU of the processes the server started and reaped (the jobs' shells and tools)."""
    times = server.server_processes[0].cpu_times()
    return times.children_user + times.children_system


def broker_processes() -> list[psutil.Process]:
    """The RabbitMQ VM (beam.smp): its CPU over a run is the broker's share of the work (the
    broker is shared, so anything else using it at the time counts too)."""
    found = []
    for process in psutil.process_iter(["name"]):
        if process.info["name"] in ("beam.smp", "beam"):
            found.append(process)
    return found


def _spec(server: MQServer, mode: str, workdir: Path, galaxy: GalaxyStandIn, id_prefix: str) -> dict:
    return {
        "mode": mode,
        "amqp_url": server.broker_url,
        "manager": server.manager,
        "jobs_directory": str(server.staging),
        "persistence_directory": str(workdir / f"client-persist-{server.kind}"),
        "files_endpoint": galaxy.endpoint_template(),
        "id_prefix": id_prefix,
    }


def run_throughput(server: MQServer, client: ClientKind, count: int, concurrency: int, workdir: Path,
                   galaxy: GalaxyStandIn, id_prefix: str) -> dict:
    spec = {**_spec(server, "throughput", workdir, galaxy, id_prefix), "count": count, "concurrency": concurrency}
    others = {"galaxy": galaxy.processes(), "broker": broker_processes()}
    others_before = {name: cpu_seconds(processes) for name, processes in others.items()}
    user_before, system_before = cpu_split(server.server_processes)
    jobs_before = reaped_children_cpu(server)
    result = run_driver(client, spec, workdir, driver=MQ_DRIVER, timeout=300.0 + count)
    user_after, system_after = cpu_split(server.server_processes)
    jobs_used = reaped_children_cpu(server) - jobs_before
    others_used = {name: cpu_seconds(processes) - others_before[name] if all(p.is_running() for p in processes)
                   else float("nan") for name, processes in others.items()}  # nan: it restarted meanwhile
    phases = result["phases"]
    return {
        **throughput_summary(result, count),
        "server_cpu_ms_per_job": (user_after - user_before + system_after - system_before) * 1000 / count,
        "job_processes_cpu_ms_per_job": jobs_used * 1000 / count,
        "submit_p50_ms": percentile([p[0] for p in phases], 0.5) * 1000,
        "published_to_update_p50_ms": percentile([p[1] for p in phases], 0.5) * 1000,
        "finish_p50_ms": percentile([p[2] for p in phases], 0.5) * 1000,
        "galaxy_cpu_ms_per_job": others_used["galaxy"] * 1000 / count,
        "broker_cpu_ms_per_job": others_used["broker"] * 1000 / count,
        "failed": result["failed"],
        "ok": result["failed"] == 0,
        "failure_examples": result["failure_examples"],
        "updates_received": result["updates_received"],
        "duplicate_terminal_updates": result["duplicate_terminal_updates"],
    }


def run_exit_latency(server: MQServer, client: ClientKind, count: int, workdir: Path, galaxy: GalaxyStandIn,
                     id_prefix: str) -> dict:
    spec = {**_spec(server, "exit_latency", workdir, galaxy, id_prefix), "count": count, "job_sleep": 0.05}
    result = run_driver(client, spec, workdir, driver=MQ_DRIVER, timeout=300.0 + 5.0 * count)
    return exit_latency_summary(result, "exit_to_update")
