"""A Galaxy-shaped job for the MQ client tests, built the way `PulsarMQJobRunner.queue_job` does.

Galaxy's MQ runner: destination with `jobs_directory` and `default_file_action:
remote_transfer`, `get_client(..., files_endpoint=, token_endpoint=, env=)`, local setup,
remote paths from `PathMapper` written into the command line and config files
(`rewrite_parameters: true`, so `rewrite_paths=False`), then `submit_job(client, description,
setup)`.  Galaxy's disk is a directory the fake files API serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulsar.client import (
    CLIENT_INPUT_PATH_TYPES,
    ClientInput,
    ClientInputs,
    ClientJobDescription,
    ClientOutputs,
    PathMapper,
)
from test.support.polling import wait_for

INPUT_BYTES = b"input line 1\ninput line 2\n"


class Galaxy:
    """The runner's `__async_update` callback: records every document it is handed (and
    raises for the first `fail_first`, like a Galaxy that cannot load the job)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_first = fail_first

    def __call__(self, body: dict[str, Any]) -> None:
        self.received.append(body)
        if len(self.received) <= self.fail_first:
            raise RuntimeError("Galaxy could not load the job")

    def statuses(self, job_id: str) -> list[str]:
        return [b["status"] for b in self.received if b.get("job_id") == job_id]

    def wait(self, job_id: str, status: str, timeout: float = 15.0) -> None:
        wait_for(lambda: status in self.statuses(job_id), timeout, what=f"{status} of job {job_id}")

    def wait_terminal(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        def terminal() -> dict[str, Any] | None:
            return next((b for b in self.received if b.get("job_id") == job_id and b.get("complete") == "true"), None)

        document: dict[str, Any] = wait_for(terminal, timeout, what=f"a terminal update for job {job_id}")
        return document


@dataclass
class GalaxyJob:
    galaxy_id: str
    description: ClientJobDescription
    setup: dict[str, Any]
    input_path: Path
    output_path: Path
    config_path: Path
    remote_output: str


def destination(jobs_directory: str | Path, **extra: Any) -> dict[str, Any]:
    """The MQ runner's destination defaults plus `extra`."""
    return {"jobs_directory": str(jobs_directory), "default_file_action": "remote_transfer",
            "rewrite_parameters": "true", "dependency_resolution": "remote", "remote_sep": "/", **extra}


def galaxy_job(client: Any, galaxy_root: Path, galaxy_id: str, *, exit_code: int = 0) -> GalaxyJob:
    """Local setup plus a description that copies one input to one output via a config file."""
    setup = client.setup("cat1", "1.0.0", None)
    objects = galaxy_root / "objects"
    job_dir = galaxy_root / "jobs" / galaxy_id
    working, metadata = job_dir / "working", job_dir / "metadata"
    for directory in (objects, working, metadata):
        directory.mkdir(parents=True, exist_ok=True)
    input_path = objects / f"dataset_{galaxy_id}_in.dat"
    input_path.write_bytes(INPUT_BYTES)
    output_path = objects / f"dataset_{galaxy_id}_out.dat"
    mapper = PathMapper(client, setup, str(working))
    remote_input = mapper.remote_input_path_rewrite(str(input_path), CLIENT_INPUT_PATH_TYPES.INPUT_PATH)
    remote_output = mapper.remote_output_path_rewrite(str(output_path))
    assert remote_input and remote_output
    config_path = job_dir / "tool_script.sh"
    config_path.write_text(f"cat '{remote_input}' > '{remote_output}'\nexit {exit_code}\n")
    remote_config = f"{setup['configs_directory']}/tool_script.sh"
    outputs = ClientOutputs(working_directory=str(working), output_files=[str(output_path)],
                            metadata_directory=str(metadata),
                            dynamic_file_sources=[{"path": "galaxy.json", "type": "galaxy"}])
    inputs = ClientInputs([ClientInput(str(input_path), CLIENT_INPUT_PATH_TYPES.INPUT_PATH,
                                       object_store_ref={"dataset_id": 1, "dataset_uuid": "u-1",
                                                         "object_store_id": None})])
    description = ClientJobDescription(
        command_line=f"bash '{remote_config}'", client_inputs=inputs, client_outputs=outputs,
        config_files=[str(config_path)], working_directory=str(working), metadata_directory=str(metadata),
        env=[{"name": "PROBE_VAR", "value": "probe value"}], rewrite_paths=False)
    return GalaxyJob(galaxy_id, description, setup, input_path, output_path, config_path, remote_output)
