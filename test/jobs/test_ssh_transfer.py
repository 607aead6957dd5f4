"""The scp and rsync file actions (pulsar.jobs.ssh_transfer, through remote_staging) against a
real sshd on loopback (test.support.sshd): both directions, both tools, the key's life, the
three host-key policies, and what a failure says."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shlex
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from pulsar.client import ClientOutputs
from pulsar.errors import ConfigurationError
from pulsar.jobs import ssh_transfer
from pulsar.jobs.directory import JobDirectory
from pulsar.jobs.remote_staging import stage_in, stage_out
from pulsar.jobs.ssh_transfer import Endpoint, SshSettings, SshTransferError
from pulsar.shared.action_mapper import FileActionMapper
from pulsar.shared.actions import ActionError, FileAction
from test.support.sshd import SshServer, free_port
from test.support.system import unavailable

TOOLS = ["remote_scp_transfer", "remote_rsync_transfer"]


def never() -> bool:
    return False


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tempfile's directory for this test only, to see every key file come and go."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    yield directory


def mapper_for(server: SshServer, action: str, **overrides: Any) -> FileActionMapper:
    params = {"ssh_key": server.user_key.read_text(), "ssh_user": server.user, "ssh_host": server.host,
              "ssh_port": str(server.port), **overrides}
    return FileActionMapper(default_action=action, **params)


def setup_entry(mapper: FileActionMapper, path: Path, name: str, path_type: str = "input") -> dict[str, Any]:
    return {"name": name, "type": path_type, "action": mapper.action(str(path), path_type).to_dict()}


def settings(tmp_path: Path, checking: str = "accept-new") -> SshSettings:
    return SshSettings(checking, tmp_path / "known_hosts")


# -- argv and validation (no sshd needed) ---------------------------------------------------


def test_rsync_remote_shell_is_the_ssh_argv_quoted() -> None:
    """rsync splits `-e` itself; what it gets back must be exactly our ssh argv, even with a
    known_hosts path holding spaces and a percent sign (ssh would expand `%h`)."""
    config = SshSettings("accept-new", Path("/var/lib/pulsar 1/known %h"))
    endpoint = Endpoint("example.org", "KEY", "galaxy", 2222)
    argv = ssh_transfer.rsync_argv(config, "/tmp/k/key", endpoint, "galaxy@example.org:/data/a b", "/t")
    assert argv[:3] == ["rsync", "--protect-args", "--copy-links"]
    assert shlex.split(argv[argv.index("-e") + 1]) == ssh_transfer.ssh_argv(config, "/tmp/k/key", endpoint)
    assert 'UserKnownHostsFile="/var/lib/pulsar 1/known %%h"' in ssh_transfer.ssh_argv(config, "k", endpoint)
    assert argv[-3:] == ["--", "galaxy@example.org:/data/a b", "/t"]


def test_mkdir_is_quoted_for_the_remote_shell() -> None:
    endpoint = Endpoint("h", "KEY")
    argv = ssh_transfer.mkdir_argv(SshSettings(), "k", endpoint, "/out/$(touch x); y")
    assert argv[-3:] == ["--", "h", "mkdir -p -- '/out/$(touch x); y'"]


def test_an_ipv6_host_is_bracketed_for_scp_and_rsync_only() -> None:
    endpoint = Endpoint("::1", "KEY", "galaxy")
    assert endpoint.remote("/d/f") == "galaxy@[::1]:/d/f"
    assert ssh_transfer.mkdir_argv(SshSettings(), "k", endpoint, "/d")[-2] == "galaxy@::1"
    assert Endpoint("[::1]", "KEY").remote("/d/f") == "[::1]:/d/f"


@pytest.mark.parametrize("field, value, message", [
    ("ssh_host", "-oProxyCommand=touch /tmp/x", "is not a host name"),
    ("ssh_host", "", "is not a host name"),
    ("ssh_user", "-x", "is not a user name"),
    ("ssh_port", "22; rm", "is not a port"),
    ("ssh_port", "70000", "is not a port"),
    ("ssh_key", None, "needs ssh_key"),
])
def test_an_endpoint_that_could_be_read_as_an_option_is_refused(field: str, value: Any, message: str) -> None:
    fields = {"ssh_host": "h", "ssh_user": "u", "ssh_port": "22", "ssh_key": "KEY", field: value}
    with pytest.raises(ActionError, match=message):
        Endpoint.of(FileAction("remote_scp_transfer", path="/p", **fields))


def test_the_key_file_is_private_and_gone_afterwards(private_tmp: Path) -> None:
    with ssh_transfer.private_key_file("-----BEGIN KEY-----\nabc\n-----END KEY-----") as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert Path(path).read_text().endswith("-----END KEY-----\n")  # OpenSSH needs the newline
    assert list(private_tmp.iterdir()) == []


def test_settings_from_options(tmp_path: Path) -> None:
    assert SshSettings.from_options({}, tmp_path) == SshSettings("accept-new", tmp_path / "ssh_known_hosts")
    assert SshSettings.from_options({}, None).known_hosts is None
    relative = SshSettings.from_options({"ssh_known_hosts_file": "kh", "config_dir": str(tmp_path)}, None)
    assert relative.known_hosts == tmp_path / "kh"
    with pytest.raises(ConfigurationError, match="pinned needs ssh_known_hosts_file"):
        SshSettings.from_options({"ssh_host_key_checking": "pinned"}, tmp_path)
    with pytest.raises(ConfigurationError, match="ssh_known_hosts_file: no such file"):
        SshSettings.from_options({"ssh_host_key_checking": "pinned", "ssh_known_hosts_file": str(tmp_path / "no")},
                                 tmp_path)


def test_pinned_without_its_file_stops_the_start(tmp_path: Path) -> None:
    from pulsar.core import PulsarApp

    with pytest.raises(ConfigurationError, match="ssh_host_key_checking: pinned needs ssh_known_hosts_file"):
        PulsarApp(staging_directory=str(tmp_path / "staging"), persistence_directory=str(tmp_path / "persisted"),
                  ssh_host_key_checking="pinned")
    with pytest.raises(ConfigurationError, match="ssh_host_key_checking: expected one of"):
        PulsarApp(staging_directory=str(tmp_path / "staging"), ssh_host_key_checking="no")


# -- both directions against the real sshd ---------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_stage_in_fetches_inputs_over_ssh(tool: str, ssh_server: SshServer, job: JobDirectory, tmp_path: Path,
                                          private_tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
    client = tmp_path / "galaxy files"
    client.mkdir()
    payload = os.urandom(3 * 1024 * 1024 + 7)
    (client / "dataset 1.dat").write_bytes(payload)
    (client / "extra.txt").write_text("second input\n")
    mapper = mapper_for(ssh_server, tool)
    remote_staging = {"setup": [setup_entry(mapper, client / "dataset 1.dat", "dataset 1.dat"),
                                setup_entry(mapper, client / "extra.txt", "sub/extra.txt", "tool")],
                      "action_mapper": mapper.to_dict()}
    caplog.set_level(logging.DEBUG)
    stage_in(job, remote_staging, never, ssh=settings(tmp_path))
    assert (job.path / "inputs" / "dataset 1.dat").read_bytes() == payload
    assert (job.path / "tool_files" / "sub" / "extra.txt").read_text() == "second input\n"
    assert sorted(os.listdir(job.path / "inputs")) == ["dataset 1.dat"]  # no temp file left
    assert f"[{ssh_server.host}]:{ssh_server.port}" in (tmp_path / "known_hosts").read_text()  # trusted on first use
    assert list(private_tmp.iterdir()) == []  # the key file went
    assert ssh_server.user_key.read_text().splitlines()[1] not in caplog.text


@pytest.mark.parametrize("tool", TOOLS)
def test_an_ipv6_ssh_host_works_both_ways(tool: str, ssh_server: SshServer, job: JobDirectory,
                                          tmp_path: Path) -> None:
    """ssh_host ::1 against the real sshd listening there: in and out, host key recorded."""
    if not ssh_server.ipv6:
        unavailable("this machine has no IPv6 loopback (::1) for the sshd to listen on")
    server = dataclasses.replace(ssh_server, host="::1")
    (tmp_path / "in.txt").write_text("over v6\n")
    mapper = mapper_for(server, tool)
    stage_in(job, {"setup": [setup_entry(mapper, tmp_path / "in.txt", "in.txt")], "action_mapper": mapper.to_dict()},
             never, ssh=settings(tmp_path))
    assert (job.path / "inputs" / "in.txt").read_text() == "over v6\n"
    assert "[::1]:" in (tmp_path / "known_hosts").read_text()
    (job.outputs / "out.txt").write_text("back over v6\n")
    target = tmp_path / "returned" / "out.txt"
    outputs = ClientOutputs(working_directory=str(tmp_path / "w"), metadata_directory=str(tmp_path / "m"),
                            output_files=[str(target)])
    assert stage_out(job, {"action_mapper": mapper.to_dict(), "client_outputs": outputs.to_dict()}, never,
                     ssh=settings(tmp_path)) == []
    assert target.read_text() == "back over v6\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_stage_out_sends_outputs_over_ssh_into_new_directories(tool: str, ssh_server: SshServer, job: JobDirectory,
                                                                tmp_path: Path, private_tmp: Path) -> None:
    galaxy = tmp_path / "galaxy"
    big = os.urandom(5 * 1024 * 1024 + 1)
    (job.outputs / "dataset_2.dat").write_bytes(big)
    (job.working / "wd out.txt").write_text("from the working directory\n")
    outputs = ClientOutputs(working_directory=str(galaxy / "working"), metadata_directory=str(galaxy / "metadata"),
                            output_files=[str(galaxy / "new" / "deeper" / "dataset_2.dat")],
                            work_dir_outputs=[(str(galaxy / "working" / "wd out.txt"), str(galaxy / "o" / "d3.dat"))])
    mapper = mapper_for(ssh_server, tool)
    remote_staging = {"action_mapper": mapper.to_dict(), "client_outputs": outputs.to_dict()}
    assert stage_out(job, remote_staging, never, ssh=settings(tmp_path)) == []
    sent = (galaxy / "new" / "deeper" / "dataset_2.dat").read_bytes()
    assert hashlib.sha256(sent).digest() == hashlib.sha256(big).digest()
    assert (galaxy / "o" / "d3.dat").read_text() == "from the working directory\n"
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("tool", TOOLS)
def test_the_message_queue_form_carries_the_key_beside_the_mapper(tool: str, ssh_server: SshServer,
                                                                   job: JobDirectory, tmp_path: Path) -> None:
    """Over MQ the key may come only in `remote_staging.ssh_key` (spec 6.5)."""
    (tmp_path / "in.txt").write_text("via mq\n")
    (job.outputs / "out.txt").write_text("back via mq\n")
    mapper = mapper_for(ssh_server, tool, ssh_key=None)
    mapper.ssh_key = ssh_server.user_key.read_text()
    entry = setup_entry(mapper, tmp_path / "in.txt", "in.txt")
    mapper.ssh_key = None
    outputs = ClientOutputs(working_directory=str(tmp_path / "w"), output_files=[str(tmp_path / "back" / "out.txt")])
    remote_staging = {"setup": [entry], "action_mapper": mapper.to_dict(), "client_outputs": outputs.to_dict(),
                      "ssh_key": ssh_server.user_key.read_text()}
    stage_in(job, remote_staging, never, ssh=settings(tmp_path))
    assert (job.path / "inputs" / "in.txt").read_text() == "via mq\n"
    assert stage_out(job, remote_staging, never, ssh=settings(tmp_path)) == []
    assert (tmp_path / "back" / "out.txt").read_text() == "back via mq\n"


def test_a_rule_key_wins_over_the_destination_key(ssh_server: SshServer, job: JobDirectory, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("rule key\n")
    rules = FileActionMapper.from_dict({"default_action": "transfer", "ssh_key": "not a key", "paths": [
        {"path": str(tmp_path), "action": "remote_rsync_transfer", "ssh_key": ssh_server.user_key.read_text(),
         "ssh_user": ssh_server.user, "ssh_host": ssh_server.host, "ssh_port": ssh_server.port}]})
    remote_staging = {"setup": [setup_entry(rules, tmp_path / "in.txt", "in.txt")], "action_mapper": rules.to_dict()}
    stage_in(job, remote_staging, never, ssh=settings(tmp_path))
    assert (job.path / "inputs" / "in.txt").read_text() == "rule key\n"


# -- host keys -------------------------------------------------------------------------------


def fetch_one(server: SshServer, job: JobDirectory, tmp_path: Path, config: SshSettings) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    mapper = mapper_for(server, "remote_scp_transfer")
    stage_in(job, {"setup": [setup_entry(mapper, tmp_path / "in.txt", "in.txt")], "action_mapper": mapper.to_dict()},
             never, ssh=config)


def test_accept_new_refuses_a_changed_host_key(ssh_server: SshServer, job: JobDirectory, tmp_path: Path) -> None:
    other = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    (tmp_path / "known_hosts").write_text(f"[{ssh_server.host}]:{ssh_server.port} ssh-ed25519 {other}\n")
    with pytest.raises(SshTransferError, match="Host key verification failed") as info:
        fetch_one(ssh_server, job, tmp_path, settings(tmp_path))
    assert "scp exited with" in str(info.value) and not info.value.transient
    assert not (job.path / "inputs" / "in.txt").exists() and os.listdir(job.path / "inputs") == []


def test_pinned_connects_only_to_listed_hosts(ssh_server: SshServer, job: JobDirectory, tmp_path: Path) -> None:
    (tmp_path / "known_hosts").write_text("")
    with pytest.raises(SshTransferError, match="Host key verification failed"):
        fetch_one(ssh_server, job, tmp_path, settings(tmp_path, "pinned"))
    assert (tmp_path / "known_hosts").read_text() == ""  # pinned never adds a host
    (tmp_path / "known_hosts").write_text(ssh_server.known_hosts_line())
    fetch_one(ssh_server, job, tmp_path, settings(tmp_path, "pinned"))
    assert (job.path / "inputs" / "in.txt").read_text() == "x\n"


def test_ignore_checks_nothing_and_records_nothing(ssh_server: SshServer, job: JobDirectory, tmp_path: Path) -> None:
    (tmp_path / "known_hosts").write_text(f"[{ssh_server.host}]:{ssh_server.port} ssh-ed25519 "
                                          "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    fetch_one(ssh_server, job, tmp_path, settings(tmp_path, "ignore"))
    assert (job.path / "inputs" / "in.txt").read_text() == "x\n"


# -- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_a_missing_input_fails_with_the_tools_message(tool: str, ssh_server: SshServer, job: JobDirectory,
                                                      tmp_path: Path, private_tmp: Path) -> None:
    mapper = mapper_for(ssh_server, tool)
    remote_staging = {"setup": [setup_entry(mapper, tmp_path / "nope.dat", "nope.dat")],
                      "action_mapper": mapper.to_dict()}
    with pytest.raises(SshTransferError, match="No such file") as info:
        stage_in(job, remote_staging, never, ssh=settings(tmp_path))
    assert str(tmp_path / "nope.dat") in str(info.value) and not info.value.transient
    assert os.listdir(job.path / "inputs") == [] and list(private_tmp.iterdir()) == []


def test_a_refused_key_fails_without_showing_the_key(ssh_server: SshServer, job: JobDirectory,
                                                     tmp_path: Path, private_tmp: Path) -> None:
    stranger_path = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger_path)], check=True)
    stranger = stranger_path.read_text()
    (tmp_path / "in.txt").write_text("x\n")
    mapper = mapper_for(ssh_server, "remote_rsync_transfer", ssh_key=stranger)
    remote_staging = {"setup": [setup_entry(mapper, tmp_path / "in.txt", "in.txt")], "action_mapper": mapper.to_dict()}
    with pytest.raises(SshTransferError, match="Permission denied") as info:
        stage_in(job, remote_staging, never, ssh=settings(tmp_path))
    assert stranger.splitlines()[1] not in str(info.value)
    assert list(private_tmp.iterdir()) == []


def test_an_unreachable_host_is_transient(job: JobDirectory, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    mapper = FileActionMapper(default_action="remote_scp_transfer", ssh_key="KEY", ssh_host="127.0.0.1",
                              ssh_port=free_port())
    remote_staging = {"setup": [setup_entry(mapper, tmp_path / "in.txt", "in.txt")], "action_mapper": mapper.to_dict()}
    with pytest.raises(SshTransferError, match="Connection refused") as info:
        stage_in(job, remote_staging, never, ssh=settings(tmp_path))
    assert info.value.transient


@pytest.mark.parametrize("tool", TOOLS)
def test_an_output_that_cannot_be_sent_is_a_failure_with_the_tools_message(tool: str, ssh_server: SshServer,
                                                                           job: JobDirectory, tmp_path: Path) -> None:
    """The output's directory cannot be created (a file stands where it should be): the
    failure names the output and carries mkdir's own message; nothing else is sent."""
    (tmp_path / "blocker").write_text("a file, not a directory\n")
    (job.outputs / "dataset_5.dat").write_text("never arrives\n")
    outputs = ClientOutputs(working_directory=str(tmp_path / "w"),
                            output_files=[str(tmp_path / "blocker" / "sub" / "dataset_5.dat")])
    mapper = mapper_for(ssh_server, tool)
    failures = stage_out(job, {"action_mapper": mapper.to_dict(), "client_outputs": outputs.to_dict()}, never,
                         ssh=settings(tmp_path))
    assert len(failures) == 1 and "dataset_5.dat" in failures[0] and "Not a directory" in failures[0], failures
    assert (tmp_path / "blocker").read_text() == "a file, not a directory\n"
