"""Where the machine's CPU goes for one trivial job: our server, and the job's own processes.

    .venv/bin/python bench/job_cpu_split.py [--jobs 100]

Runs Galaxy-like trivial jobs one after another against our server over one kept-alive
connection (setup, tool + input + config uploads, submit, status polls every 5 ms, output
download, clean) and prints the server's user and system CPU per job and that of the
processes it started (the job script, the tool, the snapshot copy), from the kernel's
accounting of the server process and its reaped children.  See PROFILE.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from test.support.server import start_server  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="pulsar-cpu-split-", dir=REPO_ROOT.parent))
    server = start_server(root, app_config={"managers": {"_default_": {"type": "queued_python",
                                                                       "num_concurrent_jobs": 8}}})
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)

    def call(method: str, path: str, body: bytes = b"", **params: str) -> bytes:
        params["private_token"] = str(server.token)
        connection.request(method, f"{path}?{urllib.parse.urlencode(params)}", body=body,
                           headers={"Content-Length": str(len(body))})
        response = connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {data[:200]!r}")
        return data

    def one_job(job_id: str) -> None:
        call("POST", "/jobs", job_id=job_id, tool_id="t", tool_version="1")
        call("POST", f"/jobs/{job_id}/files", b"echo hi > ../outputs/out.txt\n", name="tool.sh", type="tool")
        call("POST", f"/jobs/{job_id}/files", b"x" * 100, name="in.txt", type="input")
        call("POST", f"/jobs/{job_id}/files", b"c", name="conf", type="config")
        call("POST", f"/jobs/{job_id}/submit", command_line=f"bash {root}/staging/{job_id}/tool_files/tool.sh")
        while json.loads(call("GET", f"/jobs/{job_id}/status"))["complete"] != "true":
            time.sleep(0.005)
        call("GET", f"/jobs/{job_id}/files", name="out.txt", type="output")
        call("DELETE", f"/jobs/{job_id}")

    try:
        for index in range(10):  # warm up
            one_job(f"warm{index}")
        process = psutil.Process(server.process.pid)
        before = process.cpu_times()
        started = time.perf_counter()
        for index in range(args.jobs):
            one_job(f"job{index}")
        elapsed = time.perf_counter() - started
        after = process.cpu_times()
    finally:
        connection.close()
        server.stop()

    def per_job(field: str) -> float:
        return 1000 * (getattr(after, field) - getattr(before, field)) / args.jobs

    print(f"{args.jobs / elapsed:.1f} jobs/s, one at a time; CPU per job [ms]: "
          f"server user {per_job('user'):.2f}, server system {per_job('system'):.2f}, "
          f"job processes user {per_job('children_user'):.2f}, system {per_job('children_system'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
