"""The job service through its public methods, with the real local managers."""

import io
import json
import os
import time

import pytest

from pulsar.errors import InvalidArgument, NotFound
from test.support.processes import process_alive

from .conftest import output_bytes, output_text, wait_for, wait_terminal


def submit(service, job_id, command, **extra):
    args = {"command_line": command}
    args.update({k: json.dumps(v) for k, v in extra.items()})
    service.submit(job_id, args)


def test_full_job_lifecycle(make_app):
    service = make_app().service(None)
    setup = service.setup("1", "cat1", "1.0")
    assert setup["job_id"] == "1" and setup["tool_id"] == "cat1"
    assert setup["system_properties"]["separator"] == "/"
    service.upload("1", "input", "in.txt", io.BytesIO(b"data"), 4)
    assert service.status("1") == {"complete": "false", "status": "preprocessing", "job_id": "1"}
    submit(
        service,
        "1",
        "cat ../inputs/in.txt > ../outputs/out.txt; echo '{}' > galaxy.json; echo tool-out > ../metadata/tool_stdout; exit 4",
        dynamic_file_sources=[{"path": "galaxy.json", "type": "galaxy"}],
        submit_extras={"touch_outputs": ["touched.dat"]},
    )
    doc = wait_terminal(service, "1")
    assert doc["status"] == "complete" and doc["returncode"] == 4
    assert doc["stdout"] == "tool-out\n"
    assert sorted(doc["outputs_directory_contents"]) == ["out.txt", "touched.dat"]
    assert doc["realized_dynamic_file_sources"] == [{"path": "galaxy.json", "type": "galaxy", "contents": "{}\n"}]
    assert output_bytes(service, "1", "output", "out.txt") == b"data"
    service.clean("1")
    assert service.status("1")["status"] == "lost"


def test_job_script_environment(make_app):
    service = make_app(managers={"_default_": {"type": "queued_python", "env_FROM_MANAGER": "m"}}).service(None)
    service.setup("env")
    submit(
        service,
        "env",
        'echo "$PWD|$_GALAXY_JOB_TMP_DIR|$_GALAXY_JOB_HOME_DIR|$GALAXY_SLOTS|'
        '$FROM_CLIENT|$FROM_MANAGER|$TMPDIR" > ../outputs/env',
        env=[{"name": "FROM_CLIENT", "value": 'a "quoted" $HOME'}],
    )
    assert wait_terminal(service, "env")["returncode"] == 0
    pwd, tmp, home, slots, client, manager, tmpdir = (
        output_text(service, "env", "output", "env").strip().split("|")
    )
    job = service.settings.staging_root / "env"
    assert pwd == str(job / "working") and tmp == str(job / "tmp") == tmpdir and home == str(job / "home")
    assert slots == "1" and manager == "m"
    assert client == f'a "quoted" {os.environ["HOME"]}'


def test_concurrency_is_really_capped(make_app, tmp_path):
    marker = tmp_path / "running"
    marker.mkdir()
    service = make_app(managers={"_default_": {"num_concurrent_jobs": 2}}).service(None)
    command = f"touch {marker}/$$; sleep 0.4; ls {marker} | wc -l > ../outputs/seen; rm {marker}/$$"
    for index in range(5):
        service.setup(str(index))
        submit(service, str(index), command)
    peaks = []
    for index in range(5):
        assert wait_terminal(service, str(index))["returncode"] == 0
        peaks.append(int(output_text(service, str(index), "output", "seen")))
    assert max(peaks) <= 2


def test_cancel_kills_the_whole_tree(make_app, tmp_path):
    service = make_app().service(None)
    service.setup("c")
    pid_file = tmp_path / "child.pid"
    submit(service, "c", f"(sleep 300 & echo $! > {pid_file}; wait)")
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip())
    child = int(pid_file.read_text())
    service.cancel("c")
    assert service.status("c")["status"] == "cancelled"
    wait_for(lambda: not process_alive(child))


def test_cancel_before_submit_makes_submit_a_noop(make_app):
    service = make_app().service(None)
    service.setup("x")
    service.cancel("x")
    submit(service, "x", "touch ../outputs/ran")
    time.sleep(0.3)
    assert service.status("x")["status"] == "cancelled"
    assert not (service.settings.staging_root / "x" / "outputs" / "ran").exists()


def test_cancel_and_clean_of_unknown_jobs_are_noops(make_app):
    service = make_app().service(None)
    service.cancel("nope")
    service.clean("nope")
    assert service.status("nope")["status"] == "lost"


def test_clean_stops_a_running_job(make_app, tmp_path):
    service = make_app().service(None)
    service.setup("r")
    started = tmp_path / "started"
    submit(service, "r", f"touch {started}; sleep 300")
    wait_for(started.exists)
    service.clean("r")
    assert service.status("r")["status"] == "lost"
    assert not (service.settings.staging_root / "r").exists()


def test_submit_validation(make_app):
    service = make_app().service(None)
    with pytest.raises(NotFound):
        service.submit("never-set-up", {"command_line": "true"})
    service.setup("v")
    with pytest.raises(InvalidArgument):
        service.submit("v", {"command_line": "true", "env": "{not json"})
    with pytest.raises(InvalidArgument):
        service.submit("v", {"command_line": "true", "params": "[1]"})
    with pytest.raises(InvalidArgument):
        service.submit("v", {})
    with pytest.raises(InvalidArgument):
        service.submit("v", {"command_line": "true", "env": json.dumps([{"name": "BAD NAME", "value": "x"}])})


def test_second_submit_is_ignored(make_app):
    service = make_app().service(None)
    service.setup("d")
    submit(service, "d", "echo once >> ../outputs/count")
    submit(service, "d", "echo twice >> ../outputs/count")
    wait_terminal(service, "d")
    assert output_text(service, "d", "output", "count") == "once\n"


def test_setup_params_let_the_submit_set_up_the_job(make_app):
    service = make_app().service(None)
    submit(
        service,
        "s",
        "echo __PULSAR_JOBS_DIRECTORY__ > ../outputs/root",
        setup_params={"job_id": "s", "tool_id": "t", "tool_version": "1"},
    )
    assert wait_terminal(service, "s")["returncode"] == 0
    assert output_text(service, "s", "output", "root").strip() == str(service.settings.staging_root)


def test_uuid_ids(make_app):
    service = make_app(assign_ids="uuid").service(None)
    job_id = service.setup("5")["job_id"]
    assert len(job_id) == 32 and job_id != "5"


def test_failed_launch_is_reported_with_the_reason(make_app):
    app = make_app()
    service = app.service(None)
    service.setup("f")

    def broken(spec):
        from pulsar.managers.base import LaunchError

        raise LaunchError("scheduler said no")

    service.manager.submit = broken
    submit(service, "f", "true")
    doc = service.status("f")
    assert doc["status"] == "failed" and "scheduler said no" in doc["stderr"]


def test_streams_are_capped(make_app):
    service = make_app(maximum_stream_size=10).service(None)
    service.setup("cap")
    submit(service, "cap", "printf '%0100d' 0 > ../metadata/tool_stdout; printf '\\xff\\xfe' > ../metadata/job_stdout")
    doc = wait_terminal(service, "cap")
    assert doc["stdout"] == "0" * 10
    assert doc["job_stdout"] == "\ufffd\ufffd"


def test_unknown_manager(make_app):
    app = make_app()
    with pytest.raises(NotFound):
        app.service("nope")




def test_clean_takes_the_directory_away_at_once_and_deletes_it_in_the_background(make_app):
    service = make_app().service(None)
    service.setup("t")
    (service.settings.staging_root / "t" / "working" / "big").write_bytes(b"x" * 1024)
    service.clean("t")
    assert not (service.settings.staging_root / "t").exists()
    trash = service.settings.staging_root / ".trash"
    wait_for(lambda: not trash.exists() or not any(trash.iterdir()))


def test_leftover_trash_is_emptied_on_start(make_app, tmp_path):
    trash = tmp_path / "staging" / ".trash"
    (trash / "old.1.2" / "working").mkdir(parents=True)
    make_app()
    wait_for(lambda: not any(trash.iterdir()))


def test_terminal_documents_are_refreshed_by_a_new_setup(make_app):
    service = make_app().service(None)
    service.setup("r")
    service.upload("r", "workdir", "w.txt", io.BytesIO(b"first"), 5)
    submit(service, "r", "cat w.txt > ../outputs/o; exit 1")
    assert wait_terminal(service, "r")["returncode"] == 1
    service.setup("r")
    assert service.status("r")["status"] == "preprocessing"
    service.upload("r", "workdir", "w.txt", io.BytesIO(b"second"), 6)
    submit(service, "r", "cat w.txt > ../outputs/o; exit 2")
    assert wait_terminal(service, "r")["returncode"] == 2
    assert output_bytes(service, "r", "output", "o") == b"second"  # not the old snapshot


def test_the_accepted_request_is_out_of_the_jobs_reach(make_app, tmp_path):
    """launch_config (ssh keys, Galaxy URLs, what happens after the job) lives in the staging
    root's private area: the job can neither read it nor change what the server does with it."""
    from pulsar.jobs.directory import JobDirectory
    from pulsar.jobs.submit import load_launch_config

    service = make_app().only_manager
    service.setup("p1")
    key = "-----BEGIN OPENSSH PRIVATE KEY----- p1 secret"
    service.submit("p1", {
        "command_line": "grep -rqs 'p1 sec''ret' .. ; echo $? > ../outputs/found; echo '{}' > ../launch_config",
        "remote_staging": json.dumps({"ssh_key": key}),
    })
    assert wait_terminal(service, "p1")["status"] == "complete"
    assert output_text(service, "p1", "output", "found") == "1\n"  # grep found nothing
    private = tmp_path / "staging" / ".private"
    config = private / "p1" / "launch_config"
    assert (private.stat().st_mode & 0o777, config.parent.stat().st_mode & 0o777) == (0o700, 0o700)
    assert config.stat().st_mode & 0o777 == 0o600
    directory = JobDirectory(tmp_path / "staging", "p1")
    assert load_launch_config(directory).remote_staging == {"ssh_key": key}  # not the job's '{}'
    service.clean("p1")
    assert not (private / "p1").exists()


def test_a_job_accepted_before_the_private_area_still_loads(make_app, tmp_path):
    from pulsar.jobs.directory import JobDirectory
    from pulsar.jobs.submit import load_launch_config

    make_app().only_manager.setup("old")
    directory = JobDirectory(tmp_path / "staging", "old")
    directory.write_atomic(["launch_config"], json.dumps({"command_line": "true"}).encode())
    assert load_launch_config(directory).command_line == "true"
