"""The separate venv holding the third-party WSGI servers (never `/work/main/.venv`).

Built once under `~/.cache/pulsar-bench/wsgi-hosts` (`--venv` elsewhere) from PyPI with the
servers plus our runtime dependencies; this checkout is made importable with PYTHONPATH, not
installed, so the venv never goes stale against the working tree.  A
marker file records the requirement list; a changed list rebuilds the venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

#: The hosts and what our application needs at run time.
REQUIREMENTS = (
    "paste", "pastedeploy", "pastescript", "waitress", "gunicorn", "cheroot",
    "webob", "psutil", "pyyaml", "requests",
)
MARKER = ".pulsar-bench-requirements"


def default_location() -> Path:
    return Path(os.path.expanduser("~")) / ".cache" / "pulsar-bench" / "wsgi-hosts"


def ensure_venv(location: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Return the venv directory, creating or rebuilding it if its requirements changed."""
    venv = location or default_location()
    marker = venv / MARKER
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if marker.is_file() and marker.read_text() == wanted and (venv / "bin" / "python").exists():
        return venv
    log(f"building the WSGI hosts venv in {venv} ({', '.join(REQUIREMENTS)})")
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *REQUIREMENTS], check=True)
    marker.write_text(wanted)
    return venv


def versions(venv: Path) -> dict[str, str]:
    """Installed versions of the hosts (for the results file)."""
    code = ("import importlib.metadata as m, json\n"
            f"names = {list(REQUIREMENTS)!r}\n"
            "out = {}\n"
            "for n in names:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: out[n] = None\n"
            "print(json.dumps(out))")
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        return {}
    found: dict[str, str] = json.loads(result.stdout)
    return found
