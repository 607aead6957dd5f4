"""Shared core of the fake scheduler executables in this directory.

Each fake (qsub/qstat/qdel, bsub/bjobs/bkill, condor_submit/condor_q/condor_rm) really
runs the submitted script in the background, like a one-node scheduler, and prints what
the real tool prints (formats cited in each fake).  State lives under
$FAKE_SCHEDULER_DIR/jobs/<n>/: `pid` (the runner), `state` (Q, R, C, X = removed),
`exit_status`.  A file `$FAKE_SCHEDULER_DIR/hold` keeps new jobs queued until removed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("FAKE_SCHEDULER_DIR", "/tmp/fake-scheduler"))
JOBS = ROOT / "jobs"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def next_id() -> int:
    JOBS.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        try:
            (JOBS / str(n)).mkdir()
            return n
        except FileExistsError:
            n += 1


def job_dir(n: str | int) -> Path:
    return JOBS / str(n)


def exists(n: str) -> bool:
    return n.isdigit() and job_dir(n).is_dir() and (job_dir(n) / "state").exists()


def state(n: str) -> str:
    return (job_dir(n) / "state").read_text().strip()


def exit_status(n: str) -> int | None:
    path = job_dir(n) / "exit_status"
    return int(path.read_text()) if path.exists() else None


def submit(script: Path, stdout: str, stderr: str, cwd: str | None = None, userlog: str | None = None) -> int:
    """Queue `script` and start a detached runner for it; returns the job number."""
    n = next_id()
    if userlog:
        _write(job_dir(n) / "userlog", userlog)
        condor_event(str(n), "000", "Job submitted from host: <127.0.0.1:9618?addrs=127.0.0.1-9618>")
    _write(job_dir(n) / "state", "Q")
    runner = [sys.executable, __file__, "run", str(n), str(script), stdout, stderr, cwd or os.getcwd()]
    subprocess.Popen(runner, start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
    return n


def cancel(n: str) -> bool:
    """Stop job `n` (whole process group); False if it is unknown or already over."""
    if not exists(n) or state(n) in ("C", "X"):
        return False
    _write(job_dir(n) / "state", "X")
    pid_file = job_dir(n) / "child"
    if pid_file.exists():
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass
    return True


def condor_event(n: str, code: str, text: str, *body: str) -> None:
    """Append one event to the job's HTCondor user log, in the classic format
    (https://htcondor.readthedocs.io/en/latest/codes-other-values/job-event-log-codes.html)."""
    path = job_dir(n) / "userlog"
    if not path.exists():
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"{code} ({int(n):03d}.000.000) {stamp} {text}", *body, "..."]
    with open(path.read_text(), "a") as log:
        log.write("\n".join(lines) + "\n")


def _run(n: str, script: str, stdout: str, stderr: str, cwd: str) -> None:
    d = job_dir(n)
    while (ROOT / "hold").exists():
        time.sleep(0.1)
    if state(n) == "X":  # removed while queued
        condor_event(n, "009", "Job was aborted.", "\tvia condor_rm")
        return
    with open(stdout, "ab") as out, open(stderr, "ab") as err:
        child = subprocess.Popen(["/bin/bash", script], stdout=out, stderr=err, cwd=cwd,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
    _write(d / "child", str(child.pid))
    if state(n) == "X":  # cancelled while starting
        os.killpg(child.pid, signal.SIGTERM)
    else:
        _write(d / "state", "R")
        condor_event(n, "001", "Job executing on host: <127.0.0.1:9618?addrs=127.0.0.1-9618>")
    code = child.wait()
    _write(d / "exit_status", str(code if code >= 0 else 256 - code))  # PBS style: 256 + signal
    if state(n) != "X":
        _write(d / "state", "C")
    if state(n) == "X":
        condor_event(n, "009", "Job was aborted.", f"\tvia condor_rm (by user {os.environ.get('USER', 'root')})")
    elif code >= 0:
        condor_event(n, "005", "Job terminated.", f"\t(1) Normal termination (return value {code})")
    else:
        condor_event(n, "005", "Job terminated.", f"\t(0) Abnormal termination (signal {-code})")


if __name__ == "__main__" and sys.argv[1] == "run":
    _run(*sys.argv[2:7])
