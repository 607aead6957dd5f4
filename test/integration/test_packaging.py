"""`python -m build` makes an sdist and, from it, a wheel; the wheel installs into a fresh venv
with pip and its `pulsar` console script serves a job and stops cleanly on SIGTERM.

This is what `make dist` runs and what a release uploads.  The build works on a copy of the
checkout (the build writes egg-info and build/ into its source tree), in pip's isolated build
environment (setuptools from the index), and the install resolves our requirements from the
index too (pip's cache and find-links make a second run fast).
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from test.support.server import REPO_ROOT, PulsarServer, free_port, write_app_config
from test.web.test_real_app import TOKEN, run_a_job

BUILD_TIMEOUT = 600  # fetching setuptools into the isolated build env, on a slow CI network
#: Not part of a source tree a release is built from.
JUNK = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache",
                              ".ruff_cache", ".pytest_cache", "*.pyc")
#: Files setup.py reads or MANIFEST.in ships next to the package.
SOURCE_FILES = ("setup.py", "pyproject.toml", "MANIFEST.in", "README.rst", "requirements.txt", "dev-requirements.txt",
                "app.yml.sample", "server.ini.sample", "local_env.sh.sample", "run.sh", "contrib/pulsar.service")


def clean_env() -> dict[str, str]:
    """No PYTHONPATH (the checkout must not leak in) and no config overrides."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("PULSAR_CONFIG")}


def run(argv: list[str], cwd: Path, timeout: float = BUILD_TIMEOUT) -> str:
    result = subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def package_files() -> set[str]:
    """Every file of the `pulsar` package in the checkout, relative to the repository root."""
    return {str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "pulsar").rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"}


class Built:
    def __init__(self, sdist: Path, wheel: Path):
        self.sdist = sdist
        self.wheel = wheel


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("packaging")
    source = work / "src"
    shutil.copytree(REPO_ROOT, source, ignore=JUNK, symlinks=True)
    # sdist from the tree, then the wheel from the unpacked sdist (build's default)
    run([sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(source)], cwd=work)
    (sdist,) = (work / "dist").glob("pulsar_app-*.tar.gz")
    (wheel,) = (work / "dist").glob("pulsar_app-*-py3-none-any.whl")
    return Built(sdist, wheel)


def test_sdist_holds_the_package_and_what_setup_py_reads(built: Built) -> None:
    with tarfile.open(built.sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = sorted((package_files() | set(SOURCE_FILES)) - names)
    assert not missing, f"{top} lacks {missing}"
    assert "pulsar/py.typed" in names


def test_wheel_built_from_the_sdist_holds_every_module_and_console_script(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = configparser.ConfigParser()
        scripts.read_string(archive.read(entry_points).decode())
    assert not sorted(package_files() - names), sorted(package_files() - names)
    assert set(scripts["console_scripts"]) == {
        "pulsar", "pulsar-main", "pulsar-config", "pulsar-check", "pulsar-drmaa-launch", "pulsar-drmaa-kill",
        "pulsar-chown-working-directory",
    }
    assert scripts["paste.app_factory"]["main"] == "pulsar.web.wsgi:app_factory"


class InstalledServer(PulsarServer):
    """Our server started by the console script of a venv, not from the checkout."""

    def __init__(self, script: Path, config_dir: Path, port: int):
        super().__init__(config_dir, port, TOKEN, env={"PYTHONPATH": ""})
        self.script = script

    def command(self) -> list[str]:
        return [str(self.script), "-c", str(self.config_dir), "--port", str(self.port)]


@pytest.fixture(scope="module")
def venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("fresh-venv")
    run([sys.executable, "-m", "venv", str(root / "venv")], cwd=root)
    run([str(root / "venv/bin/python"), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(built.wheel)],
        cwd=root)
    yield root / "venv"


def test_the_installed_package_is_the_one_imported(venv: Path, tmp_path: Path) -> None:
    where = run([str(venv / "bin/python"), "-c", "import pulsar; print(pulsar.__file__)"], cwd=tmp_path).strip()
    assert Path(where).is_relative_to(venv), where
    for script in ("pulsar", "pulsar-main", "pulsar-config", "pulsar-check"):
        assert run([str(venv / "bin" / script), "--help"], cwd=tmp_path).startswith("usage: ")


def test_the_installed_console_script_serves_a_job_and_stops_on_sigterm(venv: Path, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    write_app_config(config_dir, {"private_token": TOKEN, "staging_directory": str(tmp_path / "staging"),
                                  "persistence_directory": str(tmp_path / "persisted")})
    server = InstalledServer(venv / "bin/pulsar", config_dir, free_port()).start()  # waits for /healthz
    try:
        status, body = server.get("healthz")
        assert status == 200 and b"version" in body
        run_a_job(server.url)
    except BaseException:
        server.kill_tree()
        raise
    assert server.stop() == 0, server.log_text()  # SIGTERM, then wait
    assert "pulsar stopped" in server.log_text()
