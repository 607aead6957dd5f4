"""Run jobs against a Pulsar server through the REFERENCE client library's public API.

Executed by test_reference_clients.py with the python of a reference venv (pulsar-galaxy-lib
0.15.16 or 0.16.0), never imported by our code: `pulsar` here is the reference package.
Imports use the implementation modules (0.16.0 dropped the package-level re-exports; the
job-description models moved from `pulsar.client.staging` to `pulsar.client.staging.models`).

    python reference_client_jobs.py URL TOKEN WORKDIR RESULT_JSON

Writes a JSON object of observations to RESULT_JSON (stdout is not used: the reference
ClientManager prints to it).  Exit status 0 means the script ran to the end, not that the
server behaved; the test asserts on the observations.
"""

import json
import os
import sys
import time
import traceback

from pulsar.client.manager import build_client_manager
from pulsar.client.staging.down import finish_job
from pulsar.client.staging.up import submit_job

try:  # 0.16.0
    from pulsar.client.staging.models import ClientJobDescription, ClientOutputs, PulsarOutputs
except ImportError:  # 0.15.x keeps them in the package itself
    from pulsar.client.staging import ClientJobDescription, ClientOutputs, PulsarOutputs

POLL_TIMEOUT = 120.0
TERMINAL = ("complete", "cancelled", "failed", "lost")


class Tool:
    """What the client reads from Galaxy's Tool object."""

    def __init__(self, tool_dir):
        self.id = "reference_interop_tool"
        self.version = "1.0.1"
        self.tool_dir = tool_dir


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def read(path):
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read()


def wait_terminal(client, want=TERMINAL):
    deadline = time.time() + POLL_TIMEOUT
    seen = []
    while time.time() < deadline:
        status = client.full_status()
        if not seen or seen[-1] != status["status"]:
            seen.append(status["status"])
        if status["status"] in want:
            return status, seen
        time.sleep(0.2)
    raise AssertionError(f"no status in {want} after {POLL_TIMEOUT}s; saw {seen}")


class Scenario:
    def __init__(self, manager, url, token, root, job_id):
        self.root = os.path.join(root, job_id)
        self.working = os.path.join(self.root, "working")
        self.metadata = os.path.join(self.root, "metadata")
        self.outputs = os.path.join(self.root, "outputs")
        for path in (self.working, self.metadata, self.outputs):
            os.makedirs(path)
        destination = {"url": url, "private_token": token, "default_file_action": "transfer"}
        self.client = manager.get_client(destination, job_id=job_id)
        self.job_id = job_id


def full_job(manager, url, token, root, job_id):
    """Inputs, a tool file, a config file, declared/working-dir/metadata outputs."""
    job = Scenario(manager, url, token, root, job_id)
    tool_dir = os.path.join(job.root, "tool")
    script = write(os.path.join(tool_dir, "tool.sh"),
                   'cat "$1" > "$3"\ncat "$2" >> "$3"\n'
                   'echo "from the working directory" > wd_output.txt\n'
                   'echo \'{"k": 1}\' > ../metadata/metadata_results.json\n'
                   'echo "tool says hi"\necho "tool complains" >&2\n')
    input_path = write(os.path.join(job.root, "inputs", "dataset_1.dat"), "input one\n")
    config_path = write(os.path.join(job.root, "configs", "tool_config.txt"), "config line\n")
    output_path = os.path.join(job.outputs, "dataset_2.dat")
    work_dir_dest = os.path.join(job.outputs, "dataset_3.dat")
    command = (f'bash "{script}" "{input_path}" "{config_path}" "{output_path}"'
               " > ../metadata/tool_stdout 2> ../metadata/tool_stderr")
    client_outputs = ClientOutputs(
        working_directory=job.working,
        metadata_directory=job.metadata,
        output_files=[output_path, work_dir_dest],  # Galaxy lists work-dir destinations too
        work_dir_outputs=[(os.path.join(job.working, "wd_output.txt"), work_dir_dest)],
    )
    description = ClientJobDescription(
        command_line=command,
        tool=Tool(tool_dir),
        config_files=[config_path],
        input_files=[input_path],
        client_outputs=client_outputs,
        working_directory=job.working,
        metadata_directory=job.metadata,
        rewrite_paths=True,
    )
    returned_id = submit_job(job.client, description)
    status, seen = wait_terminal(job.client)
    failures = finish_job(
        client=job.client,
        cleanup_job="always",
        job_completed_normally=True,
        client_outputs=client_outputs,
        pulsar_outputs=PulsarOutputs.from_status_response(status),
    )
    after_clean = job.client.full_status()["status"]
    return {
        "returned_id": returned_id,
        "statuses": seen,
        "final": {k: status.get(k) for k in ("status", "complete", "returncode", "stdout", "stderr")},
        "finish_failures": [repr(f) for f in failures],
        "output": read(output_path),
        "work_dir_output": read(work_dir_dest),
        "metadata_output": read(os.path.join(job.metadata, "metadata_results.json")),
        "tool_stdout_downloaded": read(os.path.join(job.metadata, "tool_stdout")),
        "status_after_clean": after_clean,
    }


def failing_job(manager, url, token, root, job_id):
    job = Scenario(manager, url, token, root, job_id)
    outputs = ClientOutputs(working_directory=job.working, metadata_directory=job.metadata, output_files=[])
    description = ClientJobDescription(
        command_line="echo failing > ../metadata/tool_stdout; exit 3",
        client_outputs=outputs, working_directory=job.working, metadata_directory=job.metadata,
    )
    submit_job(job.client, description)
    status, seen = wait_terminal(job.client)
    failures = finish_job(client=job.client, cleanup_job="always", job_completed_normally=True,
                          client_outputs=outputs, pulsar_outputs=PulsarOutputs.from_status_response(status))
    return {"statuses": seen, "final": {k: status.get(k) for k in ("status", "complete", "returncode", "stdout")},
            "finish_failures": [repr(f) for f in failures]}


def cancelled_job(manager, url, token, root, job_id):
    job = Scenario(manager, url, token, root, job_id)
    outputs = ClientOutputs(working_directory=job.working, metadata_directory=job.metadata, output_files=[])
    description = ClientJobDescription(
        command_line="sleep 300", client_outputs=outputs,
        working_directory=job.working, metadata_directory=job.metadata,
    )
    submit_job(job.client, description)
    _, before = wait_terminal(job.client, want=("running",) + TERMINAL)
    job.client.kill()
    status, seen = wait_terminal(job.client)
    job.client.clean()
    return {"statuses": before + seen, "final": {"status": status["status"], "complete": status.get("complete")},
            "status_after_clean": job.client.full_status()["status"]}


def run_scenarios(scenarios, result_path, *args):
    """Run each scenario(manager, *args, job_id) with its own job id; write {name: result or
    {"error": traceback}} as JSON to result_path."""
    manager = build_client_manager()
    base = str(int(time.time() * 1000) % 10**9)
    results = {}
    for number, scenario in enumerate(scenarios, start=1):
        try:
            results[scenario.__name__] = scenario(manager, *args, f"{base}{number}")
        except Exception:
            results[scenario.__name__] = {"error": traceback.format_exc()}
    manager.shutdown()
    with open(result_path, "w") as handle:
        json.dump(results, handle, indent=2)


def main():
    url, token, root, result_path = sys.argv[1:5]
    run_scenarios((full_job, failing_job, cancelled_job), result_path, url, token, root)


if __name__ == "__main__":
    main()
