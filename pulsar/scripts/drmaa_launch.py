"""`pulsar-drmaa-launch --job_attributes <jt.json>`: submit one DRMAA job, print its id.

Run by `queued_external_drmaa` as the job's real user (`sudo -u <user>`), so the job is
owned by that user in the DRM.  The JSON file holds DRMAA job-template attributes.
Exit status 0 with the id on stdout, 1 with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from pulsar.managers.util.drmaa import DrmaaSessionFactory


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pulsar-drmaa-launch", description=__doc__.splitlines()[0])
    parser.add_argument("--job_attributes", required=True, help="JSON file of DRMAA job-template attributes")
    args = parser.parse_args(argv)
    try:
        with open(args.job_attributes) as handle:
            attributes = json.load(handle)
        if not isinstance(attributes, dict):
            raise ValueError("job attributes must be a JSON object")
        session = DrmaaSessionFactory().get()
        try:
            external_id = session.run_job(**attributes)
        finally:
            session.close()
    except Exception as exc:
        print(f"pulsar-drmaa-launch: {exc}", file=sys.stderr)
        return 1
    print(external_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
