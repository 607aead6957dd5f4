"""Secure start on every launcher, and the token never in a log line (issue 11 items 5, 6).

The attack: an admin starts Pulsar on a public address without a token (a copied sample,
a forgotten app.yml) with whichever launcher they know -- `pulsar`, `paster serve` with our
server runner, or `paster serve` with Paste's own `egg:Paste#http`, which knows nothing of
tokens.  Each must refuse before the port opens, unless `allow_insecure_bind` says the
network is trusted; under gunicorn, whose `--bind` Pulsar cannot see, a token-less app
answers loopback clients only.  `pulsar-main` opens no port at all.  And whoever can read
the log must not find the token there."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test.support.http import raw_request
from test.support.server import (
    free_port,
    http_get,
    subprocess_env,
    wait_until_healthy,
    write_app_config,
)

pytestmark = [pytest.mark.integration]

BIN = Path(sys.executable).parent
SERVERS = {
    "server_runner": "paste.server_runner = pulsar.web.server:server_runner",
    "paste_http": "use = egg:Paste#http",
}


def write_ini(directory: Path, server: str, host: str, port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    ini = directory / "server.ini"
    ini.write_text(
        f"[server:main]\n{SERVERS[server]}\nhost = {host}\nport = {port}\n\n"
        "[app:main]\npaste.app_factory = pulsar.web.wsgi:app_factory\napp_config = %(here)s/app.yml\n\n"
        "[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
        "[logger_root]\nlevel = INFO\nhandlers = console\n"
        "[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nformatter = generic\n"
        "[formatter_generic]\nformat = %%(asctime)s %%(levelname)s %%(name)s %%(message)s\n"
    )
    return ini


def app_options(directory: Path, **extra: object) -> dict[str, object]:
    return {"staging_directory": str(directory / "staging"), "persistence_directory": str(directory / "persisted"),
            **extra}


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def paster(directory: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "paster"), "serve", "server.ini"], cwd=directory, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=subprocess_env(),
                            stdin=subprocess.DEVNULL)


def refused(process: subprocess.Popen[str], port: int) -> str:
    """The process must exit non-zero without ever listening; returns its output."""
    deadline = time.monotonic() + 60
    while process.poll() is None:
        assert not listening(port), "the port opened: a token-less public server was started"
        assert time.monotonic() < deadline, "still running after 60 s"
        time.sleep(0.05)
    output = process.stdout.read() if process.stdout else ""
    assert process.returncode != 0, output
    assert not listening(port)
    return output


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


@pytest.mark.parametrize("server", list(SERVERS))
def test_paster_serve_refuses_a_public_bind_without_token(tmp_path: Path, server: str) -> None:
    if not (BIN / "paster").exists():
        pytest.fail("paster is not installed in the venv (make setup-venv installs PasteScript)")
    port = free_port()
    write_ini(tmp_path, server, "0.0.0.0", port)
    write_app_config(tmp_path, app_options(tmp_path))  # no private_token at all
    output = refused(paster(tmp_path), port)
    assert "refusing to serve on 0.0.0.0 without a private_token" in output
    assert "allow_insecure_bind" in output
    assert not (tmp_path / "staging").exists(), "job services were built before the refusal"


@pytest.mark.parametrize("server", list(SERVERS))
def test_paster_serve_public_bind_allowed_explicitly_or_with_token(tmp_path: Path, server: str) -> None:
    for options, token in ((app_options(tmp_path, allow_insecure_bind=True), None),
                           (app_options(tmp_path, private_token="paste-secret-token"), "paste-secret-token")):
        port = free_port()
        write_ini(tmp_path, server, "0.0.0.0", port)
        write_app_config(tmp_path, options)
        process = paster(tmp_path)
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}/", token, process=process)  # type: ignore[arg-type]
            status, _ = http_get(f"http://127.0.0.1:{port}/jobs/probe/status", token=token)
            assert status == 200
        finally:
            output = stop(process)
        if token:
            assert token not in output


@pytest.mark.parametrize("server", list(SERVERS))
def test_paster_serve_loopback_without_token_is_served(tmp_path: Path, server: str) -> None:
    port = free_port()
    write_ini(tmp_path, server, "127.0.0.1", port)
    write_app_config(tmp_path, app_options(tmp_path))
    process = paster(tmp_path)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/", None, process=process)  # type: ignore[arg-type]
        assert http_get(f"http://127.0.0.1:{port}/jobs/probe/status")[0] == 200
    finally:
        stop(process)


def test_pulsar_refuses_a_public_bind_without_token(tmp_path: Path) -> None:
    port = free_port()
    write_app_config(tmp_path, app_options(tmp_path, private_token=""))
    process = subprocess.Popen([sys.executable, "-m", "pulsar.main", "-c", str(tmp_path), "--host", "0.0.0.0",
                                "--port", str(port)], text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=subprocess_env(), stdin=subprocess.DEVNULL)
    output = refused(process, port)
    assert process.returncode == 2 and "refusing to serve on 0.0.0.0" in output


def pulsar_process(config_dir: Path, host: str, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pulsar.main", "-c", str(config_dir), "--host", host,
                             "--port", str(port)], text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=subprocess_env(), stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("launcher", ["pulsar", *SERVERS])
def test_metrics_public_refuses_a_public_bind_even_with_a_token(tmp_path: Path, launcher: str) -> None:
    """`metrics_public` opens /metrics without the token: on a loopback bind only, whatever
    else is set (a token, allow_insecure_bind), on every launcher that sees the bind."""
    port = free_port()
    write_app_config(tmp_path, app_options(tmp_path, private_token="a-token", allow_insecure_bind=True,
                                           metrics_public=True))
    if launcher == "pulsar":
        process = pulsar_process(tmp_path, "0.0.0.0", port)
    else:
        write_ini(tmp_path, launcher, "0.0.0.0", port)
        process = paster(tmp_path)
    output = refused(process, port)
    assert "refusing to serve on 0.0.0.0 with metrics_public" in output
    assert launcher != "pulsar" or process.returncode == 2  # the exit code of every refused bind
    assert not (tmp_path / "staging").exists(), "job services were built before the refusal"


def test_pulsar_with_metrics_public_on_loopback_opens_metrics_only(tmp_path: Path) -> None:
    port = free_port()
    write_app_config(tmp_path, app_options(tmp_path, private_token="a-token", metrics_public=True))
    process = pulsar_process(tmp_path, "127.0.0.1", port)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/", "a-token", process=process)  # type: ignore[arg-type]
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b"pulsar_job_submissions_total" in body
        assert http_get(f"http://127.0.0.1:{port}/jobs/probe/status")[0] == 401
    finally:
        stop(process)


def test_generated_token_is_never_logged(tmp_path: Path) -> None:
    """`pulsar` with no configured token generates one; the log names the file, and neither
    the start nor requests carrying it (valid, in a malformed request, in a forged path)
    write it anywhere in the log."""
    write_app_config(tmp_path, app_options(tmp_path))
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "pulsar.main", "-c", str(tmp_path), "--port", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(),
                                   stdin=subprocess.DEVNULL, cwd=tmp_path)
    try:
        token_file = tmp_path / ".pulsar_token"
        deadline = time.monotonic() + 60
        while not token_file.exists() or not token_file.read_text().strip():
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        token = token_file.read_text().strip()
        url = f"http://127.0.0.1:{port}/"
        wait_until_healthy(url, token, process=process, log_path=log_path)  # type: ignore[arg-type]
        assert http_get(url + "jobs/probe/status", token=token)[0] == 200
        assert http_get(url + "jobs/probe/status", token=token + "x")[0] == 401
        raw_request(url, "GET", f"/jobs/a%0Ab/status?private_token={token}")
        raw_request(url, "GET", f"/jobs/x/status?private_token={token}&x=%ZZ")
        raw_request(url, "POST", f"/jobs/x/files?name=a&type=input&private_token={token}",
                    headers={"Transfer-Encoding": "chunked"}, body=b"zz\r\n")
        raw_request(url, "GET", f"/nowhere/{token}?private_token={token}")
        for line in (f"GET /jobs/x/status?private_token={token} HTTP/1.x\r\n\r\n",
                     f"GET /jobs/x/status?private_token={token}\x00 HTTP/1.1\r\n\r\n",
                     f"BREW /jobs?private_token={token} HTTP/9.9\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # malformed request lines
                sock.sendall(line.encode("latin-1"))
                sock.recv(65536)
    finally:
        process.terminate()
        process.wait(60)
    text = log_path.read_text(errors="replace")
    assert token not in text
    assert str(token_file) in text


def test_pulsar_main_opens_no_port_and_logs_no_secret(tmp_path: Path) -> None:
    """`pulsar-main` (the message-queue deployment) has no web server, so nothing to bind:
    it must open no listening socket at all, and its log holds neither the token nor a
    secret of its environment -- only the names jobs will not inherit."""
    import psutil

    token = "main-token-kept-out-of-logs"
    write_app_config(tmp_path, app_options(tmp_path, private_token=token))
    log_path = tmp_path / "main.log"
    env = subprocess_env({"DB_PASSWORD": "pw-kept-out-of-logs", "ALIAS_OF_TOKEN": token})
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "pulsar.main", "-m", "webless", "-c", str(tmp_path)],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while "without a web server" not in log_path.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.05)
        me = psutil.Process(process.pid)
        sockets = me.net_connections(kind="inet") if hasattr(me, "net_connections") else me.connections(kind="inet")
        assert [s for s in sockets if s.status == psutil.CONN_LISTEN] == []
    finally:
        process.terminate()
        process.wait(60)
    text = log_path.read_text(errors="replace")
    assert token not in text and "pw-kept-out-of-logs" not in text
    withheld = [line for line in text.splitlines() if "do not inherit" in line]
    assert len(withheld) == 1 and "DB_PASSWORD" in withheld[0] and "ALIAS_OF_TOKEN" in withheld[0]


def _direct_get(host: str, port: int, path: str) -> tuple[int, bytes]:
    """A GET straight to host:port (never through an HTTP proxy from the environment)."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing interface
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_gunicorn_on_all_interfaces_without_token_answers_loopback_only(tmp_path: Path) -> None:
    """gunicorn takes its bind address from its own command line, which the app factory
    cannot see; a token-less Pulsar under it answers 403 to a client on the network and
    serves loopback clients."""
    gunicorn = BIN / "gunicorn"
    if not gunicorn.exists():
        pytest.fail("gunicorn is not installed in the venv (dev-requirements.txt)")
    address = _non_loopback_address()
    if address is None:
        pytest.fail("this host has no non-loopback IPv4 address to attack from")
    port = free_port()
    write_ini(tmp_path, "server_runner", "127.0.0.1", port)
    write_app_config(tmp_path, app_options(tmp_path))
    process = subprocess.Popen([str(gunicorn), "--paste", "server.ini", "--bind", f"0.0.0.0:{port}", "--workers", "1"],
                               cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=subprocess_env(), stdin=subprocess.DEVNULL)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/", None, process=process)  # type: ignore[arg-type]
        from_network = _direct_get(address, port, "/jobs/probe/status")
        from_loopback = _direct_get("127.0.0.1", port, "/jobs/probe/status")
    finally:
        output = stop(process)
    assert from_network[0] == 403 and b"loopback" in from_network[1], (from_network, output[-2000:])
    assert from_loopback[0] == 200
