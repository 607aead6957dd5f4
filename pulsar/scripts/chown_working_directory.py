"""`pulsar-chown-working-directory --user <user> --job_directory <dir>`: hand a job
directory to the job's real user, or back to Pulsar.

`queued_external_drmaa` runs this through `sudo` (as root) before a job starts and after it
ends.  Because sudo makes it a privileged operation, it checks who asks (`SUDO_UID`, the
Pulsar user) and refuses anything but those two moves:

* give away: the directory is owned by the caller, the target is an ordinary user
  (uid >= 1000);
* take back: the target is the caller, and the directory's parent (the staging root) is
  owned by the caller, so no other directory of that user can be taken.

The walk never follows a symbolic link, even one the job swaps in while it runs (root
changing the owner of files outside the job directory would be a privilege escalation):
the job directory is opened relative to its parent with `O_NOFOLLOW`, the tree is walked
with `os.fwalk(follow_symlinks=False)` (which opens each subdirectory itself and skips one
that changed between listing and opening), and every owner change is made relative to the
open directory fd with `follow_symlinks=False` (a link gets its own owner changed).  A
non-directory with more than one hard link is left alone: it may be a link to a file
outside.  Exit status 0 on success, 1 (refused or failed) with the reason on stderr.
"""

from __future__ import annotations

import argparse
import errno
import os
import pwd
import stat
import sys
from typing import Sequence

MIN_UID = 1000

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Refused(Exception):
    pass


def _check(directory: str, info: os.stat_result, parent: os.stat_result, target_uid: int, caller_uid: int) -> None:
    if not stat.S_ISDIR(info.st_mode):
        raise Refused(f"{directory} is not a directory (or is a symbolic link)")
    if target_uid == caller_uid:
        if parent.st_uid != caller_uid:
            raise Refused(f"the parent of {directory} is not owned by uid {caller_uid}")
        return
    if target_uid < MIN_UID:
        raise Refused(f"will not give files to system user uid {target_uid}")
    if info.st_uid != caller_uid:
        raise Refused(f"{directory} is not owned by uid {caller_uid}")


def check_move(directory: str, target_uid: int, caller_uid: int) -> None:
    """Raise `Refused` unless moving `directory` to `target_uid` is one of the two allowed moves."""
    _check(directory, os.lstat(directory), os.lstat(os.path.dirname(os.path.abspath(directory))),
           target_uid, caller_uid)


def open_job_directory(directory: str) -> tuple[int, int]:
    """(fd of the parent, fd of `directory`), the latter opened without following a symlink;
    `Refused` if it is a symlink or not a directory."""
    absolute = os.path.abspath(directory)
    parent_fd = os.open(os.path.dirname(absolute), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = os.open(os.path.basename(absolute), _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        os.close(parent_fd)
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Refused(f"{directory} is not a directory (or is a symbolic link)") from None
        raise
    return parent_fd, fd


def chown_tree_fd(fd: int, uid: int, gid: int) -> list[str]:
    """Give the directory open as `fd` and everything below it to `uid`/`gid`, through fds.
    Returns the paths (relative) of the hard-linked files left alone."""
    skipped = []
    os.chown(fd, uid, gid)
    for root, dirs, files, root_fd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
        for name in dirs + files:
            try:
                info = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
                if not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1:
                    skipped.append(os.path.join(root, name))
                    continue
                os.chown(name, uid, gid, dir_fd=root_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed by the job meanwhile
    return skipped


def chown_tree(directory: str, uid: int, gid: int) -> list[str]:
    """`chown_tree_fd` of the directory at `directory` (opened without following a symlink)."""
    parent_fd, fd = open_job_directory(directory)
    try:
        return chown_tree_fd(fd, uid, gid)
    finally:
        os.close(fd)
        os.close(parent_fd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pulsar-chown-working-directory", description=__doc__.splitlines()[0])
    parser.add_argument("--user", required=True, help="new owner (user name)")
    parser.add_argument("--job_directory", required=True, help="the job directory to hand over")
    args = parser.parse_args(argv)
    try:
        target = pwd.getpwnam(args.user)
        caller_uid = int(os.environ.get("SUDO_UID", os.getuid()))
        parent_fd, fd = open_job_directory(args.job_directory)
        try:
            # checked on the open fds, so what is checked is what gets walked
            _check(args.job_directory, os.fstat(fd), os.fstat(parent_fd), target.pw_uid, caller_uid)
            for name in chown_tree_fd(fd, target.pw_uid, target.pw_gid):
                print(f"pulsar-chown-working-directory: left {name} alone: it has other hard links", file=sys.stderr)
        finally:
            os.close(fd)
            os.close(parent_fd)
    except (KeyError, Refused, OSError, ValueError) as exc:
        print(f"pulsar-chown-working-directory: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
