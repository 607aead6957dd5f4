"""Restart with many persisted jobs: time until the server answers and knows an old job, and
the p50/p99 of status requests for old jobs afterwards.

The jobs are made the same way for both servers, without knowing either one's format: run
one real job to completion over HTTP (not cleaned), stop the server, then clone everything
that job left on disk (its job directory and any file under the persistence directory whose
name carries its id) N times, with the id replaced in file names and in small text files.
So each server restarts on state in exactly the format it wrote itself.
"""

from __future__ import annotations

import json
import os
import random
import time

from bench.servers import BenchServer, request
from bench.workloads.jobs import percentile

TEMPLATE_ID = "7770001"
SMALL_FILE = 256 * 1024


def run_template_job(server: BenchServer) -> None:
    code, body = request(server.port, "POST", "/jobs", {"job_id": TEMPLATE_ID})
    if code != 200:
        raise RuntimeError(f"setup of the template job: HTTP {code} {body[:200]!r}")
    code, body = request(server.port, "POST", f"/jobs/{TEMPLATE_ID}/submit",
                         {"command_line": "echo persisted-job-output"})
    if code != 200:
        raise RuntimeError(f"submit of the template job: HTTP {code} {body[:200]!r}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = server.status_of(TEMPLATE_ID)
        if status == "complete":
            return
        if status in ("failed", "lost", "cancelled"):
            raise RuntimeError(f"template job ended {status}")
        time.sleep(0.05)
    raise RuntimeError("template job did not complete in 60 s")


def _template_files(server: BenchServer) -> list[tuple[str, bytes | None, int]]:
    """(relative path with {id} placeholder, content with placeholder or None for dirs, mode)."""
    entries: list[tuple[str, bytes | None, int]] = []
    roots = [(server.staging, "staging")] + [(server.persistence, "persisted")]
    for base, label in roots:
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = os.path.relpath(dirpath, base)
            in_job_dir = rel_dir.split(os.sep)[0] == TEMPLATE_ID
            for name in filenames:
                rel = os.path.normpath(os.path.join(rel_dir, name))
                if not in_job_dir and TEMPLATE_ID not in name:
                    continue
                path = os.path.join(dirpath, name)
                mode = os.stat(path).st_mode & 0o7777
                with open(path, "rb") as handle:
                    content = handle.read(SMALL_FILE + 1)
                if len(content) > SMALL_FILE:
                    raise RuntimeError(f"unexpectedly large file in the template job: {path}")
                entries.append((os.path.join(label, rel.replace(TEMPLATE_ID, "{id}")),
                                content.replace(TEMPLATE_ID.encode(), b"{id}"), mode))
            if in_job_dir:
                for name in dirnames:
                    rel = os.path.normpath(os.path.join(rel_dir, name))
                    entries.append((os.path.join(label, rel.replace(TEMPLATE_ID, "{id}")), None, 0o755))
            elif rel_dir == "." and label == "staging":
                entries.append((os.path.join(label, "{id}"), None, 0o755))
    # directories first, shallow before deep
    entries.sort(key=lambda e: (e[1] is not None, e[0].count(os.sep)))
    return entries


def clone_jobs(server: BenchServer, count: int) -> list[str]:
    entries = _template_files(server)
    bases = {"staging": str(server.staging), "persisted": str(server.persistence)}
    ids = [f"{8000000 + i}" for i in range(count)]
    for job_id in ids:
        for rel, content, mode in entries:
            label, _, rest = rel.partition(os.sep)
            path = os.path.join(bases[label], rest.replace("{id}", job_id))
            if content is None:
                os.makedirs(path, exist_ok=True)
                continue
            with open(path, "wb") as handle:
                handle.write(content.replace(b"{id}", job_id.encode()))
            os.chmod(path, mode)
    return ids


def run_persisted(server: BenchServer, count: int, status_requests: int) -> dict:
    """`server` must be freshly created (not started).  Leaves it stopped."""
    cold_start = server.start()
    run_template_job(server)
    server.stop()
    started = time.perf_counter()
    ids = clone_jobs(server, count)
    clone_seconds = time.perf_counter() - started
    probe = random.Random(1).choice(ids)
    restart = server.start(check_job=probe)
    probe_status = server.last_check_status
    sample = random.Random(2)
    timings = []
    wrong = 0
    for _ in range(status_requests):
        job_id = sample.choice(ids)
        begin = time.perf_counter()
        code, body = request(server.port, "GET", f"/jobs/{job_id}/status")
        timings.append(time.perf_counter() - begin)
        if code != 200 or json.loads(body).get("status") != "complete":
            wrong += 1
    server.stop()
    return {
        "jobs": count,
        "empty_start_s": cold_start,
        "restart_s": restart,
        "status_p50_ms": percentile(timings, 0.5) * 1000,
        "status_p99_ms": percentile(timings, 0.99) * 1000,
        "status_wrong": wrong,
        "probe_status": probe_status,
        "clone_s": clone_seconds,
        "ok": wrong == 0 and probe_status == "complete",
    }
