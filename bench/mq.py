"""The message-queue section of `make bench` (issue 10): our server and client against the
reference 0.16.0 pair in MQ mode, on the same RabbitMQ, in the same run.

    .venv/bin/python bench/run.py --only mq              # this section alone
    .venv/bin/python bench/run.py --only mq --quick      # small

* exit -> update: jobs in sequence whose last act is `date +%s.%N`; the figure is the client's
  receive time of the terminal `status_update` minus that stamp (same machine clock).
* throughput: `--mq-jobs` trivial jobs with 8 in flight, each server driven by its own client
  library the way Galaxy's PulsarMQJobRunner does (workloads/mq_driver.py).
* outage (ours; the reference too unless --no-reference): server RSS while updates wait for an
  unreachable broker, then all delivered (workloads/mq_outage.py).

Servers: ours `pulsar-main -c DIR`, the reference `pulsar-main -c DIR` from its venv (for the
outage both serve HTTP too: see mq_outage).  A manager name of their own per server start.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from bench.clients import reference_client, reference_venvs
from bench.mq_servers import GalaxyStandIn, MQServer, OurMQServer, ReferenceMQServer
from bench.workloads import mq_jobs, mq_outage
from test.support.rabbitmq import port_open

SIDES = ("reference", "ours")


def broker_address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5672


def run_section(run: Any) -> None:
    """Fill `run.raw["mq"]`; failures go to `run.errors` under `mq.<workload>.<side>`."""
    args = run.args
    host, port = broker_address(args.amqp_url)
    if not port_open(host, port):
        message = f"message-queue section skipped: no broker at {host}:{port} (bash test/infra/start-rabbitmq.sh)"
        if run.args.only == {"mq"}:  # asked for explicitly: a failure
            raise RuntimeError(message)
        run.notes.append(message)
        return
    raw = run.raw.setdefault("mq", {})
    broker_before = {p.pid for p in mq_jobs.broker_processes()}
    galaxy = run.servers.add(GalaxyStandIn(run.client_dir / "mq").start())
    candidates: dict[str, Any] = {
        "ours": (lambda: OurMQServer(run.workdir / "mq-ours", args.amqp_url, extra_options=args.our_options),
                 run.ours_client),
    }
    if run.with_reference():
        venv, client_venv = reference_venvs(run.notes)
        candidates["reference"] = (lambda: ReferenceMQServer(run.workdir / "mq-reference", venv, args.amqp_url),
                                   run.ref_client or reference_client(client_venv))
    servers: dict[str, MQServer] = {}
    clients = {}
    try:
        for side in SIDES:
            if side not in candidates:
                continue
            make, clients[side] = candidates[side]
            server = run.servers.add(make())
            try:
                seconds = server.start()
            except Exception as exc:  # the other side is still measured
                run.errors[f"mq.start.{side}"] = f"{type(exc).__name__}: {exc}"
                run.log(f"MQ {side} server FAILED to start: {exc}")
                server.stop()
                continue
            servers[side] = server
            run.log(f"MQ {side} server up (manager {server.manager}) in {seconds:.2f}s")
        _measure(run, raw, servers, clients, galaxy)
    finally:
        for server in servers.values():
            server.stop()
    _outage(run, raw, args, port)
    if {p.pid for p in mq_jobs.broker_processes()} != broker_before:
        run.notes.append("the broker (shared with other work on this machine) restarted during the message-queue "
                         "section: connection resets and failed jobs there are not the servers' doing; run it again")


def _measure(run: Any, raw: dict, servers: dict[str, MQServer], clients: dict, galaxy: GalaxyStandIn) -> None:
    """Throughput, then exit -> update: `--repeats` rounds each, the reference and ours in turn."""
    args = run.args
    mq_dir = run.client_dir / "mq"

    def throughput(side: str) -> dict:
        return mq_jobs.run_throughput(servers[side], clients[side], args.mq_jobs, 8, mq_dir, galaxy, run.new_prefix())

    def exit_latency(side: str) -> dict:
        return mq_jobs.run_exit_latency(servers[side], clients[side], args.mq_exit_jobs, mq_dir, galaxy,
                                        run.new_prefix())

    workloads = [
        ("c8", f"{args.mq_jobs} trivial jobs at concurrency 8", throughput,
         lambda r: (f"{r['jobs_per_s']:.1f} jobs/s, p50 {r['latency_p50_ms']:.0f} ms (submit {r['submit_p50_ms']:.0f}, "
                    f"published -> terminal update {r['published_to_update_p50_ms']:.0f}, finish "
                    f"{r['finish_p50_ms']:.0f}), {r['server_cpu_ms_per_job']:.1f} ms server CPU/job, "
                    f"{r['failed']} failed")),
        ("exit", f"exit -> status_update, {args.mq_exit_jobs} jobs", exit_latency,
         lambda r: f"p50 {r['exit_to_update_p50_ms']:.1f} ms, p90 {r['exit_to_update_p90_ms']:.1f} ms"),
    ]
    for key, title, measure, describe in workloads:
        for repeat in range(args.repeats):
            for side in SIDES:
                if side not in servers:
                    continue
                run.log(f"MQ {title}, {side}, repeat {repeat + 1}")
                try:
                    result = measure(side)
                except Exception as exc:
                    run.errors[f"mq.{key}.{side}"] = f"{type(exc).__name__}: {exc}"
                    run.log(f"  FAILED: {exc}")
                    continue
                raw.setdefault(key, {}).setdefault(side, []).append(result)
                run.log(f"  {describe(result)}")


def _outage(run: Any, raw: dict, args: Any, broker_port: int) -> None:
    factories = {"ours": lambda url: OurMQServer(run.workdir / "mq-outage-ours", args.amqp_url, amqp_url=url,
                                                 web=True, extra_options=args.our_options)}
    if run.with_reference():
        venv, _client_venv = reference_venvs(run.notes)
        factories["reference"] = lambda url: ReferenceMQServer(run.workdir / "mq-outage-reference", venv,
                                                               args.amqp_url, amqp_url=url, web=True)
    for side in SIDES:
        if side not in factories:
            continue
        run.log(f"MQ broker outage: {args.mq_outage_jobs} jobs' updates queued, {side}")
        try:
            result = mq_outage.run_outage(lambda url, make=factories[side]: run.servers.add(make(url)),
                                          args.amqp_url, broker_port, args.mq_outage_jobs, run.new_prefix())
        except Exception as exc:
            run.errors[f"mq.outage.{side}"] = f"{type(exc).__name__}: {exc}"
            run.log(f"  FAILED: {exc}")
            continue
        raw.setdefault("outage", {})[side] = result
        run.log(f"  {result['updates_queued']} updates queued, RSS {result['rss_before_MiB']:.1f} -> peak "
                f"{result['rss_peak_MiB']:.1f} MiB; delivered {result['terminal_delivered']}/{result['jobs']} in "
                f"{result['drain_s']:.2f}s, {result['terminal_duplicates']} duplicates")


def summarise(raw: dict[str, Any], put: Any) -> None:
    """Add the MQ medians through `put(metric, side, values)`."""
    mq = raw.get("mq", {})
    for key in ("c8", "exit"):
        for side, results in mq.get(key, {}).items():
            for field in results[0] if results else ():
                if isinstance(results[0][field], (int, float)) and not isinstance(results[0][field], bool):
                    put(f"mq.{key}.{field}", side, [r[field] for r in results])
    for side, result in mq.get("outage", {}).items():
        for field, value in result.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                put(f"mq.outage.{field}", side, [value])


def notes(raw: dict[str, Any], errors: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    mq = raw.get("mq", {})
    for key, metric in (("c8", "mq.c8.jobs_per_s"), ("exit", "mq.exit.exit_to_update_p50_ms")):
        for side, results in mq.get(key, {}).items():
            failed = sum(r["failed"] for r in results)
            if failed:
                example = next((r.get("failure_examples") or r.get("problems") for r in results if not r["ok"]), "")
                out[metric] = (out.get(metric, "") + f" {side}: {failed} job(s) failed, e.g. {str(example)[:300]}").strip()
    for side, result in mq.get("outage", {}).items():
        if not result["ok"] or result["updates_through_outage"]:
            out["mq.outage.terminal_lost"] = (
                f"{side}: {result['jobs_complete']}/{result['jobs']} jobs complete, {result['terminal_delivered']} "
                f"delivered, {result['terminal_duplicates']} doubled, {result['updates_through_outage']} updates got "
                "through while cut")
    for name, message in errors.items():
        if name == "mq" or name.startswith("mq."):
            workload = name.split(".")[1] if "." in name else "start"
            metric = {"exit": "mq.exit.exit_to_update_p50_ms", "outage": "mq.outage.rss_growth_MiB"}.get(
                workload, "mq.c8.jobs_per_s")
            out[metric] = (out.get(metric, "") + f" {name} ERROR {' '.join(message[:300].split())}").strip()
    return out
