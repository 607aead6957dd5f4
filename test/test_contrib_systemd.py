"""contrib/pulsar.service: systemd accepts it, and it gives the server write access to exactly
the directories the configuration it starts with uses."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from pulsar.config import load_config
from pulsar.scripts import config as pulsar_config

UNIT = Path(__file__).resolve().parents[1] / "contrib" / "pulsar.service"
#: Where Debian keeps the units pulsar.service refers to (multi-user.target, network-online.target).
SYSTEM_UNITS = ("/usr/lib/systemd/system", "/lib/systemd/system")


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(UNIT, encoding="utf-8")
    return parser["Service"]


def exec_start() -> list[str]:
    return shlex.split(service()["ExecStart"])


def config_dir_of_unit() -> str:
    argv = exec_start()
    return argv[argv.index("-c") + 1]


def reroot(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def test_unit_runs_the_console_script_as_its_own_user_with_the_graceful_stop_signal() -> None:
    section = service()
    argv = exec_start()
    assert Path(argv[0]).name == "pulsar" and Path(argv[0]).is_absolute()
    assert section["User"] == "pulsar"
    assert section["KillSignal"] == "SIGTERM"  # pulsar.main: SIGTERM stops in order and exits 0
    assert section["Type"] in ("simple", "exec")  # the server sends no sd_notify READY
    assert section["Restart"] == "on-failure"
    assert section["NoNewPrivileges"] == "yes"
    assert section["ProtectSystem"] == "strict"
    assert "MemoryDenyWriteExecute" not in section  # would break Python extensions and conda


@pytest.mark.parametrize("written_by", ["pulsar-config", "embedded default"])
def test_read_write_paths_hold_the_staging_and_persistence_directories(tmp_path: Path, written_by: str) -> None:
    """ProtectSystem=strict makes everything else read-only, so the job and state directories
    of the configuration the unit starts with must lie under ReadWritePaths= (and nothing
    more is writable than needed)."""
    config_dir = reroot(tmp_path, config_dir_of_unit())
    config_dir.mkdir(parents=True)
    if written_by == "pulsar-config":
        assert pulsar_config.main(["--directory", str(config_dir)]) == 0
    ini = config_dir / "server.ini"
    options = load_config(ini_path=ini if ini.exists() else None, config_dir=config_dir)
    staging = Path(options.get("staging_directory") or config_dir / "files" / "staging")
    persistence = Path(options.get("persistence_directory") or config_dir / "files" / "persisted_data")
    writable = [reroot(tmp_path, path.lstrip("-")) for path in service()["ReadWritePaths"].split()]
    for directory in (staging, persistence):
        assert any(directory == w or w in directory.parents for w in writable), (directory, writable)
    # the configuration (and the token in it) stays read-only
    assert not any(config_dir == w or w in config_dir.parents for w in writable), writable
    assert service()["WorkingDirectory"] == config_dir_of_unit()


@pytest.mark.integration
def test_systemd_analyze_verify_reports_nothing(tmp_path: Path) -> None:
    """`systemd-analyze verify` in a throw-away root that holds the unit, the system units it
    names and an executable at ExecStart's path (verify checks it exists).  No PID 1 needed."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (apt-get install systemd; .ci/run installs it)"
    units = next((Path(p) for p in SYSTEM_UNITS if Path(p, "multi-user.target").exists()), None)
    assert units is not None, f"no systemd units in {SYSTEM_UNITS}"
    shutil.copytree(units, tmp_path / "usr/lib/systemd/system", symlinks=True)
    executable = reroot(tmp_path, exec_start()[0])
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    for path in service()["ReadWritePaths"].split():
        reroot(tmp_path, path.lstrip("-")).mkdir(parents=True, exist_ok=True)
    target = tmp_path / "etc/systemd/system/pulsar.service"
    target.parent.mkdir(parents=True)
    shutil.copy(UNIT, target)
    result = subprocess.run([analyze, "verify", "--man=no", "--generators=no", f"--root={tmp_path}",
                             "/etc/systemd/system/pulsar.service"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


@pytest.mark.integration
def test_the_verify_test_would_see_a_mistake(tmp_path: Path) -> None:
    """Guard for the test above: verify reports a bad value in its output (with exit 0)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (apt-get install systemd; .ci/run installs it)"
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nExecStart=/bin/true\nNoNewPrivileges=maybe\n")
    result = subprocess.run([analyze, "verify", "--man=no", "--generators=no", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert "NoNewPrivileges" in result.stdout + result.stderr or "boolean" in result.stdout + result.stderr
