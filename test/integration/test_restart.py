"""kill -9 of the server and its whole process tree, with jobs in every state, then a restart.

Every job must reach `complete` with its own exit code and byte-identical outputs, polled
the way Galaxy polls (connection errors while the server is down are retried).
"""

from __future__ import annotations

import os
import time

from test.support.http import Api
from test.support.server import start_server


def _payload(job_id: str) -> bytes:
    return (f"input of {job_id}\n".encode() + os.urandom(1 << 16)) * 4


def test_kill_dash_nine_loses_nothing(tmp_path):
    config_dir = tmp_path / "server"
    app_config = {"managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": 2}}}
    server = start_server(config_dir, app_config=app_config)
    api = Api(server.url, server.token)
    gate = tmp_path / "gate"
    staging = config_dir / "staging"
    jobs = {"finished": 5, "running1": 3, "running2": 4, "queued1": 6, "queued2": 7}
    inputs = {job_id: _payload(job_id) for job_id in jobs}

    # finished-unpolled: runs to the end before the crash, never polled before it
    api.setup("finished")
    api.upload("finished", "in.dat", inputs["finished"])
    api.submit("finished", "cat ../inputs/in.dat > ../outputs/out.dat; exit 5")
    deadline = time.monotonic() + 60
    while not (staging / "finished" / "return_code").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)  # let the server record the exit

    for job_id in ("running1", "running2", "queued1", "queued2"):
        api.setup(job_id)
        api.upload(job_id, "in.dat", inputs[job_id])
        api.submit(
            job_id,
            f"cat ../inputs/in.dat > ../outputs/out.dat; while [ ! -e {gate} ]; do sleep 0.05; done; "
            f"cat ../inputs/in.dat >> ../outputs/out.dat; exit {jobs[job_id]}",
        )
    for job_id in ("running1", "running2"):
        deadline = time.monotonic() + 60
        while api.status(job_id)["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert api.status("queued1")["status"] == "queued"

    server.kill_tree()

    restarted = start_server(config_dir, app_config=app_config, port=server.port)
    try:
        gate.touch()
        for job_id, exit_code in jobs.items():
            status = api.poll_until_terminal(job_id)
            assert status["status"] == "complete", (job_id, status)
            assert status["returncode"] == exit_code, (job_id, status)
            expected = inputs[job_id] if job_id == "finished" else inputs[job_id] * 2
            assert api.download(job_id, "out.dat") == expected, job_id
    finally:
        restarted.stop()
