"""pulsar.main: argument handling, token generation and bind checks (no server started here;
test/integration/test_launchers.py runs the launchers for real)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pulsar.config import is_loopback
from pulsar.main import DEFAULT_HOST, DEFAULT_PORT, _server_parser, ensure_token, main, resolve_settings
from test.support.server import REPO_ROOT, subprocess_env


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PULSAR_CONFIG"):
            monkeypatch.delenv(name)


def settings_for(config_dir: Path, *argv: str):  # type: ignore[no-untyped-def]
    return resolve_settings(_server_parser().parse_args(["-c", str(config_dir), *argv]), config_dir)


def test_embedded_default(config_dir: Path) -> None:
    settings = settings_for(config_dir)
    assert (settings.host, settings.port, settings.ssl_pem, settings.ini_path) == (DEFAULT_HOST, DEFAULT_PORT, None, None)
    assert settings.app_config["staging_directory"] == str(config_dir / "files" / "staging")
    assert "managers" not in settings.app_config and "manager" not in settings.app_config


def test_token_generated_stored_private_and_reused(config_dir: Path) -> None:
    first = settings_for(config_dir)
    token_file = config_dir / ".pulsar_token"
    assert first.token_file == token_file
    token = first.app_config["private_token"]
    assert len(token) >= 32
    assert token_file.read_text().strip() == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert settings_for(config_dir).app_config["private_token"] == token


def test_ensure_token_tightens_permissions_of_existing_file(tmp_path: Path) -> None:
    token_file = tmp_path / "tok"
    token_file.write_text("abc\n")
    os.chmod(token_file, 0o644)
    assert ensure_token(token_file) == "abc"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_configured_token_is_used_and_no_token_file_written(config_dir: Path) -> None:
    (config_dir / "app.yml").write_text("private_token: mine\n")
    settings = settings_for(config_dir)
    assert settings.app_config["private_token"] == "mine"
    assert settings.token_file is None
    assert not (config_dir / ".pulsar_token").exists()


def test_server_ini_host_port_and_command_line_overrides(config_dir: Path) -> None:
    (config_dir / "server.ini").write_text("[server:main]\nhost = localhost\nport = 9999\nthreads = 3\n[app:main]\n")
    settings = settings_for(config_dir)
    assert (settings.host, settings.port, settings.threads) == ("localhost", 9999, 3)
    assert settings.ini_path == config_dir / "server.ini"
    settings = settings_for(config_dir, "--host", "127.0.0.2", "--port", "1234")
    assert (settings.host, settings.port) == ("127.0.0.2", 1234)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "192.0.2.7", "no-such-host.invalid"])
def test_non_loopback_hosts(host: str) -> None:
    assert not is_loopback(host)


def test_public_bind_with_token_is_allowed(config_dir: Path) -> None:
    assert settings_for(config_dir, "--host", "0.0.0.0").host == "0.0.0.0"  # generated token


def test_public_bind_without_token_is_refused(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (config_dir / "app.yml").write_text("private_token: ''\n")
    assert main(["-c", str(config_dir), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "0.0.0.0" in err and "private_token" in err and "--allow-insecure" in err
    assert "Traceback" not in err


def test_public_bind_without_token_allowed_explicitly(config_dir: Path) -> None:
    (config_dir / "app.yml").write_text("private_token: ''\n")
    assert settings_for(config_dir, "--host", "0.0.0.0", "--allow-insecure").app_config["private_token"] is None
    (config_dir / "app.yml").write_text("private_token: ''\nallow_insecure_bind: true\n")
    assert settings_for(config_dir, "--host", "0.0.0.0").host == "0.0.0.0"


def test_loopback_without_token_is_allowed(config_dir: Path) -> None:
    (config_dir / "app.yml").write_text("private_token: ''\n")
    assert settings_for(config_dir).app_config["private_token"] is None


def test_bad_config_one_message_naming_key_and_file(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app_yml = config_dir / "app.yml"
    app_yml.write_text("assign_ids: sometimes\n")
    assert main(["-c", str(config_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "assign_ids" in err and str(app_yml) in err


def test_bad_server_ini_one_message(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (config_dir / "server.ini").write_text("[server:main]\nport = eighty\n")
    assert main(["-c", str(config_dir)]) == 1
    err = capsys.readouterr().err
    assert "port" in err and "server.ini" in err and "Traceback" not in err


def test_stop_daemon_when_not_running(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(config_dir), "--stop-daemon"]) == 0
    assert "not running" in capsys.readouterr().out


def test_stop_daemon_removes_stale_pid_file(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid_file = config_dir / "custom.pid"
    pid_file.write_text(dead.stdout)
    assert main(["-c", str(config_dir), "--stop-daemon", "--pid-file", str(pid_file)]) == 0
    assert not pid_file.exists()
    assert "stale" in capsys.readouterr().out


def test_stop_daemon_ignores_pid_of_unrelated_process(config_dir: Path) -> None:
    # our own pid is alive but is pytest, not pulsar: never signal it
    (config_dir / "pulsar.pid").write_text(f"{os.getpid()}\n")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (config_dir / "pulsar.pid").write_text(f"{sleeper.pid}\n")
        assert main(["-c", str(config_dir), "--stop-daemon"]) == 0
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_help_and_version_run_as_module() -> None:
    result = subprocess.run([sys.executable, "-m", "pulsar.main", "--help"], capture_output=True, text=True,
                            env=subprocess_env(), cwd=REPO_ROOT)
    assert result.returncode == 0
    for option in ("--config", "--daemon", "--stop-daemon", "--pid-file", "--log-file", "--allow-insecure"):
        assert option in result.stdout


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--no-such-option"])
    assert info.value.code == 2


def test_mode_webless_runs_pulsar_main(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("pulsar.main.main_webless", lambda argv: calls.append(list(argv)) or 0)
    assert main(["-m", "webless", "-c", "/tmp/x", "--daemon"]) == 0
    assert main(["--mode=webless", "--stop-daemon"]) == 0
    assert calls == [["-c", "/tmp/x", "--daemon"], ["--stop-daemon"]]


def test_unknown_mode_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["-m", "paster"])
    assert info.value.code == 2
    assert "invalid choice 'paster'" in capsys.readouterr().err
