"""`pulsar-chown-working-directory --user <user> --job_directory <dir>`: hand a job
directory to the job's real user, or back to Pulsar.

`queued_external_drmaa` runs this through `sudo` (as root) before a job starts and after it
ends.  Because sudo makes it a privileged operation, it checks who asks (`SUDO_UID`, the
Pulsar user) and refuses anything but those two moves:

* give away: the directory is owned by the caller, the target is an ordinary user
  (uid >= 1000);
* take back: the target is the caller, and the directory's parent (the staging root) is
  owned by the caller, so no other directory of that user can be taken.

Symbolic links are never followed (their own owner is changed).  Exit status 0 on
success, 1 (refused or failed) with the reason on stderr.
"""

from __future__ import annotations

import argparse
import os
import pwd
import stat
import sys
from typing import Sequence

MIN_UID = 1000


class Refused(Exception):
    pass


def check_move(directory: str, target_uid: int, caller_uid: int) -> None:
    """Raise `Refused` unless moving `directory` to `target_uid` is one of the two allowed moves."""
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise Refused(f"{directory} is not a directory (or is a symbolic link)")
    if target_uid == caller_uid:
        parent = os.lstat(os.path.dirname(os.path.abspath(directory)))
        if parent.st_uid != caller_uid:
            raise Refused(f"the parent of {directory} is not owned by uid {caller_uid}")
        return
    if target_uid < MIN_UID:
        raise Refused(f"will not give files to system user uid {target_uid}")
    if info.st_uid != caller_uid:
        raise Refused(f"{directory} is not owned by uid {caller_uid}")


def chown_tree(directory: str, uid: int, gid: int) -> None:
    os.lchown(directory, uid, gid)
    for root, dirs, files in os.walk(directory, followlinks=False):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pulsar-chown-working-directory", description=__doc__.splitlines()[0])
    parser.add_argument("--user", required=True, help="new owner (user name)")
    parser.add_argument("--job_directory", required=True, help="the job directory to hand over")
    args = parser.parse_args(argv)
    try:
        target = pwd.getpwnam(args.user)
        caller_uid = int(os.environ.get("SUDO_UID", os.getuid()))
        check_move(args.job_directory, target.pw_uid, caller_uid)
        chown_tree(args.job_directory, target.pw_uid, target.pw_gid)
    except (KeyError, Refused, OSError, ValueError) as exc:
        print(f"pulsar-chown-working-directory: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
