"""`pulsar.managers.util.drmaa.DrmaaSessionFactory` as Galaxy 26.1's own cluster runners use
it, against the real Grid Engine of test/infra (run pytest with `. /run/drm-ci/sge/sge.env`).

Each test mirrors Galaxy code:
- `galaxy.jobs.runners.drmaa.DRMAAJobRunner.__init__`: `DrmaaSessionFactory().get()`, then
  `ds.run_job(**jt)` in `queue_job` (template keys remoteCommand, jobName, outputPath,
  errorPath, nativeSpecification, ...);
- `DRMAAJobRunner.check_watched_item`: `ds.job_status(external_id)` in a try catching
  `drmaa.InvalidJobException` ("job finished normally and was purged") and
  `drmaa.InternalException`; the state compared with `drmaa.JobState.*`;
- `DRMAAJobRunner.stop_job`: `ds.kill(external_id)`, catching `drmaa.InvalidJobException`
  for a job already gone;
- `galaxy.jobs.runners.univa.UnivaJobRunner`: `ds.session.wait(external_id,
  drmaa.Session.TIMEOUT_NO_WAIT)` after `job_status` said the job is done, for its exit
  status and resource usage, so `job_status` must not have reaped it;
- `DRMAAJobRunner.shutdown`: `ds.close()`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from pulsar.managers.util.drmaa import DrmaaSessionFactory

pytestmark = [pytest.mark.integration, pytest.mark.sge]


@pytest.fixture
def ds(sge: None) -> Iterator[Any]:
    session = DrmaaSessionFactory().get()
    yield session
    session.close()


def _template(tmp_path: Path, command: str, name: str) -> dict[str, Any]:
    script = tmp_path / f"{name}.sh"
    script.write_text(f"#!/bin/sh\n{command}\n")
    script.chmod(0o755)
    return {"remoteCommand": str(script), "jobName": name, "outputPath": f":{tmp_path / name}.out",
            "errorPath": f":{tmp_path / name}.err", "nativeSpecification": "-q all.q -shell yes"}


def _wait_for_state(ds: Any, external_id: str, states: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = ds.job_status(external_id)
        if state in states or time.monotonic() > deadline:
            return state
        time.sleep(0.3)


def test_finished_job_is_not_reaped_by_job_status_and_purged_raises(ds: Any, tmp_path: Path) -> None:
    import drmaa

    external_id = ds.run_job(**_template(tmp_path, "exit 3", "contract-done"))
    assert _wait_for_state(ds, external_id, {drmaa.JobState.DONE, drmaa.JobState.FAILED}) == drmaa.JobState.DONE
    assert ds.job_status(external_id) == drmaa.JobState.DONE  # asked again: still known, not reaped
    info = ds.session.wait(external_id, drmaa.Session.TIMEOUT_NO_WAIT)  # the Univa runner's call
    assert info.hasExited and info.exitStatus == 3
    with pytest.raises(drmaa.InvalidJobException):  # reaped and purged: what Galaxy catches
        ds.job_status(external_id)
    with pytest.raises(drmaa.InvalidJobException):
        ds.kill(external_id)


def test_unknown_job_raises_invalid_job(ds: Any) -> None:
    import drmaa

    with pytest.raises(drmaa.InvalidJobException):
        ds.job_status("987654")
    with pytest.raises(drmaa.InvalidJobException):
        ds.kill("987654")


def test_kill_of_a_running_job(ds: Any, tmp_path: Path) -> None:
    import drmaa

    external_id = ds.run_job(**_template(tmp_path, "sleep 300", "contract-kill"))
    assert _wait_for_state(ds, external_id, {drmaa.JobState.RUNNING}) == drmaa.JobState.RUNNING
    ds.kill(external_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if ds.job_status(external_id) in (drmaa.JobState.DONE, drmaa.JobState.FAILED):
                break
        except drmaa.InvalidJobException:
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"job {external_id} still alive after kill")
