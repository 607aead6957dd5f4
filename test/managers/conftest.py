"""Fixtures for manager tests: real schedulers (skipped with a reason when not running),
a private sshd on loopback (test.support.sshd), an unprivileged user, fake scheduler executables."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from test.managers.harness import RecordingEvents
from test.support.sshd import ssh_server, sshd  # noqa: F401  (fixtures, shared)
from test.support.system import apt_install, unavailable

HERE = Path(__file__).resolve().parent
FAKES_BIN = HERE.parent / "fakes" / "bin"
SGE_ENV = Path("/run/drm-ci/sge/sge.env")


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)  # type: ignore[call-overload]


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
def job_root() -> Iterator[Path]:
    """A job root every user can traverse (the scheduler may run jobs as another user)."""
    root = Path(tempfile.mkdtemp(prefix="pulsar-mgr-", dir="/tmp"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


# --- Slurm ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def slurm() -> None:
    if shutil.which("sbatch") is None:
        unavailable("Slurm is not installed: run `bash test/infra/start-slurm.sh` first")
    try:
        state = _run(["sinfo", "-h", "-n", "localhost", "-o", "%t"]).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"Slurm is not answering ({exc}): run `bash test/infra/start-slurm.sh`")
    if state.rstrip("*") not in ("idle", "mix", "alloc"):
        unavailable(f"Slurm node 'localhost' is {state!r}, not idle/mix/alloc: run `bash test/infra/start-slurm.sh`")


# --- Grid Engine / DRMAA ------------------------------------------------------------------


def _sge_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in SGE_ENV.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            env[key.strip()] = value.strip()
    return env


@pytest.fixture(scope="session")
def sge() -> None:
    """Grid Engine with DRMAA usable from *this* process.

    libdrmaa links jemalloc, which can only be loaded into a process started with
    `GLIBC_TUNABLES=glibc.rtld.optional_static_tls=16384` (or jemalloc preloaded), so the
    test run itself must be started with /run/drm-ci/sge/sge.env sourced."""
    if not SGE_ENV.exists() or shutil.which("qstat") is None:
        unavailable("Grid Engine is not running: run `bash test/infra/start-sge.sh`")
    env = _sge_env()
    if "GLIBC_TUNABLES" not in os.environ and "jemalloc" not in os.environ.get("LD_PRELOAD", ""):
        unavailable(f"DRMAA needs the test process started with `. {SGE_ENV}` (GLIBC_TUNABLES for libdrmaa)")
    for key in ("SGE_ROOT", "SGE_CELL", "DRMAA_LIBRARY_PATH"):
        os.environ.setdefault(key, env[key])
    if _run(["qstat", "-f"]).returncode != 0:
        unavailable("Grid Engine qmaster is not answering: run `bash test/infra/start-sge.sh`")
    pytest.importorskip("drmaa")


# --- an unprivileged user -----------------------------------------------------------------

DRM_USER = "pulsartest"


@pytest.fixture(scope="session")
def drm_user() -> tuple[str, int]:
    """A real unprivileged user (created if missing) and `sudo` for running as it."""
    if os.geteuid() != 0:
        unavailable("creating a test user needs root")
    if shutil.which("sudo") is None:
        result = apt_install("sudo")
        if shutil.which("sudo") is None:
            unavailable(f"sudo is not installed and could not be installed: {result}")
    if _run(["id", "-u", DRM_USER]).returncode != 0:
        created = _run(["useradd", "--create-home", "--shell", "/bin/bash", DRM_USER])
        if created.returncode != 0:
            unavailable(f"useradd failed: {created.stderr.strip()}")
    uid = int(_run(["id", "-u", DRM_USER]).stdout.strip())
    return DRM_USER, uid


@pytest.fixture(scope="session")
def helper_python(drm_user: tuple[str, int]) -> str:
    """An interpreter the test user may execute, with the `drmaa` bindings (the venv's
    interpreter may live under /root).  Runs the pulsar.scripts helpers as that user."""
    python = "/usr/bin/python3"
    probe = [python, "-c", "import drmaa"]
    env = dict(os.environ, DRMAA_LIBRARY_PATH=os.environ.get("DRMAA_LIBRARY_PATH", ""))
    if not os.path.exists(python):
        unavailable("no system /usr/bin/python3 for the DRMAA helpers")
    if subprocess.run(probe, capture_output=True, env=env).returncode != 0:
        result = apt_install("python3-drmaa")
        if subprocess.run(probe, capture_output=True, env=env).returncode != 0:
            unavailable(f"python3-drmaa is not installed and could not be installed: {result}")
    return python


# --- fake scheduler executables ------------------------------------------------------------------


@pytest.fixture
def fake_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put test/fakes/bin first on PATH with a private state directory; returns it."""
    state = tmp_path / "fake-scheduler"
    state.mkdir()
    monkeypatch.setenv("PATH", f"{FAKES_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SCHEDULER_DIR", str(state))
    return state
