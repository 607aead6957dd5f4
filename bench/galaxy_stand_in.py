"""Galaxy's job files API for the message-queue benchmark, in a process of its own.

    python bench/galaxy_stand_in.py ROOT JOB_KEY

Prints `PORT <n>`, then serves `pulsar.client.galaxy_files.JobFilesServer` (GET serves, POST
stores paths under ROOT) until its standard input closes.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pulsar.client.galaxy_files import JobFilesServer  # noqa: E402


def main() -> int:
    root, job_key = sys.argv[1], sys.argv[2]
    server = JobFilesServer(root, job_key)
    server.httpd.socket.listen(128)  # socketserver's backlog of 5 drops connections under 8 clients
    server.start()
    sys.stdout.write(f"PORT {server.httpd.server_address[1]}\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the harness closes our stdin (or dies)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
