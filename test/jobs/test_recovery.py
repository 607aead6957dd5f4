"""Restarts: every unfinished job is carried on by the next app over the same directories."""

import io
import os
import signal
import time

from pulsar.managers.processes import find_process

from .conftest import output_text, wait_for, wait_terminal
from .test_service import submit


def _kill_job_tree(service, job_id):
    """What a kill -9 of the server's whole process tree does to a job."""
    pid = service.store.load(job_id).backend["pid"]
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: find_process({"pid": pid}) is None)


def _running(service, job_id):
    return service.status(job_id)["status"] == "running"


def test_job_keeps_running_across_a_graceful_restart(make_app, tmp_path):
    app = make_app()
    service = app.service(None)
    service.setup("g")
    gate = tmp_path / "gate"
    submit(service, "g", f"while [ ! -e {gate} ]; do sleep 0.05; done; echo done > ../outputs/out; exit 7")
    wait_for(lambda: _running(service, "g"))
    app.shutdown()

    again = make_app().service(None)
    assert again.status("g")["status"] == "running"
    gate.touch()
    doc = wait_terminal(again, "g")
    assert doc["status"] == "complete" and doc["returncode"] == 7
    assert output_text(again, "g", "output", "out") == "done\n"


def test_job_that_finished_while_the_server_was_down_completes(make_app, tmp_path):
    app = make_app()
    service = app.service(None)
    service.setup("d")
    gate = tmp_path / "gate"
    submit(service, "d", f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 3")
    wait_for(lambda: _running(service, "d"))
    app.shutdown()
    gate.touch()
    wait_for(lambda: (service.settings.staging_root / "d" / "return_code").exists())

    doc = wait_terminal(make_app().service(None), "d")
    assert doc["status"] == "complete" and doc["returncode"] == 3


def test_job_killed_with_the_server_runs_again_from_its_snapshot(make_app, tmp_path):
    runs = tmp_path / "runs"
    app = make_app()
    service = app.service(None)
    service.setup("k")
    gate = tmp_path / "gate"
    command = (
        f"echo run >> {runs}; echo partial >> ../outputs/out; "
        f"while [ ! -e {gate} ]; do sleep 0.05; done; echo done >> ../outputs/out"
    )
    submit(service, "k", command)
    wait_for(lambda: runs.exists())
    app.shutdown()
    _kill_job_tree(service, "k")

    again = make_app().service(None)
    wait_for(lambda: runs.exists() and runs.read_text().count("run") == 2)
    gate.touch()
    doc = wait_terminal(again, "k")
    assert doc["status"] == "complete" and doc["returncode"] == 0
    # the second run started from the snapshot: no trace of the first run's partial output
    assert output_text(again, "k", "output", "out") == "partial\ndone\n"


def test_rerun_restores_configs_and_working_files_the_first_run_changed(make_app, tmp_path):
    runs = tmp_path / "runs"
    app = make_app()
    service = app.service(None)
    service.setup("c")
    service.upload("c", "config", "settings.cfg", io.BytesIO(b"as submitted\n"), 13)
    service.upload("c", "workdir", "state.txt", io.BytesIO(b"fresh\n"), 6)
    gate = tmp_path / "gate"
    command = (
        f"echo run >> {runs}; cat ../configs/settings.cfg state.txt >> ../outputs/seen; "
        "echo changed > ../configs/settings.cfg; echo used > state.txt; "
        f"while [ ! -e {gate} ]; do sleep 0.05; done"
    )
    submit(service, "c", command)
    wait_for(lambda: runs.exists())
    app.shutdown()
    _kill_job_tree(service, "c")

    again = make_app().service(None)
    wait_for(lambda: runs.exists() and runs.read_text().count("run") == 2)
    gate.touch()
    doc = wait_terminal(again, "c")
    assert doc["status"] == "complete" and doc["returncode"] == 0
    # the second run saw the submitted files again, and the first run's output is gone
    assert output_text(again, "c", "output", "seen") == "as submitted\nfresh\n"


def test_attempt_limit_fails_the_job_with_a_reason(make_app, tmp_path):
    app = make_app(max_job_attempts=1)
    service = app.service(None)
    service.setup("l")
    submit(service, "l", "sleep 300")
    wait_for(lambda: _running(service, "l"))
    app.shutdown()
    _kill_job_tree(service, "l")

    doc = wait_terminal(make_app(max_job_attempts=1).service(None), "l")
    assert doc["status"] == "failed"
    assert "killed" in doc["stderr"]


def test_queued_jobs_are_queued_again(make_app, tmp_path):
    options = {"managers": {"_default_": {"num_concurrent_jobs": 1}}}
    app = make_app(**options)
    service = app.service(None)
    gate = tmp_path / "gate"
    for job_id in ("a", "b"):
        service.setup(job_id)
        submit(service, job_id, f"while [ ! -e {gate} ]; do sleep 0.05; done; echo {job_id} > ../outputs/out")
    wait_for(lambda: _running(service, "a"))
    assert service.status("b")["status"] == "queued"
    app.shutdown()

    again = make_app(**options).service(None)
    gate.touch()
    for job_id in ("a", "b"):
        assert wait_terminal(again, job_id)["status"] == "complete"
        assert output_text(again, job_id, "output", "out") == f"{job_id}\n"


def test_records_of_cleaned_jobs_do_not_come_back(make_app):
    app = make_app()
    service = app.service(None)
    service.setup("c")
    submit(service, "c", "true")
    wait_terminal(service, "c")
    service.clean("c")
    app.shutdown()
    assert make_app().service(None).status("c")["status"] == "lost"


def test_postprocessing_resumes_after_a_restart(tmp_path):
    """A job whose output staging was cut short by a restart is staged again, then complete."""
    import threading

    from pulsar.jobs.service import JobService
    from pulsar.jobs.settings import ServiceSettings
    from pulsar.jobs.store import JobStore
    from pulsar.managers.local import QueuedManager

    staged: list[str] = []
    release = threading.Event()

    def stuck_stage_out(directory, remote_staging, is_cancelled):
        release.wait(30)
        return ["interrupted by the test"]

    def stage_out(directory, remote_staging, is_cancelled):
        staged.append(directory.job_id)
        return []

    def build(hook):
        service = JobService(
            "_default_",
            QueuedManager("_default_", {}),
            JobStore(tmp_path / "persisted"),
            ServiceSettings(staging_root=tmp_path / "staging"),
            stage_in=None,
            stage_out=hook,
        )
        service.start()
        return service

    first = build(stuck_stage_out)
    first.setup("p")
    submit(first, "p", "echo out > ../outputs/o", remote_staging={"action_mapper": {"paths": []}})
    wait_for(lambda: first.status("p")["status"] == "postprocessing")
    first.shutdown()  # the "server" goes away while output staging is still running

    second = build(stage_out)
    try:
        doc = wait_terminal(second, "p")
        assert doc["status"] == "complete" and staged == ["p"]
        release.set()  # the old instance's staging thread ends late: it must change nothing
        time.sleep(0.2)
        assert second.store.load("p").state.name == "COMPLETE"
    finally:
        release.set()
        second.shutdown()
