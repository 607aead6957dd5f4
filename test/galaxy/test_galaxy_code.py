"""Galaxy 26.1.2's own code, unchanged, against our `pulsar` package (test/galaxy/galaxy_driver.py
runs it in Galaxy's venv).  Each test names the Galaxy code it runs.  What needs a whole Galaxy
(a job wrapper over a database and a toolbox: PulsarJobRunner.queue_job/finish_job) is mirrored
call for call in test/client instead (test_end_to_end.py, test_finish_job.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.galaxy]

ROOT = Path(__file__).resolve().parents[2]

Run = Callable[..., dict[str, Any]]


def test_every_galaxy_module_that_imports_pulsar_imports_ours(run_galaxy: Run) -> None:
    """galaxy.jobs, galaxy.jobs.runners.pulsar, galaxy.metadata.set_metadata,
    galaxy.jobs.runners.util.cli.shell.rsh, galaxy.jobs.runners.util.cli.factory,
    galaxy.objectstore.pulsar (the seven modules of Galaxy 26.1.2 that import `pulsar`;
    galaxy.jobs.runners.drmaa imports it in DRMAAJobRunner.__init__, see below)."""
    result = run_galaxy("imports")
    assert result["pulsar_file"] == str(ROOT / "pulsar" / "__init__.py")
    assert result["command_version_filename"] == "COMMAND_VERSION"
    assert result["set_metadata_command_version"] in (None, "COMMAND_VERSION")
    assert result["rsh_retry_module"] == "pulsar.util.retry"
    # The CLI plugin loader logs (does not raise) a shell module that fails to import; with
    # RetryActionExecutor importable the remote shells are all there.
    assert {"LocalShell", "RemoteShell", "SecureShell", "ParamikoShell", "GlobusSecureShell"} <= set(
        result["cli_shells"])
    # Galaxy's own CliInterface wins; pulsar.managers.util.cli is its unreachable fallback.
    assert result["cli_factory_module"] == "galaxy.jobs.runners.util.cli"
    assert result["objectstore_client_manager"] == "None"
    assert result["split_params_same"]  # pulsar.managers.util.cli.split_params: Galaxy's fallback
    assert result["errors"] == []


def test_pulsar_object_store_takes_galaxys_documented_branch(run_galaxy: Run) -> None:
    """galaxy.objectstore.pulsar.PulsarObjectStore.__build_pulsar_client: without
    ObjectStoreClientManager Galaxy refuses with its own message (the store is commented out of
    Galaxy 26.1's object store factory; we serve no /objects routes)."""
    assert run_galaxy("objectstore") == {"error": "Pulsar client code not available, cannot use this module."}


@pytest.mark.sge
def test_galaxy_drmaa_runner_on_grid_engine(run_galaxy: Run, sge: None, tmp_path: Path) -> None:
    """galaxy.jobs.runners.drmaa.DRMAAJobRunner: __init__, check_watched_items /
    check_watched_item_drmaa through a job's life, a purged job, stop_job."""
    tmp_path.chmod(0o777)
    result = run_galaxy("drmaa-runner", directory=str(tmp_path))
    done = result["done"]
    assert done["watched_left"] == 0 and done["queued"] == ["finish_job"], result
    assert "running" in done["changes"] or done["states_seen"], result
    assert result["wait_exit_status"] == 0  # job_status did not reap it
    # Purged: drmaa.InvalidJobException, the runner's default invalidjobexception_state is ok.
    assert result["purged"]["queued"] == ["finish_job"] and result["purged"]["watched_left"] == 0, result
    assert any("InvalidJobException" in line for line in result["log"]), result["log"]
    assert any("already dead" in line for line in result["stop_gone"]), result
    assert any("Removed from DRM queue" in line for line in result["stop_running"]), result
    assert not [line for line in result["log"] if "unable to check job status" in line and "ERROR" in line]


@pytest.mark.sge
def test_galaxy_univa_runner_reads_exit_status_after_status(run_galaxy: Run, sge: None, tmp_path: Path) -> None:
    """galaxy.jobs.runners.univa.UnivaJobRunner._get_drmaa_state: ds.job_status, then
    ds.session.wait(job_id, TIMEOUT_NO_WAIT) for the exit status -- which works only because
    job_status did not reap the job.  Univa's accounting names wall time `wallclock`; Son of
    Grid Engine (test/infra) names it `ru_wallclock`, so on it the runner stops at that key,
    after the wait: a difference between the two DRMs, not in our session."""
    tmp_path.chmod(0o777)
    result = run_galaxy("univa-state", directory=str(tmp_path))
    assert [(w["has_exited"], w["exit_status"]) for w in result["waits"]] == [(True, 7)], result
    if result["state"].startswith("KeyError"):
        assert result["state"] == "KeyError wallclock" and "ru_wallclock" in result["waits"][0]["resource_keys"]
    else:
        assert result["extinfo"].get("exit_status") == "7", result


def test_galaxy_rest_runner_against_our_server(run_galaxy: Run, pulsar_server: Any, tmp_path: Path) -> None:
    """galaxy.jobs.runners.pulsar.PulsarRESTJobRunner: _init_client_manager, get_client,
    check_job_config, check_watched_item (and, for a server that does not answer,
    check_watched_item_state's PulsarClientTransportError branch), finish_job (completed
    normally; deleted or errored, and cancelled through stop_job: issue 12's "no output
    fetched, clean-up happens"), __client_outputs with the two collection patterns,
    url_to_destination."""
    result = run_galaxy("rest-runner", url=pulsar_server.url, token=pulsar_server.token, directory=str(tmp_path))
    assert result["manager"] == "pulsar.client.manager"
    ok = result["ok"]
    assert ok["queued"] == ["finish_job"] and ok["failed"] == [] and ok["output"] == "out\n", ok
    assert [f["exit_code"] for f in ok["finished"]] == [0] and ok["finished"][0]["stdout"].strip() == "tool-says-hi"
    # the server's default job metrics (core), fetched with the metadata, as Galaxy's JobMetrics reads them
    assert ok["metrics"]["core"]["runtime_seconds"] >= 0 and ok["metrics"]["core"]["galaxy_slots"] == 1, ok
    for state in ("deleted", "error"):  # Galaxy passes job_completed_normally=False
        finished = result[state]
        assert finished["queued"] == ["finish_job"] and finished["failed"] == [] and finished["output"] is None, finished
    for state in ("ok", "deleted", "error"):
        assert result[state]["status_after"] == "lost", result[state]  # cleaned up on the server
    # cancelled by the user (stop_job), then finished as deleted: nothing fetched, cleaned up
    assert result["stopped_status"] == "cancelled" and result["stopped_watch"] is None, result
    assert result["stopped_queued"] == ["finish_job"] and result["stopped_failed"] == [], result
    assert result["stopped_status_after"] == "lost", result
    log = pulsar_server.log_text()
    assert '"GET /jobs/101/files' in log
    for job_id in (102, 103, 104):
        assert f'"GET /jobs/{job_id}/files' not in log and f'"DELETE /jobs/{job_id}' in log, job_id
    params = result["client_params"]
    assert params["files_endpoint"].startswith("http://127.0.0.1:1/api/jobs/") and "job_key=" in params["files_endpoint"]
    assert "/oidc-tokens?job_key=" in params["token_endpoint"]
    assert (params["default_file_action"], params["rewrite_parameters"], params["dependency_resolution"]) == (
        "transfer", "true", "remote")
    assert result["url_to_destination"] == {"url": "http://127.0.0.1:9/", "private_token": "secret"}
    assert result["unreachable_watch_kept"] and result["unreachable_queued"] == [], result
    assert len(result["unreachable_logged"]) == 1, result["unreachable_logged"]
    from pulsar.client.staging import DEFAULT_DYNAMIC_COLLECTION_PATTERN, EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN

    directory, extended = result["client_outputs"]["directory"], result["client_outputs"]["extended"]
    # an old server version: Galaxy appends the tool's raw discovery patterns to its copy
    assert directory["dynamic_outputs"] == [*DEFAULT_DYNAMIC_COLLECTION_PATTERN, "extra_(?P<designation>.*)"]
    assert directory["output_files"] and directory["version_file"].endswith("/outputs/COMMAND_VERSION")
    assert extended["dynamic_outputs"] == EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN
    assert extended["output_files"] == [] and extended["work_dir_outputs"] == []
    assert result["errors"] == []


@pytest.mark.rabbitmq
def test_galaxy_mq_runner_against_our_server(run_galaxy: Run, amqp_url: str, unique_manager: str,
                                             tmp_path: Path) -> None:
    """galaxy.jobs.runners.pulsar.PulsarMQJobRunner: client manager and consumers (_monitor),
    get_client_from_wrapper, PulsarComputeEnvironment, status updates into __async_update,
    finish_job -- our server in message-queue mode pulling the input from and pushing the
    output to a fake Galaxy files API that checks Galaxy's own job_key."""
    from pulsar import core
    from test.support.galaxy_files import FakeGalaxy

    keys = run_galaxy("encode", ids=[301])["301"]
    staging = tmp_path / "staging"
    app = core.PulsarApp(staging_directory=str(staging), persistence_directory=str(tmp_path / "server-persist"),
                         message_queue_url=amqp_url, managers={unique_manager: {"type": "queued_python"}})
    try:
        with FakeGalaxy(tmp_path / "galaxy", job_key=keys["job_key"]) as galaxy:
            data = galaxy.root / "dataset_1.dat"
            data.write_text("the input\n")
            result = run_galaxy("mq-runner", amqp_url=amqp_url, manager=unique_manager, galaxy_url=galaxy.url,
                                persistence=str(tmp_path / "galaxy-persist"), jobs_directory=str(staging),
                                directory=str(galaxy.root), input=str(data), job_id=301)
            requests = {(r.method, r.file_type, Path(r.path or "").name, r.status) for r in galaxy.requests}
    finally:
        app.shutdown()
    assert result["queued"] == ["finish_job"], result
    assert "running" in result["changes"], result
    assert result["remote_input"].startswith(str(staging / "301" / "inputs")), result
    assert result["output"] == "the input\n" and result["failed"] == [], result
    assert [f["exit_code"] for f in result["finished"]] == [0] and result["finished"][0]["stdout"].strip() == "tool-says-hi"
    assert ("GET", "input", "dataset_1.dat", 200) in requests and ("POST", "output", "dataset_301.dat", 200) in requests
    assert all(r.job_id == keys["encoded"] for r in galaxy.requests)
    assert result["errors"] == [], result["errors"]


def test_galaxy_embedded_runner_builds_our_app(run_galaxy: Run, tmp_path: Path) -> None:
    """galaxy.jobs.runners.pulsar.PulsarEmbeddedJobRunner: PulsarApp(**conf) with Galaxy's
    defaults, the in-process client, a job with the `copy` action, shutdown."""
    result = run_galaxy("embedded-runner", directory=str(tmp_path))
    assert result["app"] == "pulsar.core"
    assert {"pulsar_staging", "pulsar_persisted_data"} <= set(result["staging"]), result
    assert result["default_file_action"] == "copy"
    assert result["queued"] == ["finish_job"] and result["failed"] == [] and result["output"] == "out\n", result
    assert [f["exit_code"] for f in result["finished"]] == [0] and result["finished"][0]["stdout"].strip() == "tool-says-hi"
    assert result["errors"] == [], result["errors"]


def test_galaxy_paramiko_shell_uses_our_retry_executor(run_galaxy: Run, sshd: dict[str, str]) -> None:
    """galaxy.jobs.runners.util.cli.shell.rsh.ParamikoShell.__init__/execute (Galaxy's CLI
    runner, shell_plugin ParamikoShell) with our RetryActionExecutor, against a real sshd."""
    import getpass

    result = run_galaxy("paramiko-shell", username=getpass.getuser(), sshd=sshd)
    assert result == {"executor": "pulsar.util.retry.RetryActionExecutor", "stdout": "hello-from-galaxy\n",
                      "stderr": "err\n", "returncode": 3}
