"""Virtual environments holding the reference implementation, for black-box interop tests.

The reference packages' top-level module is also called `pulsar`, so they never go into our
environment: each lives in its own venv under the cache directory and is driven in a
subprocess.  Venvs are built once and reused (a marker file records a complete install).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: The reference client imports `galaxy.util` / `galaxy.tool_util` without declaring them
#: (Galaxy provides them); pin the Galaxy release that pins pulsar-galaxy-lib 0.15.x.
GALAXY_CLIENT_DEPENDENCIES = ["galaxy-tool-util==26.1.2", "galaxy-util==26.1.2"]

#: The reference's message-queue code imports kombu (its `amqp` extra; Galaxy installs it for
#: PulsarMQJobRunner).  The version the protocol notes were observed with.
KOMBU = "kombu==5.6.2"

#: name -> pip requirements.  0.15.15 is what Galaxy 26.1.2 pins, 0.15.16 what pip resolves
#: for it, 0.16.0 the newest client; app-0.16.0 is the reference server (HTTP and `pulsar-main`).
REFERENCE_ENVS = {
    "galaxy-lib-0.15.15": ["pulsar-galaxy-lib==0.15.15", *GALAXY_CLIENT_DEPENDENCIES, KOMBU],
    "galaxy-lib-0.15.16": ["pulsar-galaxy-lib==0.15.16", *GALAXY_CLIENT_DEPENDENCIES, KOMBU],
    "galaxy-lib-0.16.0": ["pulsar-galaxy-lib==0.16.0", *GALAXY_CLIENT_DEPENDENCIES, KOMBU],
    "app-0.16.0": ["pulsar-app[web,amqp]==0.16.0", KOMBU],
    # Not the reference: Galaxy itself, whose runners the tests in test/galaxy run against our
    # package (put on PYTHONPATH; the pulsar-galaxy-lib it pulls in is uninstalled below).
    # ~1.5 min and 1.1 GB on a fresh machine, measured 2026-12-05.
    "galaxy-app-26.1.2": ["galaxy-app==26.1.2", "drmaa"],
}

#: name -> pip arguments run after the install (part of what the marker records).
AFTER_INSTALL = {"galaxy-app-26.1.2": ["uninstall", "-y", "pulsar-galaxy-lib"]}


def cache_root() -> Path:
    root = os.environ.get("PULSAR_TEST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "pulsar-tests")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def reference_venv(name: str) -> Path:
    """Return the venv directory for `name`, creating it on first use (locked across processes)."""
    requirements = REFERENCE_ENVS[name]
    venv = cache_root() / "venvs" / name
    marker = venv / ".installed"
    wanted = "\n".join(requirements + AFTER_INSTALL.get(name, [])) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == wanted:
            return venv
        if venv.exists():
            shutil.rmtree(venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run(pip + requirements, check=True)
        if name in AFTER_INSTALL:
            subprocess.run(pip[:3] + AFTER_INSTALL[name] + ["-q"], check=True)
        marker.write_text(wanted)
    return venv


def reference_bin(name: str, program: str) -> Path:
    return reference_venv(name) / "bin" / program


#: Where the reference-side helpers live (reference_client_jobs.py: run with a reference python).
HELPERS_DIR = Path(__file__).resolve().parents[1] / "integration"


def reference_script(body: str) -> str:
    """`body` (a `python -c` script for a reference venv) preceded by the line that lets it
    import the reference-side helpers, e.g. `from reference_client_jobs import wait_terminal`.
    Only that directory is added, never our checkout, so `pulsar` stays the reference's."""
    return f"import sys; sys.path.insert(0, {str(HELPERS_DIR)!r})\n" + body


if __name__ == "__main__":  # `python -m test.support.reference` pre-builds every venv
    for env_name in sys.argv[1:] or REFERENCE_ENVS:
        print(reference_venv(env_name))
