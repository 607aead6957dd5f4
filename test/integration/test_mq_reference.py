"""Interop over the message queue: Galaxy-side client libraries x Pulsar servers, on the
real broker, with a fake Galaxy serving inputs and receiving outputs over HTTP.

Clients: the reference pulsar-galaxy-lib 0.15.15 (Galaxy 26.1.2's pin), 0.15.16 (what pip
resolves for it), 0.16.0, and ours; each is driven by reference_mq_driver.py exactly as
Galaxy's PulsarMQJobRunner drives it, in a subprocess with that library's python.
Servers: the reference pulsar-app 0.16.0 `pulsar-main`, and ours (`pulsar -m webless`).

The reference x reference runs document what the others must match (e.g. no `cancelled` is
published after a kill, a tool's non-zero exit is `complete`).  Each (client, server) pair
runs every scenario once (module-scoped fixture); the tests below assert on what it saw.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test.support.galaxy_files import FakeGalaxy
from test.support.mq_server import MqServer, start_our_mq_server, start_reference_mq_server
from test.support.rabbitmq import require_broker, tls_settings, unique_name
from test.support.reference import reference_bin
from test.support.server import subprocess_env
from test.support.sshd import SshServer

pytestmark = [pytest.mark.integration, pytest.mark.reference, pytest.mark.rabbitmq, pytest.mark.timeout(900)]

DRIVER = Path(__file__).with_name("reference_mq_driver.py")
REFERENCE_CLIENTS = ["galaxy-lib-0.15.15", "galaxy-lib-0.15.16", "galaxy-lib-0.16.0"]
OURS = "ours"
PAIRS = [(client, "reference") for client in REFERENCE_CLIENTS] + [(OURS, "reference")] + \
        [(client, OURS) for client in REFERENCE_CLIENTS] + [(OURS, OURS)]
SCENARIOS = ["ok", "exit3", "input_404", "output_500", "output_403", "cancel", "status_unknown"]
TERMINAL = {"complete", "failed", "cancelled", "lost"}
#: the keys of a full terminal status document (mq-protocol.md §3.5)
TERMINAL_KEYS = {"job_id", "complete", "status", "returncode", "stdout", "stderr", "job_stdout", "job_stderr",
                 "working_directory", "metadata_directory", "job_directory", "working_directory_contents",
                 "metadata_directory_contents", "outputs_directory_contents", "job_directory_contents",
                 "system_properties", "pulsar_version", "realized_dynamic_file_sources"}


@pytest.fixture(scope="module")
def broker_url() -> str:
    return require_broker()


@pytest.fixture(scope="module")
def galaxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGalaxy]:
    """One fake Galaxy for the module; inputs named *_gone.dat are 404, outputs named
    *_reject500/403.dat are refused."""
    with FakeGalaxy(tmp_path_factory.mktemp("galaxy")) as fake:
        fake.fail(404, "*_gone.dat", method="GET")
        fake.fail(500, "*_reject500.dat", method="POST")
        fake.fail(403, "*_reject403.dat", method="POST")
        yield fake


def _server(kind: str, tmp_path_factory: pytest.TempPathFactory, url: str) -> Iterator[MqServer]:
    start = start_reference_mq_server if kind == "reference" else start_our_mq_server
    server = start(tmp_path_factory.mktemp(f"{kind}-server"), url, unique_name("mqi"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def reference_server(tmp_path_factory: pytest.TempPathFactory, broker_url: str) -> Iterator[MqServer]:
    yield from _server("reference", tmp_path_factory, broker_url)


@pytest.fixture(scope="module")
def our_server(tmp_path_factory: pytest.TempPathFactory, broker_url: str) -> Iterator[MqServer]:
    yield from _server(OURS, tmp_path_factory, broker_url)


def client_command(client: str) -> tuple[list[str], dict[str, str]]:
    """The python that runs the driver, and its environment (nothing of ours leaks into a
    reference venv; ours gets this checkout on its path)."""
    if client == OURS:
        return [sys.executable, str(DRIVER)], subprocess_env()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "LC_ALL": "C.UTF-8"}
    return [str(reference_bin(client, "python")), str(DRIVER)], env


def run_driver(client: str, server: MqServer, galaxy: FakeGalaxy, work: Path,
               scenarios: list[str] = SCENARIOS, mode: str = "scenarios", destination: dict[str, Any] | None = None,
               **amqp_options: Any) -> dict[str, Any]:
    """Run the driver once (Galaxy's runner params: the server's broker URL, `amqp_options`;
    `destination`: params over the MQ runner's defaults); every scenario's observations, plus
    the fake Galaxy's requests."""
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "amqp_url": server.amqp_url, "admin_url": server.admin_url, "manager": server.manager,
        "jobs_directory": server.staging_directory,
        "galaxy_url": galaxy.url, "job_key": galaxy.job_key, "galaxy_root": str(galaxy.root),
        "persistence_directory": str(work / "persisted"), "result_path": str(work / "result.json"),
        "scenarios": scenarios, "mode": mode, "amqp_options": amqp_options,
        "job_id_base": str(uuid.uuid4().int % 10**8), "destination": destination or {},
    }
    config_path = work / "driver.json"
    config_path.write_text(json.dumps(config, indent=2))
    command, env = client_command(client)
    run = subprocess.run([*command, str(config_path)], capture_output=True, text=True, cwd=work, env=env,
                         timeout=600)
    (work / "driver.log").write_text(run.stderr)
    context = f"driver stderr:\n{run.stderr[-3000:]}\nserver log:\n{server.log_text()[-3000:]}"
    assert run.returncode == 0 and (work / "result.json").exists(), context
    results: dict[str, Any] = json.loads((work / "result.json").read_text())
    assert "error" not in results, f"{results['error']}\n{context}"
    results["context"] = context
    results["files"] = [r for r in galaxy.requests if any(r.job_id == j["job_id"] for j in results["jobs"].values())]
    return results


@pytest.fixture(scope="module", params=PAIRS, ids=[f"{c}->{s}" for c, s in PAIRS])
def observed(request: pytest.FixtureRequest, galaxy: FakeGalaxy,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    client, server_kind = request.param
    server: MqServer = request.getfixturevalue("reference_server" if server_kind == "reference" else "our_server")
    return run_driver(client, server, galaxy, tmp_path_factory.mktemp(f"{client}-on-{server_kind}"))


def job(observed: dict[str, Any], scenario: str) -> dict[str, Any]:
    result: dict[str, Any] = observed["jobs"][scenario]
    assert "error" not in result, f"{scenario}: {result['error']}\n{observed['context']}"
    return result


def statuses(result: dict[str, Any], before: float | None = None) -> list[str]:
    """The statuses published for the job, in order (only those before `before` seconds)."""
    return [u["body"].get("status") for u in result["updates"] if before is None or u["t"] < before]


def terminal(result: dict[str, Any]) -> dict[str, Any]:
    """The one terminal document: exactly one terminal status per job, nothing after it."""
    published = statuses(result)
    assert [s for s in published if s in TERMINAL] == [published[-1]], f"not exactly one terminal, last: {published}"
    body: dict[str, Any] = result["updates"][-1]["body"]
    return body


def requests_of(observed: dict[str, Any], result: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """(method, file_type, file name, status answered) of the job's requests to Galaxy, sorted;
    job-metrics files (`__instrument_*`, which only some servers write) left out."""
    return sorted((r.method, r.file_type, Path(r.path or "").name, r.status)
                  for r in observed["files"]
                  if r.job_id == result["job_id"] and not Path(r.path or "").name.startswith("__instrument_"))


def test_job_with_input_config_tool_file_and_output(observed: dict[str, Any]) -> None:
    result = job(observed, "ok")
    assert statuses(result) == ["running", "complete"]
    final = terminal(result)
    assert TERMINAL_KEYS <= set(final)
    assert (final["complete"], final["returncode"], final["stdout"], final["stderr"]) == \
           ("true", 0, "tool says hi\n", "tool complains\n")
    assert final["job_id"] == result["job_id"] == result["returned_id"]
    assert result["galaxy_output"] == "input line\nconfig line\n"
    assert result["finish_failures"] == []
    assert result["cached_after_finish"] is False  # finish_job's clean() dropped the cache entry
    # the config file travelled inline in the setup message: no HTTP for it
    name = f"dataset_{result['job_id']}"
    assert requests_of(observed, result) == sorted([
        ("GET", "input", f"{name}_in.dat", 200),
        ("GET", "jobdir", "tool_script.sh", 200),
        ("GET", "tool", "helper.sh", 200),
        ("POST", "output", f"{name}_out.dat", 200),
        ("POST", "output_metadata", "tool_stderr", 200),
        ("POST", "output_metadata", "tool_stdout", 200),
    ])


def test_non_zero_exit_is_complete_with_the_return_code(observed: dict[str, Any]) -> None:
    result = job(observed, "exit3")
    final = terminal(result)
    assert (final["status"], final["returncode"], final["stdout"], final["stderr"]) == \
           ("complete", 3, "about to fail\n", "it went wrong\n")
    assert result["finish_failures"] == []


def test_input_missing_on_galaxy_fails_once_without_running(observed: dict[str, Any]) -> None:
    result = job(observed, "input_404")
    final = terminal(result)
    assert (final["status"], final["returncode"]) == ("failed", 1)
    assert "running" not in statuses(result)
    assert result["tool_ran"] is False
    assert ("GET", "input", f"dataset_{result['job_id']}_gone.dat", 404) in requests_of(observed, result)


def test_output_refused_with_500_fails_once(observed: dict[str, Any]) -> None:
    """Post-processing failed: `failed` (the reference keeps the tool's returncode, 0), and
    Galaxy fails the job; no `running` is required (the tool is quick)."""
    result = job(observed, "output_500")
    assert terminal(result)["status"] == "failed"
    assert ("POST", "output", f"dataset_{result['job_id']}_reject500.dat", 500) in requests_of(observed, result)
    assert result["galaxy_output"] is None


def test_output_refused_with_403_is_tolerated(observed: dict[str, Any]) -> None:
    """A 403 on an output POST is not a failure (Galaxy refuses a path it does not expect)."""
    result = job(observed, "output_403")
    final = terminal(result)
    assert ("POST", "output", f"dataset_{result['job_id']}_reject403.dat", 403) in requests_of(observed, result)
    assert (final["status"], final["returncode"]) == ("complete", 0)
    assert result["finish_failures"] == []


def test_kill_stops_the_job_and_publishes_nothing(observed: dict[str, Any]) -> None:
    result = job(observed, "cancel")
    assert result["before_kill"] == "running" and result["tool_process_seen"]
    # nothing unprompted after the kill (the reference never publishes `cancelled`, B6) ...
    assert statuses(result, before=result["status_requested_at"]) == ["running"]
    # ... but a status request answers it, and the process tree is gone
    assert result["status_reply"] == "cancelled"
    assert result["survivors"] == []


def test_status_request_for_an_unknown_job(observed: dict[str, Any], request: pytest.FixtureRequest) -> None:
    """On the `status` queue (0.15.16+, ours): one `lost` document (B24).  0.15.15 asks on the
    SETUP queue: the reference server takes it for a launch and publishes one `failed` (B8);
    ours neither creates nor fails the job and does not answer (mq-protocol §8.8).  No job
    directory either way."""
    client, server_kind = request.node.callspec.params["observed"]
    result = job(observed, "status_unknown")
    if client == "galaxy-lib-0.15.15":
        assert statuses(result) == (["failed"] if server_kind == "reference" else [])
    else:
        assert statuses(result) == ["lost"]
    assert result["job_directory_exists"] is False


def test_no_updates_for_unknown_jobs_and_clean_shutdown(observed: dict[str, Any]) -> None:
    assert observed["stray_updates"] == []
    assert observed["shutdown_clean"] is True


def test_driver_ran_the_client_it_was_given(observed: dict[str, Any], request: pytest.FixtureRequest) -> None:
    client = request.node.callspec.params["observed"][0]
    if client != OURS:
        assert observed["client_version"] == client.rsplit("-", 1)[1]


@pytest.mark.parametrize(("client", "server_kind"), PAIRS, ids=[f"{c}->{s}" for c, s in PAIRS])
def test_update_waits_in_the_queue_while_galaxy_is_down(client: str, server_kind: str, galaxy: FakeGalaxy,
                                                        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The job ends while Galaxy's runner is stopped: the restarted runner (same manager,
    same persistence directory) gets exactly one terminal update and finishes the job."""
    server: MqServer = request.getfixturevalue("reference_server" if server_kind == "reference" else "our_server")
    observed = run_driver(client, server, galaxy, tmp_path, [], mode="galaxy_restart")
    result = job(observed, "galaxy_restart")
    assert (result["before_stop"], result["first_updates"], result["first_shutdown_clean"]) == \
           ("running", ["running"], True)
    final = terminal(result)
    assert (final["status"], final["returncode"], final["stdout"]) == ("complete", 0, "after the restart\n")
    assert result["finish_failures"] == []
    assert observed["stray_updates"] == [] and observed["shutdown_clean"] is True


# ---------------------------------------------------------------------------------- scp / rsync
# The files move by ssh (a private sshd on loopback: the fake Galaxy's files are on this host),
# so the fake Galaxy's files API must see no request.

SSH_CLIENTS = ["galaxy-lib-0.15.16", OURS]
SSH_TOOLS = ["remote_scp_transfer", "remote_rsync_transfer"]


@pytest.mark.parametrize("tool", SSH_TOOLS)
@pytest.mark.parametrize("client", SSH_CLIENTS)
def test_files_move_by_scp_and_rsync(client: str, tool: str, galaxy: FakeGalaxy, our_server: MqServer,
                                     ssh_server: SshServer, tmp_path: Path) -> None:
    destination = {"default_file_action": tool, "ssh_user": ssh_server.user, "ssh_host": ssh_server.host,
                   "ssh_port": str(ssh_server.port), "ssh_key": ssh_server.user_key.read_text()}
    observed = run_driver(client, our_server, galaxy, tmp_path, ["ok"], destination=destination)
    ok = job(observed, "ok")
    assert statuses(ok) == ["running", "complete"], observed["context"]
    assert (terminal(ok)["returncode"], ok["galaxy_output"], ok["finish_failures"]) == \
           (0, "input line\nconfig line\n", [])
    assert requests_of(observed, ok) == []
    assert ssh_server.user_key.read_text().splitlines()[1] not in our_server.log_text()


# ---------------------------------------------------------------------------------- TLS + acks
# Galaxy's recommended production set-up: an amqps:// broker with a private CA, acks on both sides.

TLS_PAIRS = [("galaxy-lib-0.15.15", "reference"), ("galaxy-lib-0.16.0", "reference"), (OURS, "reference"),
             ("galaxy-lib-0.15.15", OURS), ("galaxy-lib-0.16.0", OURS), (OURS, OURS)]


@pytest.mark.parametrize(("client", "server_kind"), TLS_PAIRS, ids=[f"{c}->{s}" for c, s in TLS_PAIRS])
def test_tls_broker_with_acknowledgements(client: str, server_kind: str, galaxy: FakeGalaxy, tmp_path: Path,
                                          broker_url: str) -> None:
    tls = tls_settings()
    options = {"amqp_connect_ssl_ca_certs": tls["RABBITMQ_TLS_CA"], "amqp_connect_ssl_cert_reqs": "cert_required",
               "amqp_acknowledge": True}
    start = start_reference_mq_server if server_kind == "reference" else start_our_mq_server
    server = start(tmp_path / "server", tls["RABBITMQ_AMQPS_URL"], unique_name("mqt"), admin_url=broker_url,
                   **options)
    try:
        observed = run_driver(client, server, galaxy, tmp_path / "client", ["ok", "exit3"], **options)
        ok = job(observed, "ok")
        assert statuses(ok) == ["running", "complete"]
        assert (terminal(ok)["returncode"], ok["galaxy_output"], ok["finish_failures"]) == \
               (0, "input line\nconfig line\n", [])
        exit3 = job(observed, "exit3")
        assert (terminal(exit3)["status"], terminal(exit3)["returncode"]) == ("complete", 3)
        # the server asked for acks, and every setup the client sent (asking too) was acknowledged
        assert all("acknowledge_uuid" in u["body"] for u in ok["updates"])
        assert observed["unacknowledged"] == [], observed["context"]
    finally:
        server.stop()
    # ... and every status update the server sent was acknowledged by the client
    stores = [p for p in (tmp_path / "server" / "persisted").rglob("publish") if p.is_dir()]
    assert stores and [f for store in stores for f in store.iterdir()] == [], server.log_text()[-3000:]
