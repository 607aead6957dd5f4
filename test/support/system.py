"""What a test does when a system piece it needs (a daemon, a Debian package) is missing."""

from __future__ import annotations

import os
import subprocess
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose system piece is missing -- except where the run promises them (CI sets
    PULSAR_TEST_REQUIRE_SCHEDULERS=1): there a missing piece is a failure, so a broken start
    cannot pass as a green run."""
    if os.environ.get("PULSAR_TEST_REQUIRE_SCHEDULERS") == "1":
        pytest.fail(f"required for this run but unavailable: {reason}")
    pytest.skip(reason)


def apt_install(*packages: str) -> str:
    """Install Debian packages; the tail of apt's stderr (empty on success)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    argv = ["apt-get", "install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", *packages]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return result.stderr.strip()[-300:]
