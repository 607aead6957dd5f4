"""The same Galaxy-like job through the HTTP API on every manager we can run here:
stage, run, poll, download; cancel; and a server restart mid-job."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from test.support.http import Api
from test.support.processes import process_alive
from test.support.server import PulsarServer, start_server

pytestmark = [pytest.mark.integration]

MANAGERS = ["queued_python", "unqueued", "slurm_local", "slurm_ssh", "drmaa", "external_drmaa"]


def _options(request: pytest.FixtureRequest, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(manager options, submit params) for one kind of manager, or skip."""
    if kind in ("queued_python", "unqueued"):
        return {"type": kind}, {}
    if kind.startswith("slurm"):
        request.getfixturevalue("slurm")
        options = {"type": "queued_cli", "job_plugin": "Slurm", "poll_interval": 0.3}
        if kind == "slurm_ssh":
            sshd = request.getfixturevalue("sshd")
            options.update({"shell_plugin": "SecureShell", **{f"shell_{k}": v for k, v in sshd.items()}})
        return options, {}
    request.getfixturevalue("sge")
    options = {"type": "queued_" + kind, "native_specification": "-q all.q", "poll_interval": 0.3}
    if kind == "drmaa":
        return options, {}
    python = request.getfixturevalue("helper_python")
    user, _ = request.getfixturevalue("drm_user")
    for option, module in (
        ("drmaa_launch_script", "drmaa_launch"),
        ("drmaa_kill_script", "drmaa_kill"),
        ("chown_working_directory_script", "chown_working_directory"),
    ):
        options[option] = f"{python} -m pulsar.scripts.{module}"
    return options, {"user": user}


class Setup:
    def __init__(self, root: Path, manager: dict[str, Any], submit_params: dict[str, Any]):
        self.root = root
        self.config = {
            "managers": {"_default_": manager},
            "staging_directory": str(root / "staging"),
            "persistence_directory": str(root / "persisted"),
        }
        self.submit_params = submit_params
        self.server: PulsarServer | None = None

    def start(self, port: int | None = None) -> Api:
        self.server = start_server(self.root / "config", app_config=self.config, port=port)
        return Api(self.server.url, self.server.token)

    def submit(self, api: Api, job_id: str, command: str) -> None:
        extra = {"params": self.submit_params} if self.submit_params else {}
        api.submit(job_id, command, **extra)


@pytest.fixture(params=MANAGERS)
def setup(request: pytest.FixtureRequest, job_root: Path) -> Iterator[Setup]:
    manager, params = _options(request, request.param)
    setup = Setup(job_root, manager, params)
    yield setup
    if setup.server is not None:
        setup.server.stop()


def _wait(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)



def test_job_through_the_http_api(setup: Setup) -> None:
    api = setup.start()
    data = os.urandom(1 << 20)
    api.setup("e2e")
    api.upload("e2e", "dataset_1.dat", data)
    api.upload("e2e", "tool.sh", b"cat ../inputs/dataset_1.dat > ../outputs/out.dat\n", type="tool")
    setup.submit(api, "e2e", "bash ../tool_files/tool.sh; echo hi > ../metadata/tool_stdout; exit 3")
    status = api.poll_until_terminal("e2e")
    assert status["status"] == "complete", status
    assert status["returncode"] == 3 and status["stdout"] == "hi\n"
    assert api.download("e2e", "out.dat") == data
    assert api.request("DELETE", "jobs/e2e").status_code == 200
    assert api.status("e2e")["status"] == "lost"


def test_cancel(setup: Setup) -> None:
    api = setup.start()
    api.setup("cancel")
    setup.submit(api, "cancel", "sleep 300 & echo $! > ../sleeper; wait")
    sleeper = setup.root / "staging" / "cancel" / "sleeper"
    _wait(lambda: sleeper.exists() and sleeper.read_text().strip() != "")
    pid = int(sleeper.read_text())
    assert api.request("PUT", "jobs/cancel/cancel").status_code == 200
    assert api.poll_until_terminal("cancel")["status"] == "cancelled"
    _wait(lambda: not process_alive(pid))


def test_server_restart_mid_job(setup: Setup) -> None:
    api = setup.start()
    gate = setup.root / "gate"
    api.setup("restart")
    command = f"echo started > ../outputs/out; while [ ! -e {gate} ]; do sleep 0.1; done; echo done >> ../outputs/out"
    setup.submit(api, "restart", command + "; exit 9")
    _wait(lambda: api.status("restart")["status"] == "running")
    assert setup.server is not None
    port = setup.server.port
    setup.server.stop()
    api = setup.start(port=port)
    gate.touch()
    os.chmod(gate, 0o644)
    status = api.poll_until_terminal("restart")
    assert status["status"] == "complete" and status["returncode"] == 9, status
    assert api.download("restart", "out") == b"started\ndone\n"
