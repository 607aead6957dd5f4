"""`make bench`: our server against the reference (pulsar-app[web]==0.16.0) on the same
workloads, in one run, with the machine's ceilings measured alongside.

    .venv/bin/python bench/run.py            # full run (1 GiB transfers, 200 jobs, 10,000 persisted jobs)
    .venv/bin/python bench/run.py --quick    # smoke run (64 MiB, 20 jobs, 1,000 persisted jobs)
    .venv/bin/python bench/run.py --only transfer jobs --repeats 5
    .venv/bin/python bench/run.py --only mq  # message-queue mode only (bench/mq.py)

Figures are medians over `--repeats` runs, ours and the reference alternating; the machine
is noisy, so read the ratios.  Raw repeats and the summary go to
`bench/results/<date>-<time>.json`.  Every server started is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import psutil  # noqa: E402
import yaml  # noqa: E402

from bench import mq, report  # noqa: E402
from bench.clients import ClientKind, our_client, reference_client, reference_venvs  # noqa: E402
from bench.mq_servers import DEFAULT_AMQP_URL  # noqa: E402
from bench.scraper import Scraper  # noqa: E402
from bench.servers import OurServer, ReferenceServer, ServerSet  # noqa: E402
from bench.summary import row_notes, summarise  # noqa: E402
from bench.workloads import ceilings, integrity, jobs, persisted, shared_input, transfer  # noqa: E402

MIB = 1024 * 1024
WORKLOADS = ("ceilings", "transfer", "jobs", "exit", "persisted", "mq", "cache")
RESULTS_DIR = REPO_ROOT / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--repeats", type=int, help="repeats per figure (default 3, quick 1)")
    parser.add_argument("--size-mib", type=int, help="transfer size (default 1024, quick 64)")
    parser.add_argument("--jobs", type=int, help="trivial jobs per run (default 200, quick 20)")
    parser.add_argument("--exit-jobs", type=int, help="jobs for exit->complete (default 40, quick 10)")
    parser.add_argument("--persisted", type=int, help="persisted jobs (default 10000, quick 1000)")
    parser.add_argument("--status-requests", type=int, help="status requests after restart (default 1000)")
    parser.add_argument("--poll-interval", type=float, default=0.01,
                        help="status poll interval of the trivial-jobs client, seconds (default 0.01)")
    parser.add_argument("--mq-jobs", type=int, help="trivial jobs per MQ throughput run (default 200, quick 20)")
    parser.add_argument("--mq-exit-jobs", type=int, help="jobs for MQ exit->update (default 40, quick 10)")
    parser.add_argument("--mq-outage-jobs", type=int, help="jobs whose updates wait out the broker outage "
                                                           "(default 1000, quick 100)")
    parser.add_argument("--cache-mib", type=int, help="size of the input the cache workload's jobs share "
                                                      "(default 512, quick 64)")
    parser.add_argument("--cache-jobs", type=int, default=20, help="jobs sharing that input (default 20)")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL, help=f"broker (default {DEFAULT_AMQP_URL})")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, help="run only these workloads")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference server and client")
    parser.add_argument("--workdir", help="where staging and test files go (default: a temp dir on the /work disk)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, staging)")
    parser.add_argument("--results-dir", default=str(RESULTS_DIR), help="where the results JSON goes "
                        "(default: bench/results)")
    parser.add_argument("--client-dir", help="put the clients' files (inputs, downloads) here instead of the work "
                                             "directory, e.g. /dev/shm to take the client's disk out of the figures")
    parser.add_argument("--our-option", action="append", default=[], metavar="KEY=YAML",
                        help="extra app.yml option for OUR server, e.g. fsync_uploads=false (repeatable; for "
                             "trying a change; recorded in the results)")
    parser.add_argument("--scrape-metrics", type=float, metavar="SECONDS",
                        help="scrape OUR server's /metrics every SECONDS during the whole run, as Prometheus "
                             "would (its cost then shows in every figure; scrape count and time are recorded)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeats = args.repeats or (1 if quick else 3)
    args.size = (args.size_mib or (64 if quick else 1024)) * MIB
    args.jobs = args.jobs or (20 if quick else 200)
    args.exit_jobs = args.exit_jobs or (10 if quick else 40)
    args.persisted = args.persisted or (1000 if quick else 10000)
    args.status_requests = args.status_requests or (200 if quick else 1000)
    args.mq_jobs = args.mq_jobs or (20 if quick else 200)
    args.mq_exit_jobs = args.mq_exit_jobs or (10 if quick else 40)
    args.mq_outage_jobs = args.mq_outage_jobs or (100 if quick else 1000)
    args.cache_size = (args.cache_mib or (64 if quick else 512)) * MIB
    args.only = set(args.only or WORKLOADS)
    args.our_options = {}
    for item in args.our_option:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--our-option needs KEY=VALUE, got {item!r}")
        args.our_options[key] = yaml.safe_load(value)
    return args


def choose_workdir(requested: str | None) -> Path:
    """A fresh directory on the same disk as /work (not tmpfs), so disk figures are honest."""
    if requested:
        base = Path(requested)
    else:
        anchor = Path("/work") if Path("/work").exists() else REPO_ROOT
        tmp = Path(tempfile.gettempdir())
        same_disk = os.stat(tmp).st_dev == os.stat(anchor).st_dev and filesystem_of(tmp) != "tmpfs"
        base = tmp if same_disk else REPO_ROOT / "bench" / ".work"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="pulsar-bench-", dir=base))


def choose_client_dir(workdir: Path, requested: str | None) -> Path:
    """Where the clients' files (inputs to upload, downloaded outputs) go: under the work
    directory, or a fresh directory under `requested` (e.g. /dev/shm, to see the server's and
    the protocol's speed without the client's disk writes)."""
    if requested:
        Path(requested).mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="pulsar-bench-client-", dir=requested))
    client_dir = workdir / "clients"
    client_dir.mkdir()
    return client_dir


def filesystem_of(path: Path) -> str:
    best = ("", "?")
    real = os.path.realpath(path)
    for part in psutil.disk_partitions(all=True):
        mount = part.mountpoint
        if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best[0]):
            best = (mount, part.fstype)
    return f"{best[1]} at {best[0]}"


class Run:
    """One benchmark run: settings, servers, raw results, errors."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.workdir = choose_workdir(args.workdir)
        self.client_dir = choose_client_dir(self.workdir, args.client_dir)
        self.servers = ServerSet()
        self.raw: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.notes: list[str] = []
        self.ours_client = our_client()
        self.ref_client: ClientKind | None = None
        self.ref_venv: Path | None = None
        self.ours = None
        self.ref = None
        self.scraper: Scraper | None = None
        self._serial = 0

    def new_prefix(self) -> str:
        """A job-id prefix never used before in this run (ids look like Galaxy task ids)."""
        self._serial += 1
        return f"{self._serial}_"

    # -- plumbing -------------------------------------------------------------------------
    def log(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {message}", file=sys.stderr, flush=True)

    def guarded(self, name: str, action: Callable[[], None]) -> None:
        """Run one workload; a failure is recorded and the run goes on with the next."""
        try:
            action()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            self.log(f"{name} FAILED: {exc}")
            traceback.print_exc()

    def with_reference(self) -> bool:
        return not self.args.no_reference

    def start_servers(self) -> None:
        self.ours = self.servers.add(OurServer(self.workdir / "ours", self.args.our_options))
        seconds = self.ours.start()
        self.log(f"our server up on {self.ours.url} in {seconds:.2f}s")
        if self.args.scrape_metrics:
            self.scraper = Scraper(self.ours.port, self.args.scrape_metrics).start()
            self.log(f"scraping {self.ours.url}metrics every {self.args.scrape_metrics:g}s")
        if self.with_reference():
            app_venv, client_venv = reference_venvs(self.notes)
            self.ref_venv = app_venv
            self.ref_client = reference_client(client_venv)
            self.ref = self.servers.add(ReferenceServer(self.workdir / "reference", app_venv))
            seconds = self.ref.start()
            self.log(f"reference server up on {self.ref.url} in {seconds:.2f}s")

    def stop_servers(self) -> None:
        if self.scraper is not None:
            self.raw["metrics_scrapes"] = scraped = self.scraper.stop()
            self.scraper = None
            self.log(f"/metrics scraped {scraped['scrapes']} times, median {scraped['scrape_ms_median']} ms, "
                     f"{scraped['body_bytes_median']} bytes, errors: {scraped['errors'] or 'none'}")
            if scraped["errors"]:
                self.errors["metrics_scrapes"] = "; ".join(scraped["errors"])
        for server in (self.ours, self.ref):
            if server is not None:
                server.stop()

    # -- workloads ------------------------------------------------------------------------
    def run_ceilings(self) -> None:
        out = self.raw.setdefault("ceilings", [])
        for repeat in range(self.args.repeats):
            self.log(f"ceilings, repeat {repeat + 1}")
            http = ceilings.loopback_http(self.args.size)
            out.append({
                "loopback_get_MBps": http["get_MBps"],
                "loopback_post_MBps": http["post_MBps"],
                "disk_write_MBps": ceilings.disk_write(self.workdir, self.args.size),
                "disk_write_nofsync_MBps": ceilings.disk_write(self.workdir, self.args.size, fsync=False),
                "fork_exec_per_s": ceilings.fork_exec(),
                "sha256_MBps": integrity.sha256_ceiling(self.args.size),
            })

    def run_transfers(self) -> None:
        input_path = self.client_dir / "input.dat"
        self.log(f"writing {self.args.size // MIB} MiB of random input")
        sha = transfer.make_input(input_path, self.args.size)
        combos = [("ours", self.ours, self.ours_client)]
        if self.with_reference():
            combos = [("reference", self.ref, self.ref_client), ("refclient", self.ours, self.ref_client), *combos]
        out = self.raw.setdefault("transfer", {})
        for repeat in range(self.args.repeats):
            for name, server, client in combos:
                self.log(f"transfer {name} (server {server.kind}, client {client.name}), repeat {repeat + 1}")
                try:
                    result = transfer.run_transfer(server, client, input_path, sha, self.args.size,
                                                   self.client_dir, f"{self.new_prefix()}0")
                except Exception as exc:
                    self.errors[f"transfer.{name}"] = f"{type(exc).__name__}: {exc}"
                    self.log(f"transfer {name} FAILED: {exc}")
                    continue
                out.setdefault(name, []).append(result)
                self.log(f"  up {result['upload_MBps']:.0f} MB/s, down {result['download_MBps']:.0f} MB/s, "
                         f"checksum {'ok' if result['checksum_ok'] else 'WRONG'}")
            self.log(f"download digest cost (our server), repeat {repeat + 1}")
            try:
                cost = integrity.run_digest_cost(self.ours, input_path, sha, f"{self.new_prefix()}digest")
            except Exception as exc:
                self.errors["transfer.digest"] = f"{type(exc).__name__}: {exc}"
                self.log(f"digest cost FAILED: {exc}")
                continue
            self.raw.setdefault("digest", []).append(cost)
            self.log(f"  plain {cost['download_plain_MBps']:.0f} MB/s, digest computed "
                     f"{cost['download_digest_first_MBps']:.0f} MB/s, remembered {cost['download_digest_cached_MBps']:.0f}"
                     f" MB/s, {'ok' if cost['ok'] else 'DIGEST WRONG'}")
        input_path.unlink()

    def run_jobs(self) -> None:
        out = self.raw.setdefault("jobs", {})
        pairs = [("ours", self.ours, self.ours_client)]
        if self.with_reference():
            pairs = [("reference", self.ref, self.ref_client), *pairs]
        for concurrency in (1, 8):
            key = f"c{concurrency}"
            for repeat in range(self.args.repeats):
                for name, server, client in pairs:
                    self.log(f"{self.args.jobs} trivial jobs at concurrency {concurrency}, {name}, repeat {repeat + 1}")
                    try:
                        result = jobs.run_trivial_jobs(server, client, self.args.jobs, concurrency,
                                                       self.args.poll_interval, self.client_dir,
                                                       self.new_prefix())
                    except Exception as exc:
                        self.errors[f"jobs.{key}.{name}"] = f"{type(exc).__name__}: {exc}"
                        self.log(f"  FAILED: {exc}")
                        continue
                    out.setdefault(key, {}).setdefault(name, []).append(result)
                    self.log(f"  {result['jobs_per_s']:.1f} jobs/s, p50 {result['latency_p50_ms']:.0f} ms, "
                             f"{result['server_cpu_ms_per_job']:.1f} ms CPU/job, {result['failed']} failed")

    def run_exit(self) -> None:
        out = self.raw.setdefault("exit", {})
        pairs = [("ours", self.ours, self.ours_client)]
        if self.with_reference():
            pairs = [("reference", self.ref, self.ref_client), *pairs]
        for repeat in range(self.args.repeats):
            for name, server, client in pairs:
                self.log(f"exit -> complete, {self.args.exit_jobs} jobs, {name}, repeat {repeat + 1}")
                try:
                    result = jobs.run_exit_latency(server, client, self.args.exit_jobs, 0.002,
                                                   self.client_dir, self.new_prefix())
                except Exception as exc:
                    self.errors[f"exit.{name}"] = f"{type(exc).__name__}: {exc}"
                    self.log(f"  FAILED: {exc}")
                    continue
                out.setdefault(name, []).append(result)
                self.log(f"  p50 {result['exit_to_complete_p50_ms']:.1f} ms, p90 {result['exit_to_complete_p90_ms']:.1f} ms")

    def run_persisted(self) -> None:
        out = self.raw.setdefault("persisted", {})
        options = self.args.our_options
        factories: list[tuple[str, Callable[[], Any]]] = [
            ("ours", lambda: OurServer(self.workdir / "persist-ours", options)),
        ]
        if self.with_reference():
            assert self.ref_venv is not None
            venv = self.ref_venv
            factories.insert(0, ("reference", lambda: ReferenceServer(self.workdir / "persist-ref", venv)))
        for name, factory in factories:
            self.log(f"{self.args.persisted} persisted jobs, {name}")
            server = self.servers.add(factory())
            try:
                result = persisted.run_persisted(server, self.args.persisted, self.args.status_requests)
            except Exception as exc:
                self.errors[f"persisted.{name}"] = f"{type(exc).__name__}: {exc}"
                self.log(f"  FAILED: {exc}")
                server.stop()
                continue
            out[name] = result
            self.log(f"  restart {result['restart_s']:.2f}s (probe {result['probe_status']}), "
                     f"status p99 {result['status_p99_ms']:.1f} ms, wrong {result['status_wrong']}")
            shutil.rmtree(server.root, ignore_errors=True)

    def run_cache(self) -> None:
        """20 jobs sharing one input: our client and server without and with the input cache,
        and the reference client and server with theirs; each server fresh, cache empty."""
        input_path = self.client_dir / "shared-input.dat"
        self.log(f"writing {self.args.cache_size // MIB} MiB of random input")
        transfer.make_input(input_path, self.args.cache_size)
        out = self.raw.setdefault("cache", {})
        combos: list[tuple[str, bool, Callable[[Path], Any], ClientKind | None]] = [
            ("uncached", False, lambda root: OurServer(root, self.args.our_options), self.ours_client),
            ("ours", True, lambda root: OurServer(root, {"file_cache_dir": str(root / "file_cache"),
                                                         **self.args.our_options}), self.ours_client),
        ]
        if self.with_reference():
            app_venv, client_venv = reference_venvs(self.notes)
            combos.append(("reference", True, lambda root: ReferenceServer(
                root, app_venv, {"file_cache_dir": str(root / "file_cache")}), reference_client(client_venv)))
        for repeat in range(self.args.repeats):
            for name, cache, factory, client in combos:
                assert client is not None
                root = self.workdir / f"cache-{name}-{repeat}"
                (root / "file_cache").mkdir(parents=True)  # the reference needs it to exist
                server = self.servers.add(factory(root))
                server.start()
                self.log(f"{self.args.cache_jobs} jobs sharing {self.args.cache_size // MIB} MiB, {name} "
                         f"(server {server.kind}, client {client.name}, cache {'on' if cache else 'off'}), "
                         f"repeat {repeat + 1}")
                try:
                    result = shared_input.run_shared_input(server, client, input_path, self.args.cache_jobs, cache,
                                                           self.client_dir, self.new_prefix())
                except Exception as exc:
                    self.errors[f"cache.{name}"] = f"{type(exc).__name__}: {exc}"
                    self.log(f"  FAILED: {exc}")
                    continue
                finally:
                    server.stop()
                    shutil.rmtree(root, ignore_errors=True)
                out.setdefault(name, []).append(result)
                self.log(f"  {result['wire_MB']:,.1f} MB on the wire, {result['wall_s']:.1f} s, "
                         f"{result['failed']} failed")
        input_path.unlink()

    def execute(self) -> None:
        only = self.args.only
        if "ceilings" in only:
            self.guarded("ceilings", self.run_ceilings)
        if only & {"transfer", "jobs", "exit"}:
            self.start_servers()
            if "transfer" in only:
                self.guarded("transfer", self.run_transfers)
            if "jobs" in only:
                self.guarded("jobs", self.run_jobs)
            if "exit" in only:
                self.guarded("exit", self.run_exit)
            self.stop_servers()
        if "persisted" in only:
            if self.with_reference() and self.ref_venv is None:
                self.ref_venv, client_venv = reference_venvs(self.notes)
            self.guarded("persisted", self.run_persisted)
        if "mq" in only:
            self.guarded("mq", lambda: mq.run_section(self))
        if "cache" in only:
            self.guarded("cache", self.run_cache)


def stop_on_signals() -> None:
    """SIGTERM and SIGINT (even if started with SIGINT ignored) raise KeyboardInterrupt, so
    every server is stopped on the way out."""

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_meta(args: argparse.Namespace, started: datetime.datetime) -> dict[str, Any]:
    """The settings every benchmark script records: when, how big, how many times."""
    return {
        "started": started.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "repeats": args.repeats,
        "transfer_bytes": args.size,
        "trivial_jobs": args.jobs,
        "poll_interval_s": args.poll_interval,
        "cache_input_bytes": getattr(args, "cache_size", None),
        "cache_jobs": getattr(args, "cache_jobs", None),
    }


def machine_meta(workdir: Path, client_dir: Path) -> dict[str, Any]:
    """What a result needs to be read later: where it ran, on what, from which revision."""
    return {
        "workdir": str(workdir),
        "workdir_filesystem": filesystem_of(workdir),
        "client_dir": str(client_dir),
        "client_dir_filesystem": filesystem_of(client_dir),
        "cpus": os.cpu_count(),
        "memory_GiB": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "git": git_revision(),
    }


def execute_and_clean_up(run: Any, *, keep: bool, own_client_dir: bool) -> bool:
    """`run.execute()`, then stop every server and remove the work directories (unless
    `keep`); True if interrupted."""
    interrupted = False
    try:
        run.execute()
    except KeyboardInterrupt:
        interrupted = True
        run.log("interrupted; stopping servers")
    finally:
        run.servers.stop_all()
        if not keep:
            shutil.rmtree(run.workdir, ignore_errors=True)
            if own_client_dir:
                shutil.rmtree(run.client_dir, ignore_errors=True)
    return interrupted


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=REPO_ROOT, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                               cwd=REPO_ROOT, timeout=10).stdout.strip()
        return head + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    stop_on_signals()
    run = Run(args)
    started = datetime.datetime.now()
    meta = {
        **run_meta(args, started),
        "scrape_metrics_s": args.scrape_metrics,
        "exit_jobs": args.exit_jobs,
        "persisted_jobs": args.persisted,
        "status_requests": args.status_requests,
        "mq_jobs": args.mq_jobs,
        "mq_exit_jobs": args.mq_exit_jobs,
        "mq_outage_jobs": args.mq_outage_jobs,
        "our_options": args.our_options,
        **machine_meta(run.workdir, run.client_dir),
    }
    run.log(f"work directory {run.workdir} ({meta['workdir_filesystem']})")
    interrupted = execute_and_clean_up(run, keep=args.keep, own_client_dir=bool(args.client_dir))
    meta["seconds"] = round((datetime.datetime.now() - started).total_seconds(), 1)
    summary = summarise(run.raw)
    notes = row_notes(run.raw, run.errors)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    out_path = results_dir / f"{started:%Y%m%d-%H%M%S}.json"
    out_path.write_text(json.dumps({"meta": meta, "notes": run.notes, "errors": run.errors, "summary": summary,
                                    "raw": run.raw}, indent=1, default=str))
    print()
    print(f"Pulsar benchmark ({meta['mode']}, {args.repeats} repeat(s), medians), {meta['started']}, git {meta['git']}")
    print(f"staging/work dir: {meta['workdir']} ({meta['workdir_filesystem']}); {meta['cpus']} CPUs, "
          f"{meta['memory_GiB']} GiB RAM; transfer size {args.size // MIB} MiB; {args.jobs} trivial jobs; "
          f"{args.persisted} persisted jobs")
    print(f"client-side files (inputs, downloads): {meta['client_dir']} ({meta['client_dir_filesystem']})")
    print("ours = this checkout (python -m pulsar.main); reference = pulsar-app[web]==0.16.0 (pulsar-serve, gunicorn); "
          "both queued_python with 8 concurrent jobs and a private token")
    if args.our_options:
        print(f"our server extra options: {args.our_options}")
    if "mq" in args.only:
        print("message queue: broker {}:{}; {} trivial jobs, {} exit jobs, {} outage jobs; ours and reference both "
              "pulsar-main, each driven by its own client library".format(*mq.broker_address(args.amqp_url), args.mq_jobs,
                                                                        args.mq_exit_jobs, args.mq_outage_jobs))
    if "cache" in args.only:
        print(f"input cache: {args.cache_jobs} jobs sharing one {args.cache_size // MIB} MiB input, "
              f"{shared_input.CONCURRENCY} at a time; wire = HTTP bytes the client sent + received")
    print("gain = how many times better we are (us/ref for rates, ref/us for times and sizes); MB = 10^6 bytes")
    print()
    print(report.render(summary, notes))
    for note in run.notes:
        print(f"note: {note}")
    for name, message in run.errors.items():
        print(f"error in {name}: {message[:500]}")
    shown = out_path.relative_to(REPO_ROOT) if out_path.is_relative_to(REPO_ROOT) else out_path
    print(f"\nresults: {shown}")
    if interrupted:
        return 130
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
