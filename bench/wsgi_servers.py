"""Our WSGI application under different WSGI servers, on the same workloads (issue 5, item 2).

    .venv/bin/python bench/wsgi_servers.py            # full run: 1 GiB transfer, 200 jobs, 3 repeats
    .venv/bin/python bench/wsgi_servers.py --quick    # 64 MiB, 20 jobs, 1 repeat
    .venv/bin/python bench/wsgi_servers.py --hosts ours gunicorn --repeats 5
    .venv/bin/python bench/wsgi_servers.py --only probes  # functional + hostile-client probes only

Hosts (all serve the same app.yml as bench/run.py's server: queued_python, 8 concurrent
jobs, a private token, staging and persistence in the work directory):

* ours      `python -m pulsar.main` (our stdlib HTTP/1.1 server), the baseline (ratio 1.00);
* paste     `paste.httpserver.serve`, thread pool;
* waitress  `waitress.create_server`;
* cheroot   `cheroot.wsgi.Server`;
* gunicorn  `gunicorn -k gthread -w 1` (one worker: job state lives in the process);
* paster    `paster serve server.ini` through `pulsar.web.server:server_runner`: our server
  again, started the PasteDeploy way.  By default only probed and smoke-tested (5 jobs),
  to show `paster serve` works; name it in `--hosts` to measure it too.

Each host gets `--threads` worker threads (default: our server's default) and a listen
backlog of 128.  The third-party servers and PasteScript live in their own venv
(`~/.cache/pulsar-bench/wsgi-hosts`, built on first use from PyPI), with this checkout on
PYTHONPATH.  The workloads are bench/run.py's (`workloads/transfer.py`, `workloads/jobs.py`,
driven by our client library in a subprocess); figures are medians over `--repeats`, the
host order rotating each repeat.  Functional probes (chunked upload, 100-continue, Range,
long query string) run once per host; a host that fails a probe or a workload gets a note,
not a crash.  Hostile-client probes (`wsgi_hosts/hostile.py`: a crowd of `--hostile-connections`
slow-head, slow-body or silent connections, and the worst of 5 status polls meanwhile) run
once per host unless `--only` leaves out `probes`.  Results: a Markdown table on stdout and
`bench/results/wsgi-<date>-<time>.json`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


from bench.clients import our_client  # noqa: E402
from bench.run import (  # noqa: E402
    choose_client_dir,
    choose_workdir,
    execute_and_clean_up,
    machine_meta,
    run_meta,
    stop_on_signals,
)
from bench.sampling import cpu_split  # noqa: E402
from bench.servers import BenchServer, ServerSet  # noqa: E402
from bench.workloads import jobs, transfer  # noqa: E402
from bench.wsgi_hosts import table  # noqa: E402
from bench.wsgi_hosts.hostile import (  # noqa: E402
    DEFAULT_CONNECTIONS,
    DEFAULT_LIMIT_S,
    HOSTILE_PROBES,
    run_hostile_probes,
)
from bench.wsgi_hosts.hosts import ALL_HOSTS, DESCRIPTIONS, THIRD_PARTY, make_server  # noqa: E402
from bench.wsgi_hosts.probes import run_probes  # noqa: E402
from bench.wsgi_hosts.venv import default_location, ensure_venv, versions  # noqa: E402
from pulsar.web.server import DEFAULT_THREADS  # noqa: E402

MIB = 1024 * 1024
RESULTS_DIR = REPO_ROOT / "bench" / "results"
DEFAULT_HOSTS = ("ours", *THIRD_PARTY)
SMOKE_JOBS = 5
WORKLOADS = ("transfer", "jobs", "probes")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="64 MiB, 20 jobs, 1 repeat")
    parser.add_argument("--repeats", type=int, help="repeats per figure (default 3, quick 1)")
    parser.add_argument("--size-mib", type=int, help="transfer size (default 1024, quick 64)")
    parser.add_argument("--jobs", type=int, help="trivial jobs per run (default 200, quick 20)")
    parser.add_argument("--poll-interval", type=float, default=0.01,
                        help="status poll interval of the trivial-jobs client, seconds (default 0.01)")
    parser.add_argument("--hosts", nargs="+", choices=ALL_HOSTS, help=f"hosts to measure (default: {DEFAULT_HOSTS})")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"worker threads of every host (default {DEFAULT_THREADS}, our server's default)")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS,
                        help="run only these parts (probes = the hostile-client probes; the functional "
                             "probes always run; the paster smoke test runs with any workload)")
    parser.add_argument("--hostile-connections", type=int, default=DEFAULT_CONNECTIONS,
                        help=f"connections in each hostile crowd (default {DEFAULT_CONNECTIONS}; "
                             "should exceed --threads)")
    parser.add_argument("--hostile-limit", type=float, default=DEFAULT_LIMIT_S,
                        help=f"a status poll slower than this during a hostile probe is 'timeout' "
                             f"(default {DEFAULT_LIMIT_S:g} s)")
    parser.add_argument("--hostile-probes", nargs="+", choices=tuple(HOSTILE_PROBES), default=tuple(HOSTILE_PROBES),
                        help="which hostile-client probes to run (default: all)")
    parser.add_argument("--venv", type=Path, help=f"hosts venv (default {default_location()})")
    parser.add_argument("--workdir", help="where staging and test files go (default: a temp dir on the /work disk)")
    parser.add_argument("--client-dir", help="put the client's files here instead of the work directory")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server logs, staging)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.size = (args.size_mib or (64 if args.quick else 1024)) * MIB
    args.jobs = args.jobs or (20 if args.quick else 200)
    args.hosts = list(dict.fromkeys(args.hosts or DEFAULT_HOSTS))
    if "ours" not in args.hosts:
        args.hosts.insert(0, "ours")  # the baseline of every ratio
    args.only = set(args.only or WORKLOADS)
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Comparison:
    """One run: the servers, the raw results, the failures and the probe results."""

    def __init__(self, args: argparse.Namespace, venv: Path):
        self.args = args
        self.venv = venv
        self.workdir = choose_workdir(args.workdir)
        self.client_dir = choose_client_dir(self.workdir, args.client_dir)
        self.client = our_client()
        self.servers = ServerSet()
        self.live: dict[str, BenchServer] = {}
        self.raw: dict[str, Any] = {"transfer": {}, "jobs": {}}
        self.probes: dict[str, dict[str, str]] = {}
        self.hostile: dict[str, dict[str, dict[str, Any]]] = {}
        self.failures: dict[str, list[str]] = {}
        self.startup_s: dict[str, float] = {}
        self._serial = 0

    def new_prefix(self) -> str:
        self._serial += 1
        return f"{self._serial}_"

    def log(self, message: str) -> None:
        log(message)

    def fail(self, host: str, what: str, exc: BaseException) -> None:
        message = f"{what}: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        self.failures.setdefault(host, []).append(message[:300])
        log(f"{host} {what} FAILED: {exc}")

    def start(self, host: str) -> BenchServer | None:
        server = self.servers.add(make_server(host, self.workdir / host, self.venv, self.args.threads))
        try:
            self.startup_s[host] = server.start()
        except Exception as exc:
            self.fail(host, "start", exc)
            server.stop()
            return None
        log(f"{host} up on {server.url} in {self.startup_s[host]:.2f}s")
        self.probes[host] = run_probes(server.port, f"probe-{host}")
        log(f"{host} probes: {self.probes[host]}")
        if "probes" in self.args.only:
            log(f"{host} hostile-client probes, {self.args.hostile_connections} connections each")
            self.hostile[host] = run_hostile_probes(server.port, f"hostile-{host}", self.args.hostile_connections,
                                                    self.args.hostile_limit, tuple(self.args.hostile_probes))
            log(f"{host} hostile: " + ", ".join(f"{k} {v.get('cell')}" for k, v in self.hostile[host].items()))
        return server

    def smoke_paster(self) -> None:
        """`paster serve` with our server runner: start, probes, a few jobs, stop."""
        server = self.start("paster")
        if server is None:
            return
        if not self.args.only & {"transfer", "jobs"}:
            server.stop()
            return
        try:
            result = jobs.run_trivial_jobs(server, self.client, SMOKE_JOBS, 1, self.args.poll_interval,
                                           self.client_dir, self.new_prefix())
            self.raw["paster_smoke"] = result
            if result["failed"]:
                self.failures.setdefault("paster", []).append(f"smoke: {result['failed']} of {SMOKE_JOBS} jobs failed")
            log(f"paster smoke: {SMOKE_JOBS} jobs, {result['failed']} failed")
        except Exception as exc:
            self.fail("paster", "smoke jobs", exc)
        finally:
            server.stop()

    def rotation(self, repeat: int) -> list[tuple[str, BenchServer]]:
        """The live hosts, starting one further along each repeat (spreads drift in the noise)."""
        items = list(self.live.items())
        shift = repeat % len(items) if items else 0
        return items[shift:] + items[:shift]

    def run_transfers(self) -> None:
        input_path = self.client_dir / "input.dat"
        log(f"writing {self.args.size // MIB} MiB of random input")
        sha = transfer.make_input(input_path, self.args.size)
        try:
            for repeat in range(self.args.repeats):
                for host, server in self.rotation(repeat):
                    log(f"transfer {self.args.size // MIB} MiB, {host}, repeat {repeat + 1}")
                    cpu_before = sum(cpu_split(server.server_processes))
                    try:
                        result = transfer.run_transfer(server, self.client, input_path, sha, self.args.size,
                                                       self.client_dir, f"{self.new_prefix()}0")
                    except Exception as exc:
                        self.fail(host, f"transfer repeat {repeat + 1}", exc)
                        continue
                    # the server's own CPU over upload + copy job + download (the job's `cp` is a child)
                    result["server_cpu_s_per_GiB"] = ((sum(cpu_split(server.server_processes)) - cpu_before)
                                                      * 2**30 / self.args.size)
                    self.raw["transfer"].setdefault(host, []).append(result)
                    if not result["ok"]:
                        self.failures.setdefault(host, []).append(
                            f"transfer repeat {repeat + 1} not ok: {result['detail']}"[:300])
                    log(f"  up {result['upload_MBps']:.0f} MB/s, down {result['download_MBps']:.0f} MB/s, "
                        f"RSS +{result['server_rss_growth_upload_MiB']:.0f}/+"
                        f"{result['server_rss_growth_download_MiB']:.0f} MiB, "
                        f"server CPU {result['server_cpu_s_per_GiB']:.1f} s/GiB, "
                        f"checksum {'ok' if result['checksum_ok'] else 'WRONG'}")
        finally:
            input_path.unlink(missing_ok=True)

    def run_jobs(self) -> None:
        for concurrency in (1, 8):
            key = f"c{concurrency}"
            for repeat in range(self.args.repeats):
                for host, server in self.rotation(repeat):
                    log(f"{self.args.jobs} trivial jobs, c={concurrency}, {host}, repeat {repeat + 1}")
                    try:
                        result = jobs.run_trivial_jobs(server, self.client, self.args.jobs, concurrency,
                                                       self.args.poll_interval, self.client_dir, self.new_prefix())
                    except Exception as exc:
                        self.fail(host, f"jobs {key} repeat {repeat + 1}", exc)
                        continue
                    self.raw["jobs"].setdefault(key, {}).setdefault(host, []).append(result)
                    if result["failed"]:
                        self.failures.setdefault(host, []).append(
                            f"jobs {key} repeat {repeat + 1}: {result['failed']} failed, e.g. "
                            f"{str(result['failure_examples'][:1])[:200]}")
                    log(f"  {result['jobs_per_s']:.1f} jobs/s, p50 {result['latency_p50_ms']:.0f} ms, "
                        f"{result['server_cpu_ms_per_job']:.1f} ms CPU/job, {result['failed']} failed")

    def execute(self) -> None:
        if "paster" not in self.args.hosts:
            self.smoke_paster()
        for host in self.args.hosts:
            server = self.start(host)
            if server is not None:
                self.live[host] = server
        for name, action in (("transfer", self.run_transfers), ("jobs", self.run_jobs)):
            if name not in self.args.only:
                continue
            try:
                action()
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                self.fail("all", name, exc)
                traceback.print_exc()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    stop_on_signals()
    venv = ensure_venv(args.venv, log=log)
    run = Comparison(args, venv)
    started = datetime.datetime.now()
    meta = {
        **run_meta(args, started),
        "threads": args.threads,
        "hostile_connections": args.hostile_connections,
        "hostile_limit_s": args.hostile_limit,
        "hostile_probes": list(args.hostile_probes),
        "hosts": {host: DESCRIPTIONS[host] for host in args.hosts},
        "host_versions": versions(venv),
        "venv": str(venv),
        **machine_meta(run.workdir, run.client_dir),
    }
    log(f"work directory {run.workdir} ({meta['workdir_filesystem']}); hosts {', '.join(args.hosts)}")
    interrupted = execute_and_clean_up(run, keep=args.keep, own_client_dir=bool(args.client_dir))
    meta["seconds"] = round((datetime.datetime.now() - started).total_seconds(), 1)
    summary = table.summarise(run.raw)
    hosts = [h for h in args.hosts if h in summary or h in run.failures]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out_path = RESULTS_DIR / f"wsgi-{started:%Y%m%d-%H%M%S}.json"
    out_path.write_text(json.dumps({"meta": meta, "summary": summary, "probes": run.probes,
                                    "hostile": run.hostile,
                                    "failures": run.failures, "startup_s": run.startup_s, "raw": run.raw},
                                   indent=1, default=str))
    versions_text = ", ".join(f"{k} {v}" for k, v in meta["host_versions"].items()
                              if k in ("paste", "waitress", "cheroot", "gunicorn", "pastescript"))
    print()
    print(f"Our WSGI app under different servers ({meta['mode']}, {args.repeats} repeat(s), medians), "
          f"{meta['started']}, git {meta['git']}, {meta['seconds']:.0f} s")
    print(f"{args.size // MIB} MiB transfer, {args.jobs} trivial jobs, {args.threads} threads per host, "
          f"{meta['cpus']} CPUs, staging on {meta['workdir_filesystem']}; {versions_text}")
    print("(x.xx) = host / ours; MB = 10^6 bytes")
    print()
    if summary:
        print(table.render(summary, hosts))
        print()
    if run.hostile:
        print(f"Hostile-client probes: worst of 5 status polls while {args.hostile_connections} connections "
              f"misbehave ('timeout': a poll took over {args.hostile_limit:g} s)")
    probe_hosts = [h for h in (*args.hosts, "paster") if h in run.probes or h in run.failures]
    print(table.render_notes(run.probes, run.failures, list(dict.fromkeys(probe_hosts)), run.hostile))
    if "paster_smoke" in run.raw:
        smoke = run.raw["paster_smoke"]
        print(f"\npaster serve smoke test: {SMOKE_JOBS} jobs, {smoke['failed']} failed")
    print(f"\nresults: {out_path}")
    if interrupted:
        return 130
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
