"""Run `workloads/client_driver.py` under our client or the reference client, in a subprocess.

A subprocess per run keeps the client's memory and CPU apart from the server's and from
the harness's, and lets the reference client live in its own venv (its top-level package is
also called `pulsar`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from bench.sampling import Sampler
from bench.servers import TOKEN
from test.support.server import subprocess_env

DRIVER = Path(__file__).resolve().parent / "workloads" / "client_driver.py"
RESULT_PREFIX = "BENCH-RESULT "


@dataclasses.dataclass
class ClientKind:
    """Which client library drives the server: `python` is the interpreter that has it."""

    name: str
    python: str
    env: dict[str, str]


def our_client() -> ClientKind:
    return ClientKind("ours", sys.executable, subprocess_env())


def reference_client(venv: Path) -> ClientKind:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",) and not k.startswith("PULSAR_")}
    env["PYTHONUNBUFFERED"] = "1"
    return ClientKind("reference", str(venv / "bin" / "python"), env)


class DriverError(RuntimeError):
    pass


def run_driver(client: ClientKind, spec: dict, workdir: Path, *, sampler: Sampler | None = None,
               sample_as: str = "client", timeout: float = 3600.0, driver: Path = DRIVER) -> dict:
    """Run one driver invocation (`driver`: the HTTP one by default, or the message-queue
    one); if `sampler` is given, the driver's RSS is sampled as `sample_as` while it runs.
    Returns the driver's result dict."""
    full_spec = {"token": TOKEN, "workdir": str(workdir), **spec}
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=workdir, delete=False) as handle:
        json.dump(full_spec, handle)
        spec_path = handle.name
    log_path = workdir / f"driver-{spec['mode']}-{client.name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([client.python, str(driver), spec_path], stdout=subprocess.PIPE, stderr=log,
                                   stdin=subprocess.DEVNULL, cwd=workdir, env=client.env)
        try:
            if sampler is not None:
                sampler.add(sample_as, [psutil.Process(process.pid)])
            stdout, _ = process.communicate(timeout=timeout)
        except BaseException:
            process.kill()
            process.wait()
            raise
    os.unlink(spec_path)
    lines = stdout.decode(errors="replace").splitlines()
    results = [line[len(RESULT_PREFIX):] for line in lines if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not results:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise DriverError(f"{client.name} client driver ({spec['mode']}) exited {process.returncode}:\n{tail}")
    return json.loads(results[-1])


def reference_venvs(notes: list[str]) -> tuple[Path, Path]:
    """(server venv, client venv).  The client is pulsar-galaxy-lib 0.16.0 when it imports;
    otherwise the same 0.16.0 client package inside the pulsar-app venv."""
    from test.support.reference import reference_venv

    app = reference_venv("app-0.16.0")
    client = app
    try:
        lib = reference_venv("galaxy-lib-0.16.0")
        probe = subprocess.run([str(lib / "bin" / "python"), "-c", "import pulsar.client.manager"],
                               capture_output=True, cwd="/", timeout=120)
        if probe.returncode == 0:
            client = lib
        else:
            notes.append("reference client: the pulsar-galaxy-lib==0.16.0 venv cannot import pulsar.client.manager "
                         "(missing 'packaging'); used the same 0.16.0 client package from the pulsar-app venv")
    except Exception as exc:  # no network for the lib venv: the app venv has the same client
        notes.append(f"reference client venv unavailable ({exc}); used the pulsar-app 0.16.0 venv")
    return app, client
