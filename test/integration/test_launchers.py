"""Every way of starting and stopping the server, as real processes: `pulsar` in the
foreground and as a daemon, `run.sh`, `paster serve`, `pulsar-main`, a `pulsar-config`
directory, and HTTPS from `ssl_pem`; the same app under `paster serve` with our runner and
with Paste's httpserver, and under `gunicorn --paste`, each sent a chunked upload."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from test.support.server import (
    REPO_ROOT,
    PulsarServer,
    free_port,
    http_get,
    start_server,
    subprocess_env,
    wait_until_healthy,
    write_app_config,
)

pytestmark = [pytest.mark.integration]

BIN = Path(sys.executable).parent
TOKEN = "launcher-test-token"


def run(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd,
                          env=subprocess_env(env), timeout=timeout, stdin=subprocess.DEVNULL)


def script(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in {BIN} (pip install -e .)")
    return path


def job_status(url: str, token: str | None) -> tuple[int, dict[str, object]]:
    """An authenticated route: the status of a job that does not exist (`lost`)."""
    status, body = http_get(url + "jobs/launcher-probe/status", token=token)
    return status, json.loads(body) if status == 200 else {}


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def assert_stopped(port: int, pid_file: Path) -> None:
    assert not pid_file.exists()
    assert not is_listening(port)


def test_foreground_console_script_stops_cleanly_on_sigterm(config_dir: Path) -> None:
    write_app_config(config_dir, {"private_token": TOKEN})
    port = free_port()
    log_path = config_dir / "out.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([script("pulsar"), "-c", config_dir, "--port", str(port)], stdout=log,
                                   stderr=subprocess.STDOUT, env=subprocess_env())
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/", TOKEN, process=process, log_path=log_path)
        status, document = job_status(f"http://127.0.0.1:{port}/", TOKEN)
        assert status == 200 and document["status"] == "lost"
        assert job_status(f"http://127.0.0.1:{port}/", "wrong")[0] in (401, 403)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert not is_listening(port)
    assert "Traceback" not in log_path.read_text()


def test_sigint_also_stops_cleanly(config_dir: Path) -> None:
    server = start_server(config_dir)
    assert server.process is not None
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(60) == 0


def test_generated_token_is_stored_reused_and_required(config_dir: Path) -> None:
    port = free_port()
    server = PulsarServer(config_dir, port, token=None)
    server.start()
    try:
        token = (config_dir / ".pulsar_token").read_text().strip()
        # issue 11: the log names the token file, never the token
        assert token not in server.log_text() and str(config_dir / ".pulsar_token") in server.log_text()
        assert job_status(server.url, None)[0] in (401, 403)
        assert job_status(server.url, token)[1]["status"] == "lost"
    finally:
        assert server.stop() == 0
    server = PulsarServer(config_dir, port, token=token)
    server.start()
    try:
        assert job_status(server.url, token)[1]["status"] == "lost"
    finally:
        server.stop()


def test_daemon_and_stop_daemon(config_dir: Path) -> None:
    write_app_config(config_dir, {"private_token": TOKEN})
    port = free_port()
    pulsar = script("pulsar")
    started = run(pulsar, "-c", config_dir, "--port", port, "--daemon")
    assert started.returncode == 0, started.stderr
    pid_file = config_dir / "pulsar.pid"
    try:
        # the launcher returns only once the daemon serves
        assert job_status(f"http://127.0.0.1:{port}/", TOKEN)[1]["status"] == "lost"
        pid = int(pid_file.read_text())
        again = run(pulsar, "-c", config_dir, "--port", port, "--daemon")
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        stopped = run(pulsar, "-c", config_dir, "--stop-daemon")
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped pid {pid}" in stopped.stdout
    assert_stopped(port, pid_file)
    assert "pulsar stopped" in (config_dir / "pulsar.log").read_text()
    not_running = run(pulsar, "-c", config_dir, "--stop-daemon")
    assert not_running.returncode == 0 and "not running" in not_running.stdout


def test_daemon_with_custom_pid_and_log_files(config_dir: Path, tmp_path: Path) -> None:
    pid_file, log_file = tmp_path / "run" / "p.pid", tmp_path / "logs" / "p.log"
    port = free_port()
    files = ["--pid-file", pid_file, "--log-file", log_file]
    started = run(script("pulsar"), "-c", config_dir, "--port", port, "--daemon", *files)
    assert started.returncode == 0, started.stderr
    assert pid_file.exists() and log_file.exists()
    stopped = run(script("pulsar"), "-c", config_dir, "--stop-daemon", "--pid-file", pid_file)
    assert stopped.returncode == 0, stopped.stderr
    assert_stopped(port, pid_file)


def test_daemon_reports_startup_failure(config_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(script("pulsar"), "-c", config_dir, "--port", port, "--daemon")
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr
    assert not (config_dir / "pulsar.pid").exists()


def test_bad_config_exits_with_one_clear_line(config_dir: Path) -> None:
    (config_dir / "app.yml").write_text("managers:\n  gpu:\n    type: quantum\n")
    result = run(script("pulsar"), "-c", config_dir, "--port", free_port())
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "managers" in lines[0] and str(config_dir / "app.yml") in lines[0]


def test_public_bind_without_token_is_refused(config_dir: Path) -> None:
    (config_dir / "app.yml").write_text("private_token: ''\n")
    result = run(script("pulsar"), "-c", config_dir, "--host", "0.0.0.0", "--port", free_port())
    assert result.returncode == 2
    assert "--allow-insecure" in result.stderr


def test_run_sh_sources_local_env_and_daemonizes(config_dir: Path) -> None:
    shutil.copy(REPO_ROOT / "run.sh", config_dir / "run.sh")
    write_app_config(config_dir, {"private_token": "from-app-yml"})
    (config_dir / "local_env.sh").write_text(
        "# sourced by run.sh\nexport PULSAR_CONFIG_OVERRIDE_PRIVATE_TOKEN=from-local-env\n"
    )
    port = free_port()
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}
    started = run("bash", config_dir / "run.sh", "--daemon", "--port", port, env=env, cwd=REPO_ROOT)
    assert started.returncode == 0, started.stderr
    try:
        url = f"http://127.0.0.1:{port}/"
        assert job_status(url, "from-local-env")[1]["status"] == "lost"
        assert job_status(url, "from-app-yml")[0] in (401, 403)
        assert (config_dir / "pulsar.pid").exists()
    finally:
        stopped = run("bash", config_dir / "run.sh", "--stop-daemon", env=env, cwd=REPO_ROOT)
    assert stopped.returncode == 0, stopped.stderr
    assert_stopped(port, config_dir / "pulsar.pid")


def test_run_sh_honours_pulsar_local_env(config_dir: Path, tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "run.sh", config_dir / "run.sh")
    other_env = tmp_path / "elsewhere.sh"
    other_env.write_text("export PULSAR_CONFIG_OVERRIDE_PRIVATE_TOKEN=from-elsewhere\n")
    port = free_port()
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "PULSAR_LOCAL_ENV": str(other_env)}
    assert run("bash", config_dir / "run.sh", "--daemon", "--port", port, env=env).returncode == 0
    try:
        assert job_status(f"http://127.0.0.1:{port}/", "from-elsewhere")[1]["status"] == "lost"
    finally:
        assert run("bash", config_dir / "run.sh", "--stop-daemon", env=env).returncode == 0


def test_pulsar_config_directory_serves(tmp_path: Path) -> None:
    directory = tmp_path / "generated"
    port = free_port()
    made = run(script("pulsar-config"), "--directory", directory, "--port", port)
    assert made.returncode == 0, made.stderr
    token = yaml.safe_load((directory / "app.yml").read_text())["private_token"]
    server = PulsarServer(directory, port, token)  # server.ini gives the port; --port repeats it
    server.start()
    try:
        assert job_status(server.url, token)[1]["status"] == "lost"
        assert not (directory / ".pulsar_token").exists()  # the configured token is used
    finally:
        assert server.stop() == 0
    # logging came from server.ini's sections: the generic formatter names the thread
    assert "[MainThread]" in server.log_text()


def test_paster_serve_daemon_and_stop_daemon(tmp_path: Path) -> None:
    paster = script("paster")
    directory = tmp_path / "paste"
    port = free_port()
    assert run(script("pulsar-config"), "--directory", directory, "--port", port).returncode == 0
    token = yaml.safe_load((directory / "app.yml").read_text())["private_token"]
    pid_file, log_file = directory / "paster.pid", directory / "paster.log"
    files = [f"--pid-file={pid_file}", f"--log-file={log_file}"]
    started = run(paster, "serve", "server.ini", "--daemon", *files, cwd=directory)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/", token, log_path=log_file)
        assert job_status(f"http://127.0.0.1:{port}/", token)[1]["status"] == "lost"
        assert job_status(f"http://127.0.0.1:{port}/", "wrong")[0] in (401, 403)
    finally:
        stopped = run(paster, "serve", "server.ini", "--stop-daemon", *files, cwd=directory)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    _wait_closed(port)
    assert not pid_file.exists()


def _wait_closed(port: int, timeout: float = 60.0) -> None:
    """paster --stop-daemon returns before the process has released the port."""
    deadline = time.monotonic() + timeout
    while is_listening(port):
        assert time.monotonic() < deadline, f"port {port} still open {timeout}s after stop"
        time.sleep(0.1)


def test_pulsar_main_runs_without_web_server_until_sigterm(config_dir: Path) -> None:
    write_app_config(config_dir, {"staging_directory": str(config_dir / "staging")})
    log_path = config_dir / "main.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([script("pulsar-main"), "-c", config_dir], stdout=log, stderr=subprocess.STDOUT,
                                   env=subprocess_env())
    try:
        _wait_for_text(log_path, "without a web server", process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()


def _wait_for_text(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert process.poll() is None, path.read_text()
        assert time.monotonic() < deadline, path.read_text()
        time.sleep(0.1)


@pytest.fixture
def self_signed_pem(tmp_path: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert, pem = tmp_path / "key.pem", tmp_path / "cert.pem", tmp_path / "server.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return pem


def test_https_with_ssl_pem(config_dir: Path, self_signed_pem: Path) -> None:
    port = free_port()
    (config_dir / "server.ini").write_text(
        f"[server:main]\nhost = 127.0.0.1\nport = {port}\nssl_pem = {self_signed_pem}\n\n[app:main]\n"
    )
    write_app_config(config_dir, {"private_token": TOKEN})
    server = PulsarServer(config_dir, port, TOKEN, https=True, ca_file=self_signed_pem)
    server.start()
    try:
        status, body = server.get("jobs/tls-probe/status")
        assert status == 200 and json.loads(body)["status"] == "lost"
        with pytest.raises((OSError, http.client.HTTPException)):  # plain HTTP on the TLS port does not work
            http_get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    finally:
        assert server.stop() == 0


def test_pulsar_main_daemon_and_stop_daemon(config_dir: Path) -> None:
    main = script("pulsar-main")
    started = run(main, "-c", config_dir, "--daemon")
    assert started.returncode == 0, started.stderr
    pid_file = config_dir / "pulsar.pid"
    assert pid_file.exists()
    stopped = run(main, "-c", config_dir, "--stop-daemon")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped pid" in stopped.stdout
    assert not pid_file.exists()


# --- the same app under `paster serve` (our runner and Paste's own server) and gunicorn,
# --- each taking a chunked upload (issue 11 item 2)

def paste_directory(tmp_path: Path) -> tuple[Path, int, str]:
    """A pulsar-config directory with its staging directory inside it: (dir, port, token)."""
    directory = tmp_path / "launched"
    port = free_port()
    made = run(script("pulsar-config"), "--directory", directory, "--port", port)
    assert made.returncode == 0, made.stderr
    app_yml = directory / "app.yml"
    options = yaml.safe_load(app_yml.read_text())
    options["staging_directory"] = str(directory / "staging")
    options["persistence_directory"] = str(directory / "persisted")
    app_yml.write_text(yaml.safe_dump(options))
    return directory, port, options["private_token"]


def launched(argv: list[str | Path], directory: Path, port: int, token: str) -> subprocess.Popen[bytes]:
    log_path = directory / "launched.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT, cwd=directory,
                                   env=subprocess_env(), stdin=subprocess.DEVNULL)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/", token, process=process, log_path=log_path)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def setup_job(port: int, token: str, job_id: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", f"/jobs?job_id={job_id}&tool_id=cat&tool_version=1&private_token={token}", body=b"")
        response = connection.getresponse()
        assert response.status == 200, response.read()
        response.read()
    finally:
        connection.close()


def chunked_upload(port: int, token: str, job_id: str, name: str, pieces: list[bytes]) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", f"/jobs/{job_id}/files?name={name}&type=input&private_token={token}",
                           body=iter(pieces), headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def cut_chunked_upload(port: int, token: str, job_id: str, name: str) -> bytes:
    """A chunked upload whose connection ends before the last chunk; the server's answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"POST /jobs/{job_id}/files?name={name}&type=input&private_token={token} HTTP/1.1\r\n"
                     "Host: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + b"400\r\n" + b"c" * 1024 + b"\r\n"
                     + b"400\r\n" + b"c" * 100)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def files_named(root: Path, name: str) -> list[Path]:
    """Every file under `root` whose name contains `name` (the upload itself or a temp file)."""
    return [path for path in root.rglob("*") if name in path.name]


PIECES = [b"first piece\n", bytes(range(256)) * 400, b"", b"last piece\n"]


def assert_chunked_uploads(directory: Path, port: int, token: str) -> None:
    setup_job(port, token, "chunky")
    status, document = chunked_upload(port, token, "chunky", "whole.bin", PIECES)
    assert status == 200, document
    assert document["size"] == sum(len(piece) for piece in PIECES)
    [stored] = files_named(directory / "staging" / "chunky", "whole.bin")
    assert stored.read_bytes() == b"".join(PIECES)
    cut_chunked_upload(port, token, "chunky", "cut.bin")
    assert files_named(directory / "staging", "cut.bin") == []  # neither the file nor a temp file


def test_paster_serve_with_our_server_runner_takes_a_chunked_upload(tmp_path: Path) -> None:
    directory, port, token = paste_directory(tmp_path)
    process = launched([script("paster"), "serve", "server.ini"], directory, port, token)
    try:
        assert_chunked_uploads(directory, port, token)
        answer = cut_chunked_upload(port, token, "chunky", "cut2.bin")
        assert answer.startswith(b"HTTP/1.1 400 ") and b"incomplete_body" in answer
    finally:
        stop(process)


def test_paste_httpserver_refuses_a_chunked_upload_with_a_clear_411(tmp_path: Path) -> None:
    # Paste's own httpserver passes a chunked body on undecoded with a length of 0: the app
    # answers 411 rather than store an empty file; a Content-Length upload works.
    directory, port, token = paste_directory(tmp_path)
    (directory / "paste-http.ini").write_text(
        f"[server:main]\nuse = egg:Paste#http\nhost = 127.0.0.1\nport = {port}\n\n"
        "[app:main]\npaste.app_factory = pulsar.web.wsgi:app_factory\napp_config = %(here)s/app.yml\n"
    )
    process = launched([script("paster"), "serve", "paste-http.ini"], directory, port, token)
    try:
        setup_job(port, token, "chunky")
        status, document = chunked_upload(port, token, "chunky", "whole.bin", PIECES)
        assert status == 411 and document["error"] == "length_required"
        assert files_named(directory / "staging", "whole.bin") == []
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("POST", f"/jobs/chunky/files?name=sized.bin&type=input&private_token={token}",
                           body=b"".join(PIECES))
        response = connection.getresponse()
        assert response.status == 200, response.read()
        connection.close()
    finally:
        stop(process)


def test_gunicorn_serves_the_same_app_and_takes_a_chunked_upload(tmp_path: Path) -> None:
    directory, port, token = paste_directory(tmp_path)
    gunicorn = script("gunicorn")
    process = launched([gunicorn, "--paste", "server.ini", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                        "--worker-class", "gthread", "--threads", "4"], directory, port, token)
    try:
        status, document = job_status(f"http://127.0.0.1:{port}/", token)
        assert status == 200 and document["status"] == "lost"
        assert job_status(f"http://127.0.0.1:{port}/", "wrong")[0] in (401, 403)
        assert_chunked_uploads(directory, port, token)
    finally:
        stop(process)
