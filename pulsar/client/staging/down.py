"""`finish_job`: bring outputs back, then clean up on the server (spec 4.6).

The collection plan (`pulsar.shared.collection`) lists every file to fetch; files whose
action is remote were already sent back by the server, `none` files stay put, the rest
are fetched here.  Failures are collected, not raised: Galaxy treats a non-empty list as
"outputs missing" and fails the job.
"""

from __future__ import annotations

import logging
from typing import Any

from pulsar.client.exceptions import OutputNotFound, PulsarClientTransportError
from pulsar.client.staging.models import ClientOutputs, PulsarOutputs
from pulsar.shared.actions import STAGING_LOCAL
from pulsar.shared.collection import plan_output_collection

log = logging.getLogger(__name__)

CLEANUP_ALWAYS = "always"
CLEANUP_NEVER = "never"


def _ignorable(exc: Exception, tolerate_missing: bool) -> bool:
    if isinstance(exc, PulsarClientTransportError) and exc.status == 403:
        return True  # Galaxy refuses writes to purged datasets: not a failure
    if tolerate_missing and isinstance(exc, (OutputNotFound, FileNotFoundError)):
        return True
    return False


def finish_job(client: Any, cleanup_job: str, job_completed_normally: bool, client_outputs: ClientOutputs,
               pulsar_outputs: PulsarOutputs) -> list[Exception]:
    """Fetch outputs; clean the job if nothing failed (or always); return the failures.

    A job that did not complete normally (Galaxy passes False for deleted and errored jobs)
    gets no output fetched: Galaxy discards them, and a missing output would count as a
    failure that skips the remote clean-up and leaks the job directory on the server."""
    failures: list[Exception] = []
    if not job_completed_normally:
        log.debug("job %s did not complete normally; cleaning up without collecting outputs", client.job_id)
        plan = []
    else:
        plan = plan_output_collection(client_outputs.to_dict(), pulsar_outputs.listing())
    mapper = client.action_mapper()
    for fetch in plan:
        try:
            action = mapper.action(fetch.local_path, fetch.output_type)
            if action.staging != STAGING_LOCAL:
                continue
            client.fetch_output(
                path=fetch.local_path,
                name=fetch.name,
                working_directory=client_outputs.working_directory,
                action_type=action.action_type,
                output_type=fetch.output_type,
            )
        except Exception as exc:
            if _ignorable(exc, fetch.tolerate_missing):
                log.debug("not collecting %s (%s): %s", fetch.name, fetch.output_type, exc)
                continue
            log.warning("collecting %s (%s) for job %s failed: %s", fetch.name, fetch.output_type, client.job_id, exc)
            failures.append(exc)
    if (not failures and cleanup_job != CLEANUP_NEVER) or cleanup_job == CLEANUP_ALWAYS:
        try:
            client.clean()
        except Exception as exc:
            log.warning("cleaning job %s failed: %s", client.job_id, exc)
    return failures
