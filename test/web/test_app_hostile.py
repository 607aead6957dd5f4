"""The WSGI app against hostile clients, in process: bad input is a 4xx with a JSON reason and
no traceback; log lines carry no raw control bytes and never the token; a token-less app
answers loopback clients only; `server_runner` refuses a public bind without a token."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any

import pytest

from pulsar.config import InsecureBind
from pulsar.util.jsondepth import nesting_depth
from pulsar.web.app import PulsarWsgiApp
from pulsar.web.args import Args
from pulsar.web.server import server_runner
from test.support.server import free_port
from test.web.conftest import TOKEN
from test.web.fakes import FakeApp
from test.web.support import call


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged for a client mistake"
    assert all(r.levelno < logging.ERROR for r in caplog.records)


def test_upload_without_type_is_400_like_any_missing_argument(wsgi: PulsarWsgiApp,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    result = call(wsgi, "POST", "/jobs/1/files", "name=a.txt", b"data")
    assert result.status == 400
    assert result.json() == {"error": "invalid_argument", "detail": "missing required argument 'type'"}
    fake: Any = wsgi.app
    assert not [c for c in fake.services["_default_"].calls if c[0] == "upload"]
    no_traceback(caplog)


@pytest.mark.parametrize("path,method", [("/jobs/1/files", "POST"), ("/jobs/1/files/path", "GET")])
@pytest.mark.parametrize("query", ["name=a.txt", "name=a.txt&type="])
def test_type_is_required_for_uploads_and_paths(wsgi: PulsarWsgiApp, path: str, method: str, query: str) -> None:
    result = call(wsgi, method, path, query, b"data" if method == "POST" else b"")
    assert result.status == 400 and "'type'" in result.json()["detail"]


def test_name_too_long_for_the_file_system_is_400_wherever_it_is_noticed(
        wsgi: PulsarWsgiApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    fake: Any = wsgi.app

    def too_long(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENAMETOOLONG, "File name too long", "n" * 300)

    for method, path, query, attribute in (("POST", "/jobs/1/files", "name=x&type=input", "upload"),
                                           ("GET", "/jobs/1/files/path", "name=x&type=input", "file_path"),
                                           ("GET", "/jobs/1/status", "", "status"),
                                           ("POST", "/jobs", "job_id=1", "setup")):
        monkeypatch.setattr(fake.services["_default_"], attribute, too_long)
        result = call(wsgi, method, path, query, b"x" if method == "POST" else b"")
        assert result.status == 400, (path, result.body)
        assert result.json()["error"] == "name_too_long"
    no_traceback(caplog)


def test_other_os_errors_stay_server_faults(wsgi: PulsarWsgiApp, monkeypatch: pytest.MonkeyPatch) -> None:
    fake: Any = wsgi.app

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fake.services["_default_"], "status", broken)
    assert call(wsgi, "GET", "/jobs/1/status").status == 500


@pytest.mark.parametrize("key", ["env", "params", "remote_staging", "submit_extras", "command_line"])
def test_deep_json_is_400_before_decoding(wsgi: PulsarWsgiApp, key: str, caplog: pytest.LogCaptureFixture) -> None:
    deep = "[" * 100_000 if key != "params" else '{"a":' * 100_000
    query = f"command_line=true&{key}={deep}" if key != "command_line" else f"command_line={deep}"
    result = call(wsgi, "POST", "/jobs/1/submit", query)
    assert result.status == 400
    assert "nests deeper" in result.json()["detail"]
    no_traceback(caplog)


def test_nesting_depth_ignores_brackets_in_strings() -> None:
    assert nesting_depth('{"a": [1, {"b": "[[[[\\"[["}]}') == 3
    assert nesting_depth("plain text") == 0
    assert nesting_depth('["\\\\", [1]]') == 2
    Args({"x": "[" * 100}).check_nesting()
    with pytest.raises(Exception, match="nests deeper"):
        Args({"x": "[" * 101}).check_nesting()


def test_log_lines_escape_control_bytes_and_mask_the_token(secured: PulsarWsgiApp,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    call(secured, "GET", "/jobs/a\nFORGED 200 OK/status", f"private_token={TOKEN}")
    call(secured, "GET", f"/nowhere/{TOKEN}\r\x1b[2J", f"private_token={TOKEN}")
    call(secured, "POST", "/jobs/1/files", f"name=x\ny&type=nonsense&private_token={TOKEN}", b"x")
    lines = [record.getMessage() for record in caplog.records]
    assert lines
    for line in lines:
        assert "\n" not in line and "\r" not in line and "\x1b" not in line, line
        assert TOKEN not in line, line


@pytest.mark.parametrize("address", ["192.0.2.7", "10.0.0.1", "2001:db8::1", "", "not-an-address"])
def test_token_less_app_answers_only_loopback_clients(tmp_path: Path, address: str) -> None:
    app = PulsarWsgiApp(FakeApp(tmp_path), loopback_only=True)
    result = call(app, "GET", "/jobs/1/status", REMOTE_ADDR=address)
    assert result.status == 403 and result.json()["error"] == "forbidden"
    assert call(app, "GET", "/healthz", REMOTE_ADDR=address).status == 200  # no token there anyway


@pytest.mark.parametrize("address", ["127.0.0.1", "127.5.5.5", "::1"])
def test_token_less_app_answers_loopback_clients(tmp_path: Path, address: str) -> None:
    app = PulsarWsgiApp(FakeApp(tmp_path), loopback_only=True)
    assert call(app, "GET", "/jobs/1/status", REMOTE_ADDR=address).status == 200


def test_a_token_or_allow_insecure_bind_lifts_the_loopback_rule(tmp_path: Path) -> None:
    with_token = PulsarWsgiApp(FakeApp(tmp_path, private_token=TOKEN), loopback_only=True)
    assert call(with_token, "GET", "/jobs/1/status", f"private_token={TOKEN}", REMOTE_ADDR="192.0.2.7").status == 200
    allowed = PulsarWsgiApp(FakeApp(tmp_path), loopback_only=False)
    assert call(allowed, "GET", "/jobs/1/status", REMOTE_ADDR="192.0.2.7").status == 200


def test_server_runner_refuses_a_public_bind_without_token(tmp_path: Path) -> None:
    app = PulsarWsgiApp(FakeApp(tmp_path), loopback_only=True)
    with pytest.raises(InsecureBind, match="allow_insecure_bind"):
        server_runner(app, {}, host="0.0.0.0", port=str(free_port()))


def test_server_runner_public_bind_allowed_by_its_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`allow_insecure_bind = true` in [server:main] lifts the refusal (the server then runs;
    here `make_server` is replaced so nothing listens)."""
    started: list[str] = []

    class Stub:
        url = "http://0.0.0.0:1/"
        threads = 1

        def serve_forever(self) -> None:
            started.append("served")

        def request_stop(self) -> None:
            pass

    monkeypatch.setattr("pulsar.web.server.make_server", lambda *a, **k: Stub())
    app = PulsarWsgiApp(FakeApp(tmp_path), loopback_only=True)
    server_runner(app, {}, host="0.0.0.0", port="1", allow_insecure_bind="true")
    assert started == ["served"]


def _non_loopback_address() -> str | None:
    """An address of this host that is not loopback (the client side of the attack)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing interface
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_token_less_server_on_all_interfaces_turns_away_network_clients(tmp_path: Path) -> None:
    """Over real sockets: a token-less app behind a server bound to 0.0.0.0 by something
    Pulsar does not control answers 403 to a client coming from the network address, and
    serves the same request from loopback."""
    import http.client
    import threading

    from pulsar.web.server import make_server

    address = _non_loopback_address()
    if address is None:
        pytest.fail("this host has no non-loopback IPv4 address to attack from")
    app = PulsarWsgiApp(FakeApp(tmp_path), loopback_only=True)
    server = make_server(app, "0.0.0.0", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        answers = {}
        for host in (address, "127.0.0.1"):
            connection = http.client.HTTPConnection(host, port, timeout=10)
            connection.request("GET", "/jobs/1/status")
            response = connection.getresponse()
            answers[host] = (response.status, response.read())
            connection.close()
    finally:
        server.shutdown()
        thread.join(timeout=30)
    assert answers[address][0] == 403 and b"loopback" in answers[address][1]
    assert answers["127.0.0.1"][0] == 200
