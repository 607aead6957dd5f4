"""The tool allow-list and `user_auth` on a real server over HTTP, driven by the REFERENCE
client 0.15.16 (the one Galaxy 26.1 uses) and by raw requests: a listed tool runs; an
unlisted one is answered 403 with a JSON reason at setup and leaves no job directory (the
reference answers 500 and leaves it); a job `user_auth` refuses is answered 403 at submit."""

from __future__ import annotations

import json
import subprocess
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from test.integration.test_reference_clients import reference_env
from test.support.reference import reference_bin, reference_script
from test.support.server import PulsarServer

pytestmark = [pytest.mark.integration, pytest.mark.reference, pytest.mark.timeout(600)]

CLIENT_SCRIPT = r'''
import json, os, sys
from reference_client_jobs import wait_terminal
from pulsar.client.manager import build_client_manager
from pulsar.client.staging import ClientJobDescription, ClientOutputs
from pulsar.client.staging.up import submit_job

url, token, work, tool_dir, tool_id = sys.argv[1:6]

class Tool:
    def __init__(self):
        self.id, self.version, self.tool_dir = tool_id, "1.0.0", tool_dir

job_id = tool_id + "-job"
client = build_client_manager().get_client({"url": url, "private_token": token}, job_id=job_id)
inputs = os.path.join(work, "inputs"); os.makedirs(inputs)
input_path = os.path.join(inputs, "dataset_1.dat")
with open(input_path, "w") as handle:
    handle.write("listed tool ran\n")
output_path = os.path.join(work, "outputs", "dataset_2.dat")
working, metadata = os.path.join(work, "working"), os.path.join(work, "metadata")
os.makedirs(working); os.makedirs(metadata)
outputs = ClientOutputs(working_directory=working, metadata_directory=metadata, output_files=[output_path])
description = ClientJobDescription(
    command_line=f"sh {tool_dir}/cat.sh {input_path} {output_path}", tool=Tool(), input_files=[input_path],
    client_outputs=outputs, working_directory=working, metadata_directory=metadata, rewrite_paths=True,
)
result = {}
try:
    submit_job(client, description)
except Exception as exc:
    result["submit_error"] = f"{type(exc).__name__}: {exc}"
else:
    status, _ = wait_terminal(client)
    result["final"] = {k: status.get(k) for k in ("status", "returncode", "stderr", "outputs_directory_contents")}
print("RESULT " + json.dumps(result))
'''


@pytest.fixture
def tool_dir(tmp_path: Path) -> Path:
    """One tool, `cat1` 1.0.0, whose command must be `sh <its cat.sh> <an input> <an output>`;
    the client uploads from the same directory the server's toolbox lists."""
    directory = tmp_path / "tools" / "cat1"
    directory.mkdir(parents=True)
    (directory / "cat.sh").write_text('cat "$1" > "$2"\n')
    (directory / "cat1.xml").write_text(textwrap.dedent("""\
        <tool id="cat1" version="1.0.0">
          <validators><command_validator>
            <literal value="sh"/><tool_wrapper name="cat.sh"/><input/><output/>
          </command_validator></validators>
        </tool>
        """))
    (tmp_path / "toolbox.xml").write_text('<toolbox><tool file="tools/cat1/cat1.xml"/></toolbox>')
    return directory


def run_reference_client(server: PulsarServer, work: Path, tool_dir: Path, tool_id: str) -> dict[str, Any]:
    work.mkdir()
    run = subprocess.run([str(reference_bin("galaxy-lib-0.15.16", "python")), "-c", reference_script(CLIENT_SCRIPT), server.url,
                          str(server.token), str(work), str(tool_dir), tool_id],
                         capture_output=True, text=True, env=reference_env(), timeout=300, cwd=work)
    assert run.returncode == 0 and "RESULT " in run.stdout, f"{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(run.stdout.rsplit("RESULT ", 1)[1])
    return result


def post(server: PulsarServer, path: str, **params: str) -> tuple[int, dict[str, Any]]:
    query = urllib.parse.urlencode({**params, "private_token": server.token})
    request = urllib.request.Request(f"{server.url}{path}?{query}", method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_listed_tool_runs_unlisted_tool_gets_403_at_setup(pulsar_server_factory: Any, tool_dir: Path,
                                                          tmp_path: Path) -> None:
    server = pulsar_server_factory(app_config={"tool_config_files": str(tmp_path / "toolbox.xml")})
    staging = server.config_dir / "staging"

    listed = run_reference_client(server, tmp_path / "listed", tool_dir, "cat1")
    assert listed.get("final", {}).get("status") == "complete", (listed, server.log_text()[-3000:])
    assert listed["final"]["returncode"] == 0 and listed["final"]["outputs_directory_contents"] == ["dataset_2.dat"]
    assert (staging / "cat1-job" / "outputs" / "dataset_2.dat").read_text() == "listed tool ran\n"

    unlisted = run_reference_client(server, tmp_path / "unlisted", tool_dir, "rm_rf")
    assert "403" in unlisted.get("submit_error", "") or "not in this server's tool allow-list" in \
        unlisted.get("submit_error", ""), unlisted
    assert not (staging / "rm_rf-job").exists()

    status, body = post(server, "jobs", job_id="raw", tool_id="rm_rf", tool_version="1.0.0")
    assert status == 403, body
    assert body == {"error": "refused", "detail": "tool 'rm_rf' version '1.0.0' is not in this server's tool allow-list"}
    assert not (staging / "raw").exists()
    lines = server.log_text().splitlines()
    explained = [line for line in lines if "rm_rf" in line and "pulsar.access" not in line and ".access " not in line]
    assert len(explained) == 2 and all("-> 403 refused: tool 'rm_rf'" in line for line in explained), explained
    assert not [line for line in lines if " ERROR " in line or "Traceback" in line]


def test_user_auth_refusal_is_403_at_submit(pulsar_server_factory: Any) -> None:
    server = pulsar_server_factory(app_config={"user_auth": {
        "authentication": [{"type": "allow_all"}],
        "authorization": [{"type": "userlist", "userlist_allowed_users": ["alice"]}],
    }})
    assert post(server, "jobs", job_id="u1")[0] == 200
    status, body = post(server, "jobs/u1/submit", command_line="touch ../outputs/ran")
    assert status == 403, body
    assert body["error"] == "refused" and "user 'anonymous' is not in userlist_allowed_users" in body["detail"]
    code, document = server.get("jobs/u1/status")
    assert code == 200 and json.loads(document)["status"] == "failed"
    assert not (server.config_dir / "staging" / "u1" / "outputs" / "ran").exists()
