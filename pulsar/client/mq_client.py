"""`MessageJobClient`: one Galaxy job driven over the message queue (spec mq-protocol 3, 6.2).

The job layout is computed locally (`jobs_directory`), so the only traffic is what this
client publishes: the setup body of spec 3.2 on `setup`, `{"job_id"}` on `kill`, and a status
request on `status` (never on `setup`, unlike 0.15.15: B8).  Nothing is ever read back over
the network: status documents arrive on the manager's status consumer and `full_status()`
reads the manager's cache.  Files only travel through `remote_*` actions (the server pulls
inputs from Galaxy and pushes outputs back) or inline as `message` actions, so `put_file` and
`fetch_output` refuse with a clear error: there is no HTTP server to send bytes to.

This module imports no broker code: the manager (`mq_manager`) owns the exchange and hands
the client a small `MessageQueueBackend`.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Protocol, Sequence

from pulsar.client.client import BaseJobClient
from pulsar.client.destination import submit_params
from pulsar.client.exceptions import PulsarClientError
from pulsar.shared import actions

log = logging.getLogger(__name__)

#: Destination params that select a mode this client does not implement, with the reason.
UNSUPPORTED_DESTINATION_PARAMS = {
    "shell_plugin": "MessageCLIJobClient (shell_plugin: launching through submit.bash over a shell) is not "
                    "implemented by this pulsar.client; remove shell_plugin to publish setups to the queue",
    "k8s_enabled": "Kubernetes co-execution (k8s_enabled) is not implemented by this pulsar.client",
    "tes_url": "TES co-execution (tes_url) is not implemented by this pulsar.client",
    "project_id": "GCP Batch co-execution (project_id) is not implemented by this pulsar.client",
}


class MessageQueueBackend(Protocol):
    """What a `MessageJobClient` needs from its manager (see `MessageQueueClientManager`)."""

    def publish(self, logical: str, payload: dict[str, Any]) -> None:
        """Publish to the manager's queue `logical`; raise when the broker did not confirm."""

    def job_launching(self, job_id: str, galaxy_job_id: str | None) -> None:
        """Record the job as active before its setup is published."""

    def job_launch_failed(self, job_id: str) -> None:
        """The setup publish failed: stop tracking the job."""

    def cached_status(self, job_id: str) -> dict[str, Any] | None:
        """The last status update received for the job, if any."""

    def forget_status(self, job_id: str) -> None:
        """Drop the cached status of the job."""


class MessageJobClient(BaseJobClient):
    """A job published to a Pulsar server's queues; see the module docstring."""

    def __init__(self, destination_params: Mapping[str, Any], job_id: str, backend: MessageQueueBackend):
        super().__init__(destination_params, job_id)
        if not self.local_setup:
            raise PulsarClientError(
                "message-queue destinations need the jobs_directory parameter (the Pulsar server's "
                "staging directory, as seen on the Pulsar host)")
        self.backend = backend
        #: The id Galaxy built this client with; differs from `job_id` after a uuid setup (B12).
        self.galaxy_job_id = self.job_id

    # -- submission -----------------------------------------------------------------------

    def launch(self, command_line: str, dependencies_description: Any = None, env: Sequence[Any] | None = None,
               remote_staging: Mapping[str, Any] | None = None, job_config: Mapping[str, Any] | None = None,
               dynamic_file_sources: Any = None, token_endpoint: str | None = None,
               touch_outputs: Sequence[str] | None = None, container_info: Any = None,
               pulsar_app_config: Any = None) -> None:
        """Publish the setup message (spec 3.2) and return None (there is no reply).

        The job is recorded as active before the publish and forgotten again if the broker
        does not confirm it; the publish error then propagates (Galaxy fails the job).
        """
        if container_info or pulsar_app_config:
            raise PulsarClientError("container_info and pulsar_app_config need a co-execution client, "
                                    "which this pulsar.client does not implement")
        body = self.setup_message(command_line, dependencies_description=dependencies_description, env=env,
                                  remote_staging=remote_staging, job_config=job_config,
                                  dynamic_file_sources=dynamic_file_sources, token_endpoint=token_endpoint,
                                  touch_outputs=touch_outputs)
        self.backend.job_launching(self.job_id, self.galaxy_job_id)
        try:
            self.backend.publish("setup", body)
        except Exception:
            self.backend.job_launch_failed(self.job_id)
            raise
        log.debug("published setup of job %s", self.job_id)

    def setup_message(self, command_line: str, dependencies_description: Any = None,
                      env: Sequence[Any] | None = None, remote_staging: Mapping[str, Any] | None = None,
                      job_config: Mapping[str, Any] | None = None, dynamic_file_sources: Any = None,
                      token_endpoint: str | None = None, touch_outputs: Sequence[str] | None = None
                      ) -> dict[str, Any]:
        """The body of the setup message: the keys Galaxy's 0.15 client sends, plus
        `touch_outputs` when there are any (B11; honoured by every server version)."""
        setup_params = job_config.get("setup_params") if job_config else None
        if not setup_params:
            # The server only creates the job directory when setup_params is present.
            setup_params = {"job_id": self.job_id, "tool_id": None, "tool_version": None, "use_metadata": True,
                            "preserve_galaxy_python_environment": None}
        staging = dict(remote_staging or {})
        staging["ssh_key"] = self.destination_params.get("ssh_key")
        body: dict[str, Any] = {
            "job_id": self.job_id,
            "command_line": command_line,
            "setup_params": dict(setup_params),
            "remote_staging": staging,
        }
        if env:
            body["env"] = list(env)
        submit = submit_params(self.destination_params)
        if submit:
            body["submit_params"] = submit
        if dependencies_description is not None:
            body["dependencies_description"] = dependencies_description
        body["dynamic_file_sources"] = dynamic_file_sources
        body["token_endpoint"] = token_endpoint
        cvmfsexec = self.destination_params.get("cvmfsexec")
        if cvmfsexec is not None:
            body["cvmfsexec"] = cvmfsexec
        if touch_outputs:
            body["touch_outputs"] = list(touch_outputs)
        return body

    # -- control --------------------------------------------------------------------------

    def kill(self) -> None:
        """Publish `{"job_id"}` on `kill`.  The server never replies; a later status request
        reports `cancelled`."""
        self.backend.publish("kill", {"job_id": self.job_id})

    def get_status(self) -> None:  # type: ignore[override]
        """Ask the server to publish the job's status on `status_update`; return None.

        The answer arrives through the status consumer like any other update.
        """
        self.backend.publish("status", {"request": "status", "job_id": self.job_id, "force_noack": True})

    def full_status(self) -> dict[str, Any]:
        """The last status update received for this job (Galaxy's finish step reads it)."""
        status = self.backend.cached_status(self.job_id)
        if status is None:
            raise PulsarClientError(f"no status update has been received for job {self.job_id}")
        return status

    raw_check_complete = full_status

    def clean(self) -> None:
        """Drop the cached status; nothing is sent (the server cleans up after delivery)."""
        self.backend.forget_status(self.job_id)

    # -- file transfer: not over the queue ------------------------------------------------

    def put_file(self, path: str | None, input_type: str, name: str | None = None,
                 contents: str | bytes | None = None, action_type: str = actions.TRANSFER) -> str:
        raise PulsarClientError(
            f"file action {action_type!r} for {name or path} needs an HTTP connection to the Pulsar server; "
            "message-queue destinations stage files with remote_* actions (default_file_action: remote_transfer)")

    def fetch_output(self, path: str, name: str | None = None, working_directory: str | None = None,
                     action_type: str = actions.TRANSFER, output_type: str = "output") -> None:
        raise PulsarClientError(
            f"file action {action_type!r} for output {name or path} needs an HTTP connection to the Pulsar "
            "server; message-queue destinations collect outputs with remote_* actions")
