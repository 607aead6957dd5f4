"""Drive a Pulsar server through a Pulsar *client library*, the way Galaxy does.

Runs as a standalone script under either interpreter: ours (`.venv/bin/python` with this
checkout on PYTHONPATH) or the reference venv's (which has its own top-level `pulsar`
package).  It therefore imports nothing from `bench` and only the client API both
implementations share (the 0.15-style package names, falling back to the 0.16 modules).

Usage: `python client_driver.py SPEC.json`; SPEC holds `mode` plus the mode's settings.
The result is one JSON line on stdout prefixed with `BENCH-RESULT ` (the reference client
prints its own chatter to stdout, so the prefix marks ours).  Times are `time.time()` so the
harness can line them up with its samples of the server process.

Modes:
* `transfer`: one job that uploads a big input, copies it to an output on the server, and
  downloads it; reports upload and download windows and checks the SHA-256 of the result.
* `jobs`: N trivial Galaxy-like jobs (setup, tool script + config + input upload, submit,
  poll, full status, download, clean) with C threads; reports per-job latencies.
* `exit_latency`: K jobs in sequence whose last act is writing `date +%s.%N`; the client
  polls status every `poll_interval` and reports "saw complete" minus that timestamp.
* `shared_input`: N jobs, C at a time, all reading one big input, with the client manager's
  input cache on or off (`cache`); reports the window and the HTTP bytes this process sent
  and received (counted in its sockets, so both client libraries are measured alike).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

try:  # 0.15-style package exports (ours; reference <= 0.15)
    from pulsar.client import (
        CLIENT_INPUT_PATH_TYPES,
        ClientInput,
        ClientInputs,
        ClientJobDescription,
        ClientOutputs,
        PulsarOutputs,
        build_client_manager,
        finish_job,
        submit_job,
    )
except ImportError:  # reference 0.16.0: implementation modules only
    from pulsar.client.manager import build_client_manager
    from pulsar.client.staging.down import finish_job
    from pulsar.client.staging.inputs import CLIENT_INPUT_PATH_TYPES, ClientInput, ClientInputs
    from pulsar.client.staging.models import ClientJobDescription, ClientOutputs, PulsarOutputs
    from pulsar.client.staging.up import submit_job

TERMINAL = {"complete", "cancelled", "failed", "lost"}
BLOCK = 4 * 1024 * 1024


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(BLOCK)
            if not block:
                return digest.hexdigest()
            digest.update(block)


PHASES = False


def phase(name: str) -> None:
    """Tell a profiling harness (reading our stdout) that a phase starts or ends."""
    if PHASES:
        sys.stdout.write(f"BENCH-PHASE {name}\n")
        sys.stdout.flush()
        time.sleep(0.3)  # let the profiler attach / detach before the phase really starts


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_client(manager, spec: dict, job_id: str):
    destination = {
        "url": spec["url"],
        "private_token": spec["token"],
        "default_file_action": "transfer",
        "rewrite_parameters": "true",
        "dependency_resolution": "none",
    }
    return manager.get_client(destination, job_id=job_id, env=[])


def remote_dirs(config: dict) -> dict:
    working = config["working_directory"]
    return {
        "job": config.get("job_directory") or os.path.dirname(working),
        "working": working,
        "inputs": config["inputs_directory"],
        "outputs": config["outputs_directory"],
        "metadata": config["metadata_directory"],
        "configs": config["configs_directory"],
    }


def set_up(manager, spec: dict, job_id: str, tool_id: str):
    """A client for the job and its setup: (client, local dirs, setup config, remote dirs)."""
    client = make_client(manager, spec, job_id)
    local = local_job_dirs(spec["workdir"], job_id)
    config = client.setup(tool_id, "1.0", False)
    return client, local, config, remote_dirs(config)


def wait_terminal(client, poll_interval: float, timeout: float = 600.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get_status()
        if status in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"job still {status} after {timeout}s")
        time.sleep(poll_interval)


def local_job_dirs(root: str, job_id: str) -> dict:
    base = os.path.join(root, job_id)
    dirs = {name: os.path.join(base, name) for name in ("working", "metadata", "outputs", "inputs")}
    for path in dirs.values():
        os.makedirs(path, exist_ok=True)
    dirs["job"] = base
    return dirs


def describe(command_line: str, local: dict, outputs: list[str], inputs: list[str],
             config_files: list[str] | None = None, job_files: list[str] | None = None):
    client_outputs = ClientOutputs(
        working_directory=local["working"],
        metadata_directory=local["metadata"],
        output_files=outputs,
        work_dir_outputs=[],
        dynamic_outputs=[],
    )
    client_inputs = ClientInputs([ClientInput(path, CLIENT_INPUT_PATH_TYPES.INPUT_PATH) for path in inputs])
    description = ClientJobDescription(
        command_line=command_line,
        client_inputs=client_inputs,
        client_outputs=client_outputs,
        working_directory=local["working"],
        metadata_directory=local["metadata"],
        config_files=config_files or [],
        job_directory_files=job_files or [],
        arbitrary_files={},
        env=[],
        rewrite_paths=False,
        touch_outputs=[],
    )
    return description, client_outputs


def finish(client, client_outputs, cleanup: str) -> tuple[dict, list]:
    full = client.full_status()
    pulsar_outputs = PulsarOutputs.from_status_response(full)
    failures = finish_job(client=client, cleanup_job=cleanup, job_completed_normally=True,
                          client_outputs=client_outputs, pulsar_outputs=pulsar_outputs)
    return full, list(failures or [])


# --- modes ---------------------------------------------------------------------------------

def run_transfer(spec: dict) -> dict:
    manager = build_client_manager(manager=None, cache=None, transport=None, persistence_directory=None)
    job_id = spec["job_id"]
    client = make_client(manager, spec, job_id)
    local = local_job_dirs(spec["workdir"], job_id)
    config = client.setup("bench_transfer", "1.0", False)
    remote = remote_dirs(config)
    input_path = spec["input_path"]
    output_name = "dataset_2.dat"
    output_path = os.path.join(local["outputs"], output_name)
    command = f"cp {remote['inputs']}/{os.path.basename(input_path)} {remote['outputs']}/{output_name}"
    description, client_outputs = describe(command, local, [output_path], [input_path])
    phase("upload-start")
    upload_start = time.time()
    submit_job(client, description, config)
    upload_end = time.time()
    phase("upload-end")
    status = wait_terminal(client, 0.02)
    full = client.full_status()
    pulsar_outputs = PulsarOutputs.from_status_response(full)
    phase("download-start")
    download_start = time.time()
    failures = finish_job(client=client, cleanup_job="never", job_completed_normally=True,
                          client_outputs=client_outputs, pulsar_outputs=pulsar_outputs)
    download_end = time.time()
    phase("download-end")
    client.clean()
    ok = status == "complete" and not failures and os.path.exists(output_path)
    checksum = sha256_of(output_path) if os.path.exists(output_path) else None
    size = os.path.getsize(output_path) if os.path.exists(output_path) else 0
    if os.path.exists(output_path):
        os.unlink(output_path)
    return {
        "status": status,
        "failures": [repr(f) for f in failures],
        "ok": ok and checksum == spec["sha256"],
        "checksum_ok": checksum == spec["sha256"],
        "bytes": size,
        "upload": [upload_start, upload_end],
        "download": [download_start, download_end],
    }


TOOL_SCRIPT = """#!/bin/sh
# a trivial Galaxy-like tool: copy the input, say something on stdout
cat "$1" > "$2"
echo "tool ran"
"""


def run_one_job(manager, spec: dict, job_id: str) -> dict:
    started = time.time()
    client = make_client(manager, spec, job_id)
    local = local_job_dirs(spec["workdir"], job_id)
    config = client.setup("bench_cat", "1.0", False)
    remote = remote_dirs(config)
    tool_script = os.path.join(local["job"], "tool_script.sh")
    with open(tool_script, "w") as handle:
        handle.write(TOOL_SCRIPT)
    config_file = os.path.join(local["job"], "galaxy.conf")
    with open(config_file, "w") as handle:
        handle.write(f"job={job_id}\n")
    input_path = os.path.join(local["inputs"], "dataset_1.dat")
    with open(input_path, "w") as handle:
        handle.write(f"input of {job_id}\n")
    output_path = os.path.join(local["outputs"], "dataset_2.dat")
    command = (f"cd {remote['working']} && sh {remote['job']}/tool_script.sh "
               f"{remote['inputs']}/dataset_1.dat {remote['outputs']}/dataset_2.dat "
               f"> {remote['metadata']}/tool_stdout 2> {remote['metadata']}/tool_stderr")
    description, client_outputs = describe(command, local, [output_path], [input_path],
                                           config_files=[config_file], job_files=[tool_script])
    submit_job(client, description, config)
    status = wait_terminal(client, spec["poll_interval"])
    _full, failures = finish(client, client_outputs, "always")
    ended = time.time()
    try:
        with open(output_path) as handle:
            content_ok = handle.read() == f"input of {job_id}\n"
    except OSError:
        content_ok = False
    return {"latency": ended - started, "ok": status == "complete" and not failures and content_ok,
            "status": status, "failures": [repr(f) for f in failures][:3]}


def run_concurrently(one, job_ids: list, concurrency: int) -> tuple[float, float, float]:
    """`one(job_id)` for every id, `concurrency` at a time: (start, end, this process's CPU)."""
    cpu_before = cpu_seconds()
    start = time.time()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, job_ids))
    return start, time.time(), cpu_seconds() - cpu_before


def run_jobs(spec: dict) -> dict:
    manager = build_client_manager(manager=None, cache=None, transport=None, persistence_directory=None)
    ids = [f"{spec['id_prefix']}{i}" for i in range(spec["count"])]
    results: list[dict] = []
    lock = threading.Lock()

    def one(job_id: str) -> None:
        try:
            result = run_one_job(manager, spec, job_id)
        except Exception as exc:  # a broken job is a result, not a crash of the benchmark
            result = {"latency": None, "ok": False, "status": "error", "failures": [repr(exc)]}
        with lock:
            results.append(result)

    phase("jobs-start")
    start, end, client_cpu = run_concurrently(one, ids, spec["concurrency"])
    phase("jobs-end")
    bad = [r for r in results if not r["ok"]]
    return {
        "window": [start, end],
        "client_cpu_s": client_cpu,
        "latencies": [r["latency"] for r in results if r["latency"] is not None],
        "failed": len(bad),
        "failure_examples": [r for r in bad][:3],
    }


def record_exit_latency(job_id: str, status: str, seen: float, stamp: str, latencies: list, problems: list) -> None:
    """`seen` minus the job's exit stamp into `latencies`, or why not into `problems`."""
    try:
        with open(stamp) as handle:
            exited = float(handle.read().strip())
        if status == "complete":
            latencies.append(seen - exited)
        else:
            problems.append(f"{job_id}: {status}")
    except (OSError, ValueError) as exc:
        problems.append(f"{job_id}: {status}, no timestamp ({exc})")


def run_exit_latency(spec: dict) -> dict:
    manager = build_client_manager(manager=None, cache=None, transport=None, persistence_directory=None)
    latencies = []
    problems = []
    for index in range(spec["count"]):
        job_id = f"{spec['id_prefix']}{index}"
        client, local, config, remote = set_up(manager, spec, job_id, "bench_exit")
        stamp = os.path.join(remote["job"], "bench_exit_ts")
        command = f"sleep {spec['job_sleep']}; date +%s.%N > {stamp}"
        description, _outputs = describe(command, local, [], [])
        submit_job(client, description, config)
        status = wait_terminal(client, spec["poll_interval"])
        record_exit_latency(job_id, status, time.time(), stamp, latencies, problems)
        client.clean()
    return {"latencies": latencies, "problems": problems[:5], "failed": len(problems)}


class SocketBytes:
    """Bytes through every TCP socket this process opens from now on (HTTP heads and bodies,
    both directions): `socket.socket` is replaced by a subclass counting `send*`/`recv*`,
    which is what `socket.create_connection` (so http.client, so both clients) builds."""

    def __init__(self):
        import socket

        self.sent = 0
        self.received = 0
        lock = threading.Lock()
        counter = self

        def count(attribute, amount):
            with lock:
                setattr(counter, attribute, getattr(counter, attribute) + amount)

        class CountingSocket(socket.socket):
            def send(self, data, *args):
                sent = super().send(data, *args)
                count("sent", sent)
                return sent

            def sendall(self, data, *args):
                result = super().sendall(data, *args)
                count("sent", memoryview(data).nbytes)
                return result

            def sendfile(self, file, offset=0, count_=None):
                sent = super().sendfile(file, offset, count_)
                count("sent", sent)
                return sent

            def recv(self, size, *args):
                data = super().recv(size, *args)
                count("received", len(data))
                return data

            def recv_into(self, buffer, *args):
                received = super().recv_into(buffer, *args)
                count("received", received)
                return received

        socket.socket = CountingSocket


def run_shared_input(spec: dict) -> dict:
    counter = SocketBytes()
    manager = build_client_manager(manager=None, cache=bool(spec["cache"]), transport=None,
                                   persistence_directory=None)
    input_path = spec["input_path"]
    size = os.path.getsize(input_path)
    problems: list[str] = []
    lock = threading.Lock()

    def one(job_id: str) -> None:
        try:
            client, local, config, remote = set_up(manager, spec, job_id, "bench_shared")
            output_path = os.path.join(local["outputs"], "size.txt")
            command = f"wc -c < {remote['inputs']}/{os.path.basename(input_path)} > {remote['outputs']}/size.txt"
            description, client_outputs = describe(command, local, [output_path], [input_path])
            submit_job(client, description, config)
            status = wait_terminal(client, spec["poll_interval"])
            _full, failures = finish(client, client_outputs, "always")
            with open(output_path) as handle:
                seen = handle.read().strip()
            if status != "complete" or failures or seen != str(size):
                raise RuntimeError(f"{status}, {failures[:1]}, input seen as {seen!r} bytes of {size}")
        except Exception as exc:
            with lock:
                problems.append(f"{job_id}: {exc!r}"[:300])

    ids = [f"{spec['id_prefix']}{i}" for i in range(spec["count"])]
    start, end, client_cpu = run_concurrently(one, ids, spec["concurrency"])
    manager.shutdown()
    return {"window": [start, end], "client_cpu_s": client_cpu, "sent": counter.sent,
            "received": counter.received, "failed": len(problems), "problems": problems[:3]}


MODES = {"transfer": run_transfer, "jobs": run_jobs, "exit_latency": run_exit_latency,
         "shared_input": run_shared_input}


def main() -> int:
    global PHASES
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    PHASES = bool(spec.get("phases"))
    result = MODES[spec["mode"]](spec)
    sys.stdout.write("BENCH-RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
