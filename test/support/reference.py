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

#: name -> pip requirements
REFERENCE_ENVS = {
    "galaxy-lib-0.15.16": ["pulsar-galaxy-lib==0.15.16"],
    "galaxy-lib-0.16.0": ["pulsar-galaxy-lib==0.16.0"],
    "app-0.16.0": ["pulsar-app[web]==0.16.0"],
}


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
    if marker.exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return venv
        if venv.exists():
            shutil.rmtree(venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run(pip + requirements, check=True)
        marker.write_text("\n".join(requirements) + "\n")
    return venv


def reference_bin(name: str, program: str) -> Path:
    return reference_venv(name) / "bin" / program


if __name__ == "__main__":  # `python -m test.support.reference` pre-builds every venv
    for env_name in sys.argv[1:] or REFERENCE_ENVS:
        print(reference_venv(env_name))
