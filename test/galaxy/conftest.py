"""Galaxy 26.1.2 itself, in its own venv (test/support/reference.py, `galaxy-app-26.1.2`),
with our checkout first on PYTHONPATH in place of the pulsar-galaxy-lib it would install."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from test.managers.conftest import sge, ssh_server, sshd  # noqa: F401 (the real Grid Engine and a private sshd, shared)
from test.support.reference import reference_venv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def galaxy_python() -> Path:
    return reference_venv("galaxy-app-26.1.2") / "bin" / "python"


@pytest.fixture
def run_galaxy(galaxy_python: Path) -> Callable[..., dict[str, Any]]:
    """Run one scenario of test/galaxy/galaxy_driver.py in the Galaxy venv; its JSON result."""

    def run(name: str, timeout: float = 300, **args: Any) -> dict[str, Any]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([str(galaxy_python), "-m", "test.galaxy.galaxy_driver", name, json.dumps(args)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        marker = "\nRESULT "
        assert proc.returncode == 0 and marker in proc.stdout, (
            f"scenario {name} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        result: dict[str, Any] = json.loads(proc.stdout.rsplit(marker, 1)[1])
        return result

    return run
