"""Drive a Pulsar client library over the message queue exactly as Galaxy 26.1's
PulsarMQJobRunner does, and report everything it saw.

Run by test_mq_reference.py with the python of a REFERENCE venv (pulsar-galaxy-lib 0.15.15,
0.15.16 or 0.16.0), or with ours to drive our client the same way; never imported: `pulsar`
here is whichever package that python finds.

    python reference_mq_driver.py CONFIG_JSON

CONFIG_JSON: {"amqp_url", "admin_url" (plain AMQP, for queue checks), "manager",
"jobs_directory" (= the server's staging directory), "galaxy_url", "job_key", "galaxy_root",
"persistence_directory", "result_path", "scenarios": [names], "amqp_options": {amqp_* runner
params}, "job_id_base", "destination" (optional: destination params over the MQ runner's,
e.g. another default_file_action and its ssh_*)}.

Galaxy's side, step by step (mq-protocol.md §6): one client manager built with
`build_client_manager(amqp_url=..., manager=..., cache=None, transport=None,
persistence_directory=..., amqp_*...)`; its status-update consumer and ack consumers started
at once; per job `get_client(destination, job_id, files_endpoint, token_endpoint, env)`, local
`setup()`, remote paths from a `PathMapper`, `submit_job(client, description, job_config)`;
the consumer callback only records; a terminal `complete`/`cancelled` is finished with a NEW
client for the Galaxy id (`full_status()` + `finish_job`), `failed`/`lost` is a Galaxy-side
failure (nothing sent); a cancel is `kill()` on a client for the external id.

Writes a JSON object to result_path (see `main`).  Exit 0 means the script ran to the end,
not that the server behaved: the tests assert on the observations.
"""

import json
import logging
import os
import sys
import threading
import time
import traceback

import kombu

import pulsar
from pulsar.client.manager import build_client_manager
from pulsar.client.path_mapper import PathMapper
from pulsar.client.staging.down import finish_job
from pulsar.client.staging.up import submit_job

try:  # 0.16.0 and ours
    from pulsar.client.staging.inputs import CLIENT_INPUT_PATH_TYPES, ClientInput, ClientInputs
    from pulsar.client.staging.models import ClientJobDescription, ClientOutputs, PulsarOutputs
except ImportError:  # 0.15.x keeps them in the package itself
    from pulsar.client.staging import (
        CLIENT_INPUT_PATH_TYPES,
        ClientInput,
        ClientInputs,
        ClientJobDescription,
        ClientOutputs,
        PulsarOutputs,
    )

# the REST driver beside this script (its directory is sys.path[0]), run by the same python
from reference_client_jobs import read, write

log = logging.getLogger("mq_driver")
TERMINAL = ("complete", "failed", "cancelled", "lost")
JOB_TIMEOUT = 120.0  # every job reaches a terminal state well within this, or the run reports it
REPLY_TIMEOUT = 10.0  # a status request is answered in ~10 ms (mq-protocol §4.1), if at all
QUIET_AFTER_KILL = 6.0  # > 10 monitor sweeps of the reference: long enough to see an unprompted update
SETTLE = 3.0  # after the last terminal update: duplicates would arrive within this
TOOL_ID, TOOL_VERSION = "mq_interop_tool", "1.0"


class Tool:
    """What the client reads from Galaxy's Tool object."""

    def __init__(self, tool_dir):
        self.id, self.version, self.tool_dir = TOOL_ID, TOOL_VERSION, tool_dir


class Dependencies:
    """Stands in for galaxy.tool_util.deps.dependencies.DependenciesDescription (only to_dict())."""

    def to_dict(self):
        return {"requirements": [], "installed_tool_dependencies": []}


class Recorder:
    """The status-update callback: records every body with its arrival time."""

    def __init__(self):
        self.condition = threading.Condition()
        self.updates = []  # (monotonic time, body)

    def __call__(self, body):
        with self.condition:
            self.updates.append((time.monotonic(), body))
            self.condition.notify_all()

    def for_job(self, job_id):
        with self.condition:
            return [(t, b) for t, b in self.updates if isinstance(b, dict) and b.get("job_id") == job_id]

    def wait_for(self, job_id, statuses, timeout):
        """The first update of `job_id` with a status in `statuses`, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while True:
                for _, body in self.updates:
                    if isinstance(body, dict) and body.get("job_id") == job_id and body.get("status") in statuses:
                        return body
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.condition.wait(remaining)


class GalaxyJob:
    """One Galaxy job: its local directories, destination and client (what queue_job builds)."""

    def __init__(self, driver, scenario, job_id):
        self.driver, self.scenario, self.job_id = driver, scenario, job_id
        root = driver.config["galaxy_root"]
        self.job_dir = os.path.join(root, "jobs", job_id)
        self.working = os.path.join(self.job_dir, "working")
        self.metadata = os.path.join(self.job_dir, "metadata")
        self.objects = os.path.join(root, "objects")
        for path in (self.working, self.metadata, os.path.join(self.job_dir, "outputs"), self.objects):
            os.makedirs(path, exist_ok=True)
        self.client = driver.client_for(job_id)
        self.job_config = self.client.setup(TOOL_ID, TOOL_VERSION, False)
        self.mapper = PathMapper(self.client, self.job_config, self.working)
        self.remote_job_dir = self.job_config["job_directory"]
        self.submitted_at = None
        self.result = {"job_id": job_id}

    def dataset(self, name, text=None):
        path = os.path.join(self.objects, f"dataset_{self.job_id}_{name}.dat")
        if text is not None:
            write(path, text)
        return path

    def submit(self, tool_script, inputs=(), outputs=(), config_text=None, tool_files=None):
        """Write tool_script.sh (remote paths already in it, as rewrite_parameters gives) and submit."""
        tool_dir = os.path.join(self.job_dir, "tool")
        for name, text in (tool_files or {}).items():
            write(os.path.join(tool_dir, name), text)
        config_files = []
        if config_text is not None:
            config_files.append(write(os.path.join(self.job_dir, "configs", "tool_config.txt"), config_text))
        script = write(os.path.join(self.job_dir, "tool_script.sh"), tool_script)
        config_files.append(script)
        rjob = self.remote_job_dir
        command_line = (f"bash {rjob}/tool_script.sh > ../metadata/tool_stdout 2> ../metadata/tool_stderr; "
                        f"return_code=$?; echo $return_code > {rjob}/galaxy_{self.job_id}.ec; "
                        'sh -c "exit $return_code"')
        client_inputs = ClientInputs([
            ClientInput(path, CLIENT_INPUT_PATH_TYPES.INPUT_PATH,
                        object_store_ref={"dataset_id": 1, "dataset_uuid": "u-1", "object_store_id": None})
            for path in inputs])
        self.client_outputs = ClientOutputs(
            working_directory=self.working, metadata_directory=self.metadata, output_files=list(outputs),
            work_dir_outputs=[], version_file=os.path.join(self.job_dir, "outputs", "COMMAND_VERSION"),
            dynamic_outputs=None, dynamic_file_sources=[{"path": "galaxy.json", "type": "galaxy"}],
            dataset_collector_descriptions=[])
        description = ClientJobDescription(
            command_line=command_line, tool=Tool(tool_dir) if tool_files else None, config_files=config_files,
            input_files=None, client_inputs=client_inputs, client_outputs=self.client_outputs,
            working_directory=self.working, metadata_directory=self.metadata, dependencies_description=Dependencies(),
            env=[], arbitrary_files={}, job_directory_files=[script], rewrite_paths=False,
            touch_outputs=[os.path.basename(o) for o in outputs], remote_pulsar_app_config={}, container=None,
            guest_ports=[])
        self.submitted_at = time.monotonic()
        self.result["returned_id"] = submit_job(self.client, description, self.job_config)

    def remote(self, kind, local):
        rewrite = {"input": self.mapper.remote_input_path_rewrite, "output": self.mapper.remote_output_path_rewrite}
        return rewrite[kind](local)

    def finish(self, body):
        """Galaxy's finish_job for `complete`/`cancelled`: a new client for the Galaxy id."""
        client = self.driver.client_for(self.job_id)
        full_status = client.full_status()
        failures = finish_job(client=client, cleanup_job="always", job_completed_normally=True,
                              client_outputs=self.client_outputs,
                              pulsar_outputs=PulsarOutputs.from_status_response(full_status))
        self.result["finish_failures"] = [repr(f) for f in failures]
        self.result["cached_after_finish"] = self.job_id in self.driver.manager.status_cache


# ---------------------------------------------------------------------------------- scenarios
# Each takes a fresh GalaxyJob and submits it; `expect` says which statuses end its wait.

def scenario_ok(job):
    """An input pulled by GET, a tool file, a config file inline, an output pushed by POST."""
    source = job.dataset("in", "input line\n")
    output = job.dataset("out")
    rtool = job.job_config["tools_directory"]
    rconfig = job.job_config["configs_directory"]
    script = (f"sleep 2\nbash {rtool}/helper.sh {job.remote('input', source)} {rconfig}/tool_config.txt "
              f"> {job.remote('output', output)}\necho 'tool says hi'\necho 'tool complains' >&2\n")
    job.submit(script, inputs=[source], outputs=[output], config_text="config line\n",
               tool_files={"helper.sh": 'cat "$1" "$2"\n'})
    job.result["galaxy_output_path"] = output


def scenario_exit3(job):
    """The tool fails: still `complete`, with returncode 3 and the tool's stderr."""
    job.submit("echo 'about to fail'\necho 'it went wrong' >&2\nexit 3\n")


def scenario_input_404(job):
    """Galaxy answers 404 for an input (the test injects it for *_gone.dat; the file must exist
    here, the client checks): pre-processing fails, the tool never runs."""
    missing = job.dataset("gone", "Galaxy will not serve this\n")
    marker = os.path.join(job.driver.config["galaxy_root"], "markers", f"{job.job_id}_tool_ran")  # outside the
    os.makedirs(os.path.dirname(marker), exist_ok=True)  # job directory, which a server may clean up
    job.submit(f"touch {marker}\ncat {job.remote('input', missing)}\n", inputs=[missing])
    job.result["tool_ran_marker"] = marker


def output_refused(job, tag):
    output = job.dataset(tag)
    job.submit(f"echo refused > {job.remote('output', output)}\n", outputs=[output])
    job.result["galaxy_output_path"] = output


def scenario_output_500(job):
    """Galaxy answers 500 to the output POST (the test injects it for *_reject500.dat)."""
    output_refused(job, "reject500")


def scenario_output_403(job):
    """Galaxy answers 403 to the output POST (the test injects it for *_reject403.dat)."""
    output_refused(job, "reject403")


def scenario_cancel(job):
    """A long tool, killed once `running` arrived (driven in Driver.cancel)."""
    marker = f"mq-driver-cancel-{job.job_id}"
    job.submit(f"python3 -c 'import time; time.sleep(300)' {marker}\n")
    job.result["process_marker"] = marker


def scenario_status_unknown(job):
    """`client.get_status()` for a job the server never saw (Galaxy's MQ runner never calls it,
    other tools do): 0.15.15 sends it to the SETUP queue (mq-protocol B8), later ones to `status`."""
    job.submitted_at = time.monotonic()
    job.result["returned_id"] = job.job_id
    job.client.get_status()
    job.result["job_directory"] = job.remote_job_dir


SCENARIOS = {"ok": scenario_ok, "exit3": scenario_exit3, "input_404": scenario_input_404,
             "output_500": scenario_output_500, "output_403": scenario_output_403, "cancel": scenario_cancel,
             "status_unknown": scenario_status_unknown}


# ---------------------------------------------------------------------------------- the runner

class Driver:
    def __init__(self, config):
        self.config = config
        self.recorder = Recorder()
        manager_kwargs = {"amqp_url": config["amqp_url"], "manager": config["manager"], "cache": None,
                          "transport": None, "persistence_directory": config.get("persistence_directory")}
        manager_kwargs.update(config.get("amqp_options") or {})
        self.manager = build_client_manager(**manager_kwargs)
        self.manager.ensure_has_status_update_callback(self.recorder)
        self.manager.ensure_has_ack_consumers()
        self.destination = {"jobs_directory": config["jobs_directory"], "default_file_action": "remote_transfer",
                            "rewrite_parameters": "true", "dependency_resolution": "remote",
                            **(config.get("destination") or {})}

    def client_for(self, job_id):
        galaxy, key = self.config["galaxy_url"], self.config["job_key"]
        return self.manager.get_client(
            dict(self.destination), job_id=job_id,
            files_endpoint=f"{galaxy}/api/jobs/{job_id}/files?job_key={key}",
            token_endpoint=f"{galaxy}/api/jobs/{job_id}/oidc-tokens?job_key={key}", env=[])

    def wait_for_queue(self, logical, ready, timeout=30.0):
        """Poll `<prefix>_<logical>` (passive declare) until `ready(messages, consumers)`."""
        prefix = self.config.get("amqp_options", {}).get("amqp_key_prefix")
        manager = self.config["manager"]
        prefix = prefix if prefix is not None else ("pulsar_" if manager == "_default_" else f"pulsar_{manager}_")
        queue = f"{prefix}_{logical}"
        deadline = time.monotonic() + timeout
        with kombu.Connection(self.config.get("admin_url") or self.config["amqp_url"]) as connection:
            while time.monotonic() < deadline:
                channel = connection.channel()
                try:
                    _, messages, consumers = channel.queue_declare(queue=queue, passive=True)
                    if ready(messages, consumers):
                        return
                except Exception:  # not declared yet: the passive declare closed the channel
                    pass
                finally:
                    try:
                        channel.close()
                    except Exception:
                        pass
                time.sleep(0.1)
        raise AssertionError(f"{queue} not ready after {timeout}s")

    def wait_until_consuming(self):
        """Galaxy's consumer declares `..._status_update` when it starts; an update published
        before that is dropped by the broker (B3), so do not submit until it consumes."""
        self.wait_for_queue("status_update", lambda messages, consumers: consumers > 0)

    def cancel(self, job):
        """Galaxy's stop_job: a client for the external id, kill().  Then: is anything
        published unprompted, does a status request answer, did the process die?"""
        running = self.recorder.wait_for(job.job_id, ("running",) + TERMINAL, JOB_TIMEOUT)
        job.result["before_kill"] = running and running.get("status")
        # Kill once the tool's process exists, as a user would (seconds later): a kill while the
        # job script is still forking races with any tree walk (the reference's leaves an orphan).
        deadline = time.monotonic() + JOB_TIMEOUT
        while not processes_with(job.result["process_marker"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        job.result["tool_process_seen"] = bool(processes_with(job.result["process_marker"]))
        killed_at = time.monotonic()
        self.client_for(job.result.get("returned_id") or job.job_id).kill()
        job.result["killed_at"] = killed_at - job.submitted_at
        time.sleep(QUIET_AFTER_KILL)  # absence of an update can only be seen by waiting
        requested_at = time.monotonic()
        self.manager.exchange.publish("status", {"job_id": job.job_id})
        job.result["status_requested_at"] = requested_at - job.submitted_at
        deadline = time.monotonic() + JOB_TIMEOUT
        while time.monotonic() < deadline:
            replies = [b for t, b in self.recorder.for_job(job.job_id) if t >= requested_at]
            if replies:
                job.result["status_reply"] = replies[0].get("status")
                break
            time.sleep(0.1)
        job.result["survivors"] = processes_with(job.result["process_marker"])

    def run(self, names):
        self.wait_until_consuming()
        base = self.config.get("job_id_base") or str(int(time.time() * 1000) % 10**9)
        jobs = {}
        for number, name in enumerate(names, start=1):
            job = GalaxyJob(self, name, f"{base}{number}")
            jobs[name] = job
            try:
                SCENARIOS[name](job)
            except Exception:
                job.result["error"] = traceback.format_exc()
        if "cancel" in jobs and "error" not in jobs["cancel"].result:
            try:
                self.cancel(jobs["cancel"])
            except Exception:
                jobs["cancel"].result["error"] = traceback.format_exc()
            finally:  # whatever happened, leave no 300 s tool behind to report later
                kill_processes_with(jobs["cancel"].result["process_marker"])
        for name, job in jobs.items():
            if "error" in job.result or name == "cancel":
                continue
            if name == "status_unknown":  # an answer comes within milliseconds, or never
                self.recorder.wait_for(job.job_id, TERMINAL, REPLY_TIMEOUT)
                continue
            body = self.recorder.wait_for(job.job_id, TERMINAL, JOB_TIMEOUT)
            if body is None:
                job.result["error"] = f"no terminal status after {JOB_TIMEOUT}s"
                continue
            if body["status"] in ("complete", "cancelled"):
                try:
                    job.finish(body)
                except Exception:
                    job.result["error"] = traceback.format_exc()
        time.sleep(SETTLE)
        for job in jobs.values():
            job.result["updates"] = [{"t": round(t - job.submitted_at, 3), "body": body}
                                     for t, body in self.recorder.for_job(job.job_id)] if job.submitted_at else []
            if "galaxy_output_path" in job.result:
                job.result["galaxy_output"] = read(job.result["galaxy_output_path"])
            if "job_directory" in job.result:
                job.result["job_directory_exists"] = os.path.exists(job.result["job_directory"])
            if "tool_ran_marker" in job.result:
                job.result["tool_ran"] = os.path.exists(job.result["tool_ran_marker"])
        known = {job.job_id for job in jobs.values()}
        return {
            "client_version": pulsar.__version__,
            "unacknowledged": unacknowledged(self.config.get("persistence_directory")),
            "jobs": {name: job.result for name, job in jobs.items()},
            "stray_updates": [b for _, b in self.recorder.updates
                              if not (isinstance(b, dict) and b.get("job_id") in known)],
        }

    def shutdown(self, timeout=15.0):
        """Stop the consumers; True when every consumer thread ended within `timeout`."""
        stopper = threading.Thread(target=self.manager.shutdown, kwargs={"ensure_cleanup": True}, daemon=True)
        stopper.start()
        stopper.join(timeout)
        return not stopper.is_alive()


def unacknowledged(persistence_directory):
    """Messages this client published with an ack request and got no ack for yet: the files
    of every `publish` store below its persistence directory (whatever the layout); None when
    there is no such store (acks were never requested)."""
    found = None
    for directory, _, files in os.walk(persistence_directory or "/nonexistent"):
        if os.path.basename(directory) == "publish":
            found = (found or []) + [os.path.join(directory, name) for name in files if not name.startswith(".")]
    return found


def kill_processes_with(marker):
    for pid in processes_with(marker, pids=True):
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def processes_with(marker, pids=False):
    """Command lines of live processes that mention `marker` (a killed job leaves none)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as handle:
                zombie = handle.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if marker in cmdline and not zombie and int(pid) != os.getpid():
            found.append(int(pid) if pids else cmdline.strip())
    return found


def run_galaxy_restart(config):
    """Galaxy stops while its job runs and starts again after the job ended (mq-protocol §8.17):
    the terminal update waits in the durable queue and reaches the NEW client manager, which
    finishes the job; nothing is re-sent by Galaxy.  The tool waits for a `go` file, written
    once the first manager has stopped."""
    first = Driver(config)
    first.wait_until_consuming()
    job = GalaxyJob(first, "galaxy_restart", (config.get("job_id_base") or "7") + "9")
    go = os.path.join(config["galaxy_root"], "markers", f"{job.job_id}_go")
    os.makedirs(os.path.dirname(go), exist_ok=True)
    job.submit(f"while [ ! -e {go} ]; do sleep 0.1; done\necho after the restart\n")
    before = first.recorder.wait_for(job.job_id, ("running",) + TERMINAL, JOB_TIMEOUT)
    job.result["before_stop"] = before and before.get("status")
    job.result["first_shutdown_clean"] = first.shutdown()
    write(go, "")
    first.wait_for_queue("status_update", lambda messages, consumers: messages > 0, JOB_TIMEOUT)
    second = job.driver = Driver(config)
    body = second.recorder.wait_for(job.job_id, TERMINAL, JOB_TIMEOUT)
    if body is None:
        job.result["error"] = f"the restarted manager got no terminal status after {JOB_TIMEOUT}s"
    elif body["status"] in ("complete", "cancelled"):
        job.finish(body)
    time.sleep(SETTLE)
    job.result["first_updates"] = [b.get("status") for _, b in first.recorder.for_job(job.job_id)]
    job.result["updates"] = [{"t": round(t - job.submitted_at, 3), "body": b} for t, b in second.recorder.for_job(job.job_id)]
    return {"client_version": pulsar.__version__, "jobs": {"galaxy_restart": job.result},
            "stray_updates": [b for _, b in second.recorder.updates if b.get("job_id") != job.job_id]}, second


def main():
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [%(name)s][%(threadName)s] %(message)s")
    with open(sys.argv[1]) as handle:
        config = json.load(handle)
    driver = None
    try:
        if config.get("mode") == "galaxy_restart":
            results, driver = run_galaxy_restart(config)
        else:
            driver = Driver(config)
            results = driver.run(config["scenarios"])
    except Exception:
        results = {"error": traceback.format_exc()}
    results["shutdown_clean"] = driver.shutdown() if driver is not None else None
    with open(config["result_path"], "w") as handle:
        json.dump(results, handle, indent=2)
    sys.stderr.flush()
    os._exit(0)  # a consumer thread that did not stop must not hang the run (shutdown_clean says so)


if __name__ == "__main__":
    main()
