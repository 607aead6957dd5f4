"""`pulsar-drmaa-kill --external_id <id>`: terminate one DRMAA job.

Run by `queued_external_drmaa` as the job's owner (`sudo -u <user>`), since a DRM lets
only the owner (or an operator) delete a job.  A job the DRM no longer knows is not an
error.  Exit status 0 on success, 1 with the reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from pulsar.managers.util.drmaa import DrmaaSessionFactory


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pulsar-drmaa-kill", description=__doc__.splitlines()[0])
    parser.add_argument("--external_id", required=True)
    args = parser.parse_args(argv)
    try:
        session = DrmaaSessionFactory().get()
        try:
            session.terminate(args.external_id)
        finally:
            session.close()
    except Exception as exc:
        print(f"pulsar-drmaa-kill: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
