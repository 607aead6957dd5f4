"""`GET /metrics` of a real server on loopback after real jobs, read as Prometheus reads it
(`prometheus_client.parser`), with exact counts; who may read it (token, `metrics_public`);
the figures that need a restart (recovered jobs) or the message queue (consumers, outbox)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulsar.config import InsecureBind, check_bind
from pulsar.core import PulsarApp
from pulsar.jobs.state import JobState
from pulsar.web.server import Server
from pulsar.web.wsgi import build_wsgi_app
from test.jobs.conftest import make_app  # noqa: F401  (fixture)
from test.support import polling
from test.web.support import call, running_server

TOKEN = "metrics-t0ken"
INPUT = b"0123456789" * 100  # 1000 bytes uploaded per job
STAGED = "staged by the server\n"  # a `message` action: the server writes it (remote, in)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def request(base_url: str, method: str, path: str, data: bytes | None = None, token: str | None = TOKEN,
            headers: dict[str, str] | None = None, **params: str) -> tuple[int, bytes, str]:
    query = urllib.parse.urlencode({**params, **({"private_token": token} if token else {})})
    req = urllib.request.Request(f"{base_url}{path.lstrip('/')}?{query}", data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def scrape(base_url: str, token: str | None = TOKEN, path: str = "/metrics") -> Samples:
    status, body, content_type = request(base_url, "GET", path, token=token)
    assert status == 200, body
    assert content_type.startswith("text/plain; version=0.0.4")
    return parse(body.decode())


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def status_of(base_url: str, job_id: str) -> dict[str, Any]:
    status, body, _ = request(base_url, "GET", f"/jobs/{job_id}/status")
    assert status == 200
    document: dict[str, Any] = json.loads(body)
    return document


def wait_terminal(base_url: str, job_id: str) -> str:
    document = polling.wait_for(lambda: (d := status_of(base_url, job_id))["complete"] == "true" and d,
                                timeout=60, interval=0.05, what=f"job {job_id} to end")
    return str(document["status"])


def submit(base_url: str, job_id: str, command: str, **extra: str) -> None:
    assert request(base_url, "POST", "/jobs", b"", job_id=job_id, tool_id="cat1", tool_version="1.0")[0] == 200
    assert request(base_url, "POST", f"/jobs/{job_id}/submit", b"", command_line=command, **extra)[:2] == (200, b"OK")


@pytest.fixture
def server(make_app: Callable[..., PulsarApp]) -> Iterator[Server]:  # noqa: F811
    """A real server on loopback; `make_app` kills the jobs left running at teardown."""
    with running_server(build_wsgi_app(make_app(private_token=TOKEN)), threads=4) as server:
        yield server


def test_a_scrape_after_jobs_shows_exact_counts(server: Server) -> None:
    url = server.url
    downloaded = 0
    for index in range(3):  # complete: upload, run, download (whole, then a range)
        job_id = f"ok{index}"
        setup = request(url, "POST", "/jobs", b"", job_id=job_id, tool_id="cat1", tool_version="1.0")
        directories = json.loads(setup[1])
        assert request(url, "POST", f"/jobs/{job_id}/files", INPUT, name="in.txt", type="input")[0] == 200
        command = f"cat {directories['inputs_directory']}/in.txt > {directories['outputs_directory']}/out.txt"
        staging = {"setup": [{"type": "input", "name": "note.txt", "action": {"action_type": "message", "contents": STAGED}}]}
        extra = {"remote_staging": json.dumps(staging)} if index == 0 else {}
        assert request(url, "POST", f"/jobs/{job_id}/submit", b"", command_line=command, **extra)[:2] == (200, b"OK")
        assert wait_terminal(url, job_id) == "complete"
        status, body, _ = request(url, "GET", f"/jobs/{job_id}/files", name="out.txt", type="output")
        assert (status, body) == (200, INPUT)
        status, body, _ = request(url, "GET", f"/jobs/{job_id}/files", headers={"Range": "bytes=990-"},
                                  name="out.txt", type="output")
        assert (status, body) == (206, INPUT[990:])
        downloaded += len(INPUT) + 10
    # failed: the server cannot stage a `none` action itself, so staging in fails the job
    # staging in from a port nobody listens on fails the job (before it runs)
    bad = {"setup": [{"type": "input", "name": "x",
                      "action": {"action_type": "remote_transfer", "url": "http://127.0.0.1:9/nowhere"}}]}
    submit(url, "bad", "true", remote_staging=json.dumps(bad))
    assert wait_terminal(url, "bad") == "failed"
    # cancelled while it runs
    submit(url, "stop", "sleep 60")
    polling.wait_for(lambda: status_of(url, "stop")["status"] == "running", timeout=30, what="stop to run")
    assert request(url, "PUT", "/jobs/stop/cancel")[:2] == (200, b"OK")
    assert status_of(url, "stop")["status"] == "cancelled"
    # one still queued or running, counted by state
    submit(url, "slow", "sleep 60")
    polling.wait_for(lambda: status_of(url, "slow")["status"] == "running", timeout=30, what="slow to run")

    samples = scrape(url)
    manager = {"manager": "_default_"}
    assert value(samples, "pulsar_job_submissions_total", **manager) == 6
    assert value(samples, "pulsar_job_outcomes_total", outcome="complete", **manager) == 3
    assert value(samples, "pulsar_job_outcomes_total", outcome="failed", **manager) == 1
    assert value(samples, "pulsar_job_outcomes_total", outcome="cancelled", **manager) == 1
    assert value(samples, "pulsar_job_outcomes_total", outcome="lost", **manager) == 0
    assert value(samples, "pulsar_jobs", state="running", **manager) == 1
    assert value(samples, "pulsar_jobs", state="queued", **manager) == 0
    assert value(samples, "pulsar_jobs_recovered_total", **manager) == 0
    # queue wait: every job that ran (3 complete, the cancelled one, `slow`); run time: those that stopped running
    assert value(samples, "pulsar_job_queue_wait_seconds_count", **manager) == 5
    assert value(samples, "pulsar_job_run_seconds_count", **manager) == 4
    http_in = {"direction": "in", "via": "http", **manager}
    http_out = {"direction": "out", "via": "http", **manager}
    assert value(samples, "pulsar_staged_bytes_total", **http_in) == 3 * len(INPUT)
    assert value(samples, "pulsar_transfer_seconds_count", **http_in) == 3
    assert value(samples, "pulsar_staged_bytes_total", **http_out) == downloaded
    assert value(samples, "pulsar_transfer_seconds_count", **http_out) == 6
    remote_in = {"direction": "in", "via": "remote", **manager}
    assert value(samples, "pulsar_staged_bytes_total", **remote_in) == len(STAGED)
    assert value(samples, "pulsar_transfer_seconds_count", **remote_in) == 1
    # HTTP, by route pattern (never the job id), method and status
    route = {"route": "/jobs/{job_id}/files", "method": "GET"}
    assert value(samples, "pulsar_http_requests_total", status="200", **route) == 3
    assert value(samples, "pulsar_http_requests_total", status="206", **route) == 3
    assert value(samples, "pulsar_http_request_duration_seconds_count", **route) == 6
    assert value(samples, "pulsar_http_requests_total", route="/jobs", method="POST", status="200") == 6
    assert value(samples, "pulsar_http_requests_total", route="/jobs/{job_id}/files", method="POST", status="200") == 3
    assert not any("ok0" in str(labels) for _, labels in samples)
    # a request of no route is one bounded series; the scrape itself is counted from the next one on
    assert request(url, "GET", "/no/such/route")[0] == 404
    samples = scrape(url)
    assert value(samples, "pulsar_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert value(samples, "pulsar_http_requests_total", route="/metrics", method="GET", status="200") == 1
    # like /healthz, the route answers under a manager's prefix too, with the same (whole-server) figures
    assert value(scrape(url, path="/managers/_default_/metrics"), "pulsar_job_submissions_total", **manager) == 6


def test_the_token_is_required_unless_metrics_public(server: Server) -> None:
    assert request(server.url, "GET", "/metrics", token=None)[0] == 401
    assert request(server.url, "GET", "/metrics", token="wrong")[0] == 401
    status, _, _ = request(server.url, "GET", "/metrics", token=None, headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200


def test_metrics_public_opens_metrics_and_nothing_else_to_loopback_clients(
        make_app: Callable[..., PulsarApp]) -> None:  # noqa: F811
    wsgi = build_wsgi_app(make_app(private_token=TOKEN, metrics_public="true"))
    with running_server(wsgi) as server:
        assert "pulsar_job_submissions_total" in str(scrape(server.url, token=None))
        status, body, _ = request(server.url, "GET", "/jobs/x/status", token=None)
        assert status == 401 and json.loads(body)["error"] == "unauthorized"
    # a client elsewhere (a server bound by gunicorn's --bind, which no launcher saw) needs the token
    assert call(wsgi, "GET", "/metrics", REMOTE_ADDR="192.0.2.7").status == 401
    assert call(wsgi, "GET", "/metrics", query=f"private_token={TOKEN}", REMOTE_ADDR="192.0.2.7").status == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7"])
def test_metrics_public_refuses_a_public_bind_even_with_a_token(host: str) -> None:
    with pytest.raises(InsecureBind, match="metrics_public"):
        check_bind(host, TOKEN, True, "the launcher's way out", metrics_public=True)
    check_bind("127.0.0.1", TOKEN, False, "-", metrics_public=True)
    check_bind(host, TOKEN, False, "-", metrics_public=False)


def test_jobs_recovered_at_start_are_counted(make_app: Callable[..., PulsarApp]) -> None:  # noqa: F811
    app = make_app()
    service = app.service("_default_")
    service.setup("r1")
    service.submit("r1", {"command_line": "sleep 60"})
    polling.wait_for(lambda: service.job_state("r1") is JobState.RUNNING, timeout=30, what="r1 to run")
    app.shutdown()
    again = make_app()
    samples = parse(again.metrics.exposition().decode())
    assert value(samples, "pulsar_jobs_recovered_total", manager="_default_") == 1
    assert value(samples, "pulsar_jobs", manager="_default_", state="running") == 1
    assert value(samples, "pulsar_job_submissions_total", manager="_default_") == 0  # submitted before the restart
    again.service("_default_").cancel("r1")
    samples = parse(again.metrics.exposition().decode())
    assert value(samples, "pulsar_job_outcomes_total", manager="_default_", outcome="cancelled") == 1
    assert value(samples, "pulsar_job_run_seconds_count", manager="_default_") == 0  # not timed: started before


def test_two_apps_in_one_process_count_apart(make_app: Callable[..., PulsarApp], tmp_path: Path) -> None:  # noqa: F811
    first = make_app()
    second = make_app(staging_directory=str(tmp_path / "other"), persistence_directory=str(tmp_path / "other-p"))
    first.service("_default_").setup("only-first")
    first.service("_default_").cancel("only-first")
    assert value(parse(first.metrics.exposition().decode()), "pulsar_job_outcomes_total",
                 manager="_default_", outcome="cancelled") == 1
    assert value(parse(second.metrics.exposition().decode()), "pulsar_job_outcomes_total",
                 manager="_default_", outcome="cancelled") == 0


def test_without_prometheus_client_the_app_runs_and_metrics_is_501(
        make_app: Callable[..., PulsarApp], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Galaxy installs this package with --no-deps into its own venv (README, "Inside
    Galaxy"): without prometheus_client the app still builds and runs jobs (test/galaxy runs
    Galaxy's embedded runner in such a venv); /metrics says why it has nothing."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "prometheus_client" else real_find_spec(name, *a))
    app = make_app(private_token=TOKEN)
    wsgi = build_wsgi_app(app)
    result = call(wsgi, "GET", "/metrics", query=f"private_token={TOKEN}")
    assert result.status == 501 and json.loads(result.body)["error"] == "metrics_unavailable"
    assert call(wsgi, "POST", "/jobs", query=f"private_token={TOKEN}&job_id=n1").status == 200
