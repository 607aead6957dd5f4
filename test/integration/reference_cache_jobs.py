"""Run jobs sharing one input through the REFERENCE client's caching variant.

Executed by test_file_cache.py with the python of a reference venv, never imported by our
code: `pulsar` here is the reference package.  The manager is built with `cache=True`, the
client-manager option Galaxy's `cache` runner param sets (PULSAR_CACHE_TRANSFERS=1 does the
same), so every input goes through PUT/POST /cache, GET /cache/status and a
`cache_token` upload.

    python reference_cache_jobs.py URL TOKEN WORKDIR RESULT_JSON INPUT JOB_SPEC_JSON

JOB_SPEC_JSON is a list of {"job_id": ..., "after": shell} run one after the other: each job
writes the sha256 of its staged copy of INPUT to its output, then runs `after` with `$INPUT`
set to that copy (e.g. to write into it).  RESULT_JSON gets, per job, its final status and
output.
"""

import json
import os
import sys
import traceback

from reference_client_jobs import Scenario, read, wait_terminal

from pulsar.client.manager import build_client_manager
from pulsar.client.staging.down import finish_job
from pulsar.client.staging.up import submit_job

try:  # 0.16.0
    from pulsar.client.staging.models import ClientJobDescription, ClientOutputs, PulsarOutputs
except ImportError:  # 0.15.x
    from pulsar.client.staging import ClientJobDescription, ClientOutputs, PulsarOutputs


def run_job(manager, url, token, root, job_id, input_path, after):
    job = Scenario(manager, url, token, root, job_id)
    output_path = os.path.join(job.outputs, "digest.txt")
    command = (f'INPUT="{input_path}"; sha256sum "$INPUT" | cut -d" " -f1 > "{output_path}"; '
               f'{after or "true"}')
    outputs = ClientOutputs(working_directory=job.working, metadata_directory=job.metadata,
                            output_files=[output_path])
    description = ClientJobDescription(
        command_line=command, input_files=[input_path], client_outputs=outputs,
        working_directory=job.working, metadata_directory=job.metadata, rewrite_paths=True,
    )
    submit_job(job.client, description)
    status, seen = wait_terminal(job.client)
    failures = finish_job(client=job.client, cleanup_job="always", job_completed_normally=True,
                          client_outputs=outputs, pulsar_outputs=PulsarOutputs.from_status_response(status))
    return {"statuses": seen, "status": status["status"], "stderr": status.get("stderr"),
            "output": (read(output_path) or "").strip(), "finish_failures": [repr(f) for f in failures]}


def main():
    url, token, root, result_path, input_path, spec = sys.argv[1:7]
    manager = build_client_manager(cache=True)
    results = {}
    for job in json.loads(spec):
        try:
            results[job["job_id"]] = run_job(manager, url, token, root, job["job_id"], input_path, job.get("after"))
        except Exception:
            results[job["job_id"]] = {"error": traceback.format_exc()}
    with open(result_path, "w") as handle:
        json.dump(results, handle, indent=2)
    os._exit(0)  # the reference's insert threads are not daemonic in every version


if __name__ == "__main__":
    main()
