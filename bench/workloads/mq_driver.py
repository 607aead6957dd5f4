"""Drive a Pulsar server over the message queue through a Pulsar *client library*, the way
Galaxy's PulsarMQJobRunner does (mq-protocol spec §6).

Runs as a standalone script under either interpreter: ours (`.venv/bin/python` with this
checkout on PYTHONPATH) or the reference venv's (its own top-level `pulsar` package), so it
imports nothing from `bench` and only the client API both implementations share (through
its sibling `client_driver.py`).

Per run, like the runner at start-up: `build_client_manager(amqp_url=..., manager=...,
persistence_directory=...)`, `ensure_has_status_update_callback(cb)`,
`ensure_has_ack_consumers()`.  Per job, like `queue_job`: `get_client` with `jobs_directory`
= the server's staging directory, `setup()` (local, no network), `submit_job()` (one
`setup` message; the tool script travels inline as a config file).  The terminal
`status_update` reaches the callback; then, like `finish_job`, a fresh client reads
`full_status()` from the cache and `finish_job(...)` (nothing to move: every action is
remote) cleans the cache entry.

Usage: `python mq_driver.py SPEC.json`; SPEC holds `mode` plus the settings.  The result is
one JSON line on stdout prefixed with `BENCH-RESULT `.  Times are `time.time()`, the clock
the jobs' `date +%s.%N` stamps use.

Modes:
* `throughput`: `count` trivial jobs, at most `concurrency` in flight; reports the window
  from the first submit to the last finish, per-job latencies and their phases (submit,
  published -> terminal update received, finish).
* `exit_latency`: `count` jobs in sequence whose last act is writing `date +%s.%N` to a file;
  reports "terminal status_update received by the callback" minus that stamp.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import kombu  # both venvs have it: the MQ client needs it

# the HTTP driver's imports of the shared client API (0.15-style names, else the 0.16 modules);
# this script's directory is first on sys.path under either interpreter
from client_driver import (
    TERMINAL,
    ClientInputs,
    ClientJobDescription,
    ClientOutputs,
    PulsarOutputs,
    build_client_manager,
    finish_job,
    record_exit_latency,
    run_concurrently,
    submit_job,
)

#: what Galaxy 26.1 sends as `client_outputs.dynamic_outputs` (spec §3.2): the server pushes the
#: matching metadata files (tool_stdout, tool_stderr, __instrument_*) back to Galaxy.  Given
#: explicitly: an empty list means "the default patterns" to the reference, "none" to ours.
GALAXY_DYNAMIC_OUTPUTS = [r"primary_.*|galaxy.json|metadata_.*|dataset_\d+\.dat|__instrument_.*|dataset_\d+_files.+|"
                          r"outputs_populated/.*|tool_stdout|tool_stderr"]
TOOL_SCRIPT = "#!/bin/sh\n# a trivial tool: say something\necho tool ran\n"


class Updates:
    """The runner's status callback: remembers when each job's terminal update arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.terminal: dict[str, tuple[float, str]] = {}
        self.events: dict[str, threading.Event] = {}
        self.received = 0
        self.duplicates = 0

    def expect(self, job_id: str) -> threading.Event:
        with self.lock:
            return self.events.setdefault(job_id, threading.Event())

    def __call__(self, body: dict) -> None:
        now = time.time()
        job_id = str(body.get("job_id"))
        with self.lock:
            self.received += 1
            if body.get("status") not in TERMINAL:
                return
            if job_id in self.terminal:
                self.duplicates += 1
                return
            self.terminal[job_id] = (now, str(body.get("status")))
            event = self.events.setdefault(job_id, threading.Event())
        event.set()


def wait_for_consumer(url: str, queue: str, timeout: float = 60.0) -> None:
    """Block until `queue` exists with a consumer: the client's status_update consumer must be
    up before any job can finish, or the server's update is dropped (spec §2.3)."""
    deadline = time.monotonic() + timeout
    with kombu.Connection(url) as connection:
        while True:
            channel = connection.channel()
            try:
                _name, _messages, consumers = channel.queue_declare(queue=queue, passive=True)
                if consumers:
                    return
            except Exception:  # not declared yet (the passive declare closed the channel)
                pass
            finally:
                try:
                    channel.close()
                except Exception:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no consumer on {queue} after {timeout}s")
            time.sleep(0.05)


class Runner:
    """One client manager + the callback, shared by every job of the run."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.updates = Updates()
        os.makedirs(spec["persistence_directory"], exist_ok=True)
        self.manager = build_client_manager(amqp_url=spec["amqp_url"], manager=spec["manager"],
                                            persistence_directory=spec["persistence_directory"])
        self.manager.ensure_has_status_update_callback(self.updates)
        self.manager.ensure_has_ack_consumers()
        wait_for_consumer(spec["amqp_url"], f"pulsar_{spec['manager']}__status_update")
        self.destination = {
            "jobs_directory": spec["jobs_directory"],
            "default_file_action": "remote_transfer",
            "rewrite_parameters": "true",
            "dependency_resolution": "none",
        }
        self.endpoint = spec["files_endpoint"]  # Galaxy's job files API (the harness's stand-in)

    def client(self, job_id: str):
        return self.manager.get_client(dict(self.destination), job_id,
                                       files_endpoint=self.endpoint.format(job_id=job_id), env=[])

    def submit(self, job_id: str, command_template: str) -> dict:
        """`queue_job`: local setup, one `setup` message.  Returns the client outputs for finish."""
        client = self.client(job_id)
        local = os.path.join(self.spec["workdir"], "jobs", job_id)
        working, metadata = os.path.join(local, "working"), os.path.join(local, "metadata")
        for path in (working, metadata):
            os.makedirs(path, exist_ok=True)
        config = client.setup("bench_mq", "1.0", False)
        tool_script = os.path.join(local, "tool_script.sh")
        with open(tool_script, "w") as handle:
            handle.write(TOOL_SCRIPT)
        remote_script = config["configs_directory"] + config.get("path_separator", "/") + "tool_script.sh"
        command = command_template.format(working=config["working_directory"], script=remote_script,
                                          metadata=config["metadata_directory"], job_id=job_id)
        outputs = ClientOutputs(working_directory=working, metadata_directory=metadata, output_files=[],
                                work_dir_outputs=[], dynamic_outputs=GALAXY_DYNAMIC_OUTPUTS)
        description = ClientJobDescription(
            command_line=command, client_inputs=ClientInputs([]), client_outputs=outputs,
            working_directory=working, metadata_directory=metadata, config_files=[tool_script],
            job_directory_files=[], arbitrary_files={}, env=[], rewrite_paths=True, touch_outputs=[],
        )
        self.updates.expect(job_id)
        submit_job(client, description, config)
        return {"outputs": outputs}

    def finish(self, job_id: str, outputs) -> tuple[str, list]:
        """`finish_job`: a fresh client, the cached full status, nothing to download, clean."""
        client = self.client(job_id)
        full = client.full_status()
        pulsar_outputs = PulsarOutputs.from_status_response(full)
        failures = finish_job(client=client, cleanup_job="always", job_completed_normally=True,
                              client_outputs=outputs, pulsar_outputs=pulsar_outputs)
        return str(full.get("status")), [repr(f) for f in (failures or [])][:3]

    def wait(self, job_id: str) -> bool:
        return self.updates.expect(job_id).wait(self.spec.get("job_timeout", 60.0))

    def shutdown(self) -> None:
        self.manager.shutdown()


TRIVIAL = "cd {working} && sh {script} > {metadata}/tool_stdout 2> {metadata}/tool_stderr"


def run_throughput(spec: dict) -> dict:
    runner = Runner(spec)
    ids = [f"{spec['id_prefix']}{i}" for i in range(spec["count"])]
    results: list[dict] = []
    lock = threading.Lock()
    given_up = threading.Event()  # a lost update means the consumer is gone: do not wait out every job

    def attempt(job_id: str, started: float) -> dict:
        if given_up.is_set():
            return {"latency": None, "ok": False, "status": "not run (an earlier job got no update)", "failures": []}
        outputs = runner.submit(job_id, TRIVIAL)["outputs"]
        submitted = time.time()
        if not runner.wait(job_id):
            given_up.set()
            return {"latency": None, "ok": False, "status": "no terminal update", "failures": []}
        status, failures = runner.finish(job_id, outputs)
        ended = time.time()
        received = runner.updates.terminal[job_id][0]
        return {"latency": ended - started, "ok": status == "complete" and not failures, "status": status,
                "failures": failures, "phases": [submitted - started, received - submitted, ended - received]}

    def one(job_id: str) -> None:
        try:
            result = attempt(job_id, time.time())
        except Exception as exc:  # a broken job is a result, not a crash of the benchmark
            result = {"latency": None, "ok": False, "status": "error", "failures": [repr(exc)]}
        result["job_id"] = job_id
        with lock:
            results.append(result)

    start, end, client_cpu = run_concurrently(one, ids, spec["concurrency"])
    runner.shutdown()
    bad = [r for r in results if not r["ok"]]
    return {
        "window": [start, end],
        "client_cpu_s": client_cpu,
        "latencies": [r["latency"] for r in results if r["latency"] is not None],
        "phases": [r["phases"] for r in results if "phases" in r],
        "failed": len(bad),
        "failure_examples": bad[:3],
        "updates_received": runner.updates.received,
        "duplicate_terminal_updates": runner.updates.duplicates,
    }


def run_exit_latency(spec: dict) -> dict:
    runner = Runner(spec)
    stamps = os.path.join(spec["workdir"], "stamps")
    os.makedirs(stamps, exist_ok=True)
    latencies = []
    problems = []
    for index in range(spec["count"]):
        job_id = f"{spec['id_prefix']}{index}"
        stamp = os.path.join(stamps, job_id)
        # the job's last act: the exit stamp, on this machine's clock
        template = TRIVIAL + f"; sleep {spec['job_sleep']}; date +%s.%N > {stamp}"
        submitted = runner.submit(job_id, template)
        if not runner.wait(job_id):  # the consumer is gone (e.g. the broker restarted): stop here
            problems.append(f"{job_id}: no terminal update within {spec.get('job_timeout', 60.0)}s; "
                            f"{spec['count'] - index - 1} later jobs not run")
            break
        received, status = runner.updates.terminal[job_id]
        record_exit_latency(job_id, status, received, stamp, latencies, problems)
        runner.finish(job_id, submitted["outputs"])
    runner.shutdown()
    return {"latencies": latencies, "problems": problems[:5], "failed": len(problems)}


MODES = {"throughput": run_throughput, "exit_latency": run_exit_latency}


def main() -> int:
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    result = MODES[spec["mode"]](spec)
    sys.stdout.write("BENCH-RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the client's consumer threads are not daemons; a wedged one must not hang the harness


if __name__ == "__main__":
    sys.exit(main())
