"""Jobs whose files move by scp/rsync, through the REFERENCE client library (0.15.16).

Executed by test_ssh_actions.py with the python of the reference venv, never imported by our
code: `pulsar` here is the reference package.

    python reference_ssh_job.py URL TOKEN WORKDIR DESTINATION_JSON RESULT_JSON

DESTINATION_JSON holds `default_file_action`, the `ssh_*` destination params and
`stranger_key`, a key the ssh host refuses.  Writes a
JSON object of observations to RESULT_JSON; the test asserts on them.
"""

import json
import os
import sys

from reference_client_jobs import read, run_scenarios, wait_terminal, write  # beside this script

from pulsar.client.staging import ClientJobDescription, ClientOutputs, PulsarOutputs
from pulsar.client.staging.down import finish_job
from pulsar.client.staging.up import submit_job


class Tool:
    def __init__(self, tool_dir):
        self.id = "reference_ssh_tool"
        self.version = "1.0"
        self.tool_dir = tool_dir


def directories(root):
    working, metadata, outputs = (os.path.join(root, d) for d in ("working", "metadata", "outputs"))
    for path in (working, metadata, outputs):
        os.makedirs(path)
    return working, metadata, outputs


def ssh_job(manager, destination, root, job_id):
    """Two inputs (one with a space), a tool file, a config file; declared, working-directory
    and metadata outputs, the declared one in a directory that does not exist yet."""
    root = os.path.join(root, job_id)
    working, metadata, outputs = directories(root)
    tool_dir = os.path.join(root, "tool")
    script = write(os.path.join(tool_dir, "tool.sh"),
                   'cat "$1" "$2" "$3" > "$4"\n'
                   'echo "from the working directory" > wd_output.txt\n'
                   'echo \'{"k": 1}\' > ../metadata/metadata_results.json\n')
    first = write(os.path.join(root, "files", "dataset 1.dat"), "input one\n" * 1000)
    second = write(os.path.join(root, "files", "dataset_2.dat"), "input two\n")
    config = write(os.path.join(root, "configs", "tool_config.txt"), "config line\n")
    output = os.path.join(root, "new", "outputs", "dataset_3.dat")
    work_dir_dest = os.path.join(outputs, "dataset_4.dat")
    command = (f'bash "{script}" "{first}" "{second}" "{config}" "{output}"'
               " > ../metadata/tool_stdout 2> ../metadata/tool_stderr")
    client_outputs = ClientOutputs(working_directory=working, metadata_directory=metadata,
                                   output_files=[output, work_dir_dest],
                                   work_dir_outputs=[(os.path.join(working, "wd_output.txt"), work_dir_dest)])
    description = ClientJobDescription(command_line=command, tool=Tool(tool_dir), config_files=[config],
                                       input_files=[first, second], client_outputs=client_outputs,
                                       working_directory=working, metadata_directory=metadata, rewrite_paths=True)
    client = manager.get_client(destination, job_id=job_id)
    submit_job(client, description)
    status, _ = wait_terminal(client)
    failures = finish_job(client=client, cleanup_job="always", job_completed_normally=True,
                          client_outputs=client_outputs, pulsar_outputs=PulsarOutputs.from_status_response(status))
    return {
        "final": {k: status.get(k) for k in ("status", "returncode", "stdout", "stderr")},
        "finish_failures": [repr(f) for f in failures],
        "output": read(output),
        "expected_output": "input one\n" * 1000 + "input two\n" + "config line\n",
        "work_dir_output": read(work_dir_dest),
        "metadata_output": read(os.path.join(metadata, "metadata_results.json")),
    }


def refused_key(manager, destination, root, job_id):
    """The same destination with a key the ssh host does not accept."""
    root = os.path.join(root, job_id)
    working, metadata, _ = directories(root)
    dataset = write(os.path.join(root, "files", "dataset_9.dat"), "never fetched\n")
    client_outputs = ClientOutputs(working_directory=working, metadata_directory=metadata, output_files=[])
    description = ClientJobDescription(command_line=f"cat {dataset}", input_files=[dataset],
                                       client_outputs=client_outputs, working_directory=working,
                                       metadata_directory=metadata)
    client = manager.get_client({**destination, "ssh_key": destination["stranger_key"]}, job_id=job_id)
    submit_job(client, description)
    status, _ = wait_terminal(client)
    client.clean()
    return {"final": {k: status.get(k) for k in ("status", "returncode", "stderr")}, "input": dataset}


def main():
    url, token, root, params, result_path = sys.argv[1:6]
    destination = {"url": url, "private_token": token, **json.loads(params)}
    run_scenarios((ssh_job, refused_key), result_path, destination, root)


if __name__ == "__main__":
    main()
