"""Setup messages -> SubmitRequest, the ledger's fingerprint, and the service's listeners
(no broker needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pulsar.core import PulsarApp
from pulsar.errors import InvalidArgument
from pulsar.jobs.submit import parse_submit_message
from pulsar.messaging.ledger import setup_digest
from test.messaging.conftest import setup_body, wait_for


def test_a_captured_setup_body_is_decoded() -> None:
    body = setup_body(
        "101",
        "bash tool_script.sh",
        submit_params={"native_specification": "-q probe"},
        env=[{"name": "PROBE_VAR", "value": "probe value"}],
        remote_staging={"setup": [], "action_mapper": {"default_action": "remote_transfer"}, "ssh_key": None},
        dynamic_file_sources=[{"path": "galaxy.json", "type": "galaxy"}],
        token_endpoint="https://galaxy.example.org/api/jobs/ENC/oidc-tokens?job_key=TOK",
        cvmfsexec={"whatever": 1},
        touch_outputs=["touched.dat"],
        acknowledge_uuid="ee48", acknowledge_queue="setup_ack", acknowledge_submit_queue="setup",
    )
    request = parse_submit_message(body)
    assert request.command_line == "bash tool_script.sh"
    assert request.submit_params == {"native_specification": "-q probe"}
    assert request.setup_params["tool_id"] == "probe"
    assert request.env == [{"name": "PROBE_VAR", "value": "probe value"}]
    assert request.dynamic_file_sources == [{"path": "galaxy.json", "type": "galaxy"}]
    assert request.token_endpoint.endswith("job_key=TOK")
    assert request.touch_outputs == ["touched.dat"]
    assert request.remote_staging["action_mapper"] == {"default_action": "remote_transfer"}


def test_null_values_mean_absent() -> None:
    request = parse_submit_message({"job_id": "1", "command_line": "true", "env": None, "remote_staging": None,
                                    "dynamic_file_sources": None, "token_endpoint": None, "setup_params": None})
    assert request.env == [] and request.remote_staging == {} and request.dynamic_file_sources == []
    assert request.token_endpoint is None and request.setup_params == {} and not request.force_setup


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"job_id": "1"}, "command_line is required"),
        ({"job_id": "1", "command_line": "  "}, "command_line is required"),
        ({"job_id": "1", "command_line": 5}, "command_line is required"),
        ({"job_id": "1", "command_line": "true", "env": {"A": "b"}}, "env must be a JSON list"),
        ({"job_id": "1", "command_line": "true", "setup_params": []}, "setup_params must be a JSON dict"),
        ({"job_id": "1", "command_line": "true", "touch_outputs": [1]}, "touch_outputs must be a list"),
        ({"job_id": "1", "command_line": "true", "env": [{"name": "1BAD", "value": "x"}]}, "invalid variable name"),
        ({"job_id": "1", "command_line": "true", "dynamic_file_sources": [{}]}, "dynamic_file_sources entries"),
        # found by schemathesis: these were accepted and the job then failed in staging
        ({"job_id": "1", "command_line": "true", "remote_staging": {"setup": [{}]}}, "remote_staging.setup entries"),
        ({"job_id": "1", "command_line": "true", "remote_staging": {"setup": {}}}, "remote_staging.setup must"),
        ({"job_id": "1", "command_line": "true",
          "remote_staging": {"setup": [{"name": "a", "type": "input", "action": {}}]}}, "unknown action_type"),
        ({"job_id": "1", "command_line": "true",
          "remote_staging": {"setup": [{"name": "a", "type": "input", "action": {"action_type": []}}]}},
         "unknown action_type"),
        ({"job_id": "1", "command_line": "true",
          "remote_staging": {"setup": [{"name": "a", "type": "bad", "action": {"action_type": "remote_copy"}}]}},
         "'a'"),
        ({"job_id": "1", "command_line": "true",
          "remote_staging": {"setup": [{"name": "a", "type": "input", "action": {"action_type": "copy"}}]}},
         "cannot be staged by the server"),
        ({"job_id": "1", "command_line": "true", "remote_staging": {"setup": [
            {"name": "a\x00", "type": "input", "action": {"action_type": "message", "contents": "x"}}]}},
         "NUL or control character"),
        ({"job_id": "1", "command_line": "true", "remote_staging": {"setup": [
            {"name": "../a", "type": "input", "action": {"action_type": "message", "contents": "x"}}]}},
         "outside its directory"),
        ({"job_id": "1", "command_line": "true", "remote_staging": {"setup": [
            {"name": "a", "type": "input", "action": {"action_type": "remote_transfer"}}]}}, "needs a url"),
        ({"job_id": "1", "command_line": "true", "remote_staging": {"setup": [
            {"name": "a", "type": "input", "action": {"action_type": "remote_copy", "path": 5}}]}}, "needs a path"),
        ({"job_id": "1", "command_line": "true", "remote_staging": {"setup": [
            {"name": "a", "type": "input", "action": {"action_type": "remote_transfer", "url": ""}}]}}, "needs a url"),
        ({"job_id": "1", "command_line": "true", "remote_staging": {"action_mapper": "x"}}, "must be a JSON object"),
        ({"job_id": "1", "command_line": "true", "remote_staging": {"client_outputs": []}}, "must be a JSON object"),
        ({"job_id": "1", "command_line": "true", "remote_staging": {"action_mapper": {"paths": [1]}}},
         "list of objects"),
        ({"job_id": "1", "command_line": "true", "remote_staging": {"action_mapper": {"paths": [{"action": "nope"}]}}},
         "action_mapper"),
    ],
)
def test_bad_shapes_name_the_key(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_submit_message(body)


def test_the_fingerprint_ignores_ack_keys_only() -> None:
    body = setup_body("7", "true")
    republished = dict(body, acknowledge_uuid="u", acknowledge_queue="setup_ack",
                       acknowledge_submit_queue="setup", force_noack=True)
    assert setup_digest(body) == setup_digest(republished)
    assert setup_digest(body) != setup_digest(dict(body, command_line="false"))


def test_listeners_hear_running_and_terminal_before_the_record(tmp_path: Path) -> None:
    app = PulsarApp(staging_directory=str(tmp_path / "s"), persistence_directory=str(tmp_path / "p"))
    try:
        service = app.service(None)
        heard: list[tuple[str, dict[str, Any], Any]] = []
        service.add_listener(lambda job_id, doc: heard.append((job_id, doc, service.job_state(job_id))))
        gate = tmp_path / "gate"
        service.submit_request("9", parse_submit_message(setup_body(
            "9", f"while [ ! -e {gate} ]; do sleep 0.02; done; "
                 "echo __PULSAR_JOB_DIRECTORY__ > ../outputs/dir; echo __PULSAR_JOBS_DIRECTORY__ > ../outputs/root")))
        wait_for(lambda: heard, what="running")
        gate.touch()
        wait_for(lambda: len(heard) == 2, what="the terminal announcement")
    finally:
        app.shutdown()
    (job_id, running, state_then), (_, terminal, terminal_state_then) = heard
    assert running == {"complete": "false", "status": "running", "job_id": "9"}
    assert state_then.name == "QUEUED"  # announced before RUNNING was recorded
    assert terminal["status"] == "complete" and terminal["returncode"] == 0
    assert terminal_state_then.name == "RUNNING"  # announced before COMPLETE was recorded
    assert sorted(terminal["outputs_directory_contents"]) == ["dir", "root"]
    job_dir = tmp_path / "s" / "9"
    assert (job_dir / "outputs" / "dir").read_text() == f"{os.path.abspath(job_dir)}\n"
    assert (job_dir / "outputs" / "root").read_text() == f"{os.path.abspath(tmp_path / 's')}\n"


def test_a_failing_listener_does_not_stop_the_job(tmp_path: Path) -> None:
    app = PulsarApp(staging_directory=str(tmp_path / "s"), persistence_directory=str(tmp_path / "p"))
    try:
        service = app.service(None)

        def broken(job_id: str, doc: dict[str, Any]) -> None:
            raise RuntimeError("listener bug")

        service.add_listener(broken)
        service.submit_request("f", parse_submit_message(setup_body("f", "exit 2")))
        wait_for(lambda: service.status("f")["complete"] == "true", what="the job to end")
        assert service.status("f")["returncode"] == 2
    finally:
        app.shutdown()


def test_a_refused_submission_is_recorded_as_failed_with_the_reason(tmp_path: Path) -> None:
    app = PulsarApp(staging_directory=str(tmp_path / "s"), persistence_directory=str(tmp_path / "p"))
    try:
        service = app.service(None)
        heard: list[dict[str, Any]] = []
        service.add_listener(lambda job_id, doc: heard.append(doc))
        service.record_failure("r", "setup refused: command_line is required")
        assert [d["status"] for d in heard] == ["failed"]
        document = service.status("r")
        assert document["status"] == "failed" and "command_line is required" in document["stderr"]
    finally:
        app.shutdown()


def test_head_and_tail() -> None:
    from pulsar.jobs.status import head_and_tail

    assert head_and_tail("short", 10) == "short"
    text = "".join(chr(ord("a") + i % 26) for i in range(200_000))
    capped = head_and_tail(text, 65536)
    assert len(capped) == 65536 and "\n..\n" in capped
    head, tail = capped.split("\n..\n")
    assert text.startswith(head) and text.endswith(tail) and len(head) - len(tail) in (0, 1)
