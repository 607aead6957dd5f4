"""The root chown helper under attack: a job swaps directories and files for symlinks to an
outside directory while root walks its tree; nothing outside may change owner.

Runs as root (as the developers' machines and CI do); skipped only outside CI when not root.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pulsar.scripts import chown_working_directory as chown
from test.support.server import subprocess_env

if os.geteuid() != 0:
    if os.environ.get("CI"):
        raise RuntimeError("the chown race test must run as root in CI")
    pytest.skip("needs root (changes file owners)", allow_module_level=True)

TARGET = pwd.getpwnam("nobody")
assert TARGET.pw_uid >= chown.MIN_UID


def owners(root: Path) -> dict[str, int]:
    found = {str(root): os.lstat(root).st_uid}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            found[path] = os.lstat(path).st_uid
    return found


def make_job(staging: Path) -> Path:
    job = staging / "job"
    for sub in ("working", "outputs", "metadata"):
        for index in range(3):
            directory = job / sub / f"d{index}"
            directory.mkdir(parents=True)
            for number in range(100):
                (directory / f"f{number}").write_text("x")
    return job


class Swapper(threading.Thread):
    """What the job does while root walks: swap a directory, then a file, for a symlink to
    the outside directory (and its secret file), and back, as fast as it can."""

    def __init__(self, job: Path, outside: Path):
        super().__init__(daemon=True)
        self.job = job
        self.outside = outside
        self.stop = threading.Event()
        self.swaps = 0

    def run(self) -> None:
        directory = self.job / "working" / "d1"
        hidden = self.job / "working" / ".d1"
        file = self.job / "outputs" / "d0" / "f3"
        while not self.stop.is_set():
            try:
                os.rename(directory, hidden)
                os.symlink(self.outside, directory)
                os.rename(file, file.with_name("f3.real"))
                os.symlink(self.outside / "secret", file)
                self.swaps += 1
                time.sleep(0.0005)  # hold the swapped state for a moment, as a patient job would
                os.unlink(directory)
                os.rename(hidden, directory)
                os.unlink(file)
                os.rename(file.with_name("f3.real"), file)
                time.sleep(0.0005)
            except OSError:
                continue


def test_chown_helper_never_changes_owners_outside_under_a_swap_race(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    staging.mkdir()
    outside = tmp_path / "outside"
    (outside / "deeper").mkdir(parents=True)
    (outside / "secret").write_text("root's")
    (outside / "deeper" / "also").write_text("root's")
    for number in range(100):  # the names inside the swapped directory: a walk by path would hit these
        (outside / f"f{number}").write_text("root's")
    job = make_job(staging)
    before = owners(outside)
    assert set(before.values()) == {0}
    monkeypatch.setenv("SUDO_UID", "0")
    swapper = Swapper(job, outside)
    swapper.start()
    try:
        for run in range(150):
            user = TARGET.pw_name if run % 2 == 0 else "root"
            assert chown.main(["--user", user, "--job_directory", str(job)]) == 0
    finally:
        swapper.stop.set()
        swapper.join()
    assert swapper.swaps > 50, "the race never ran"
    assert owners(outside) == before, "root changed owners outside the job directory"
    # the helper did its work on the job itself
    assert os.lstat(job).st_uid == 0
    assert chown.main(["--user", TARGET.pw_name, "--job_directory", str(job)]) == 0
    assert {uid for path, uid in owners(job).items()} == {TARGET.pw_uid}


def test_a_job_directory_that_is_a_symlink_is_refused(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("root's")
    os.symlink(outside, staging / "job")
    result = subprocess.run(
        [sys.executable, "-m", "pulsar.scripts.chown_working_directory", "--user", TARGET.pw_name,
         "--job_directory", str(staging / "job")],
        env=subprocess_env({"SUDO_UID": "0"}), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "symbolic link" in result.stderr
    assert os.lstat(outside / "secret").st_uid == 0


def test_hard_links_to_outside_files_are_left_alone(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    job = staging / "job"
    job.mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.write_text("root's")
    os.link(outside, job / "link")
    (job / "own").write_text("mine")
    monkeypatch.setenv("SUDO_UID", "0")
    assert chown.main(["--user", TARGET.pw_name, "--job_directory", str(job)]) == 0
    assert os.lstat(outside).st_uid == 0
    assert os.lstat(job / "own").st_uid == TARGET.pw_uid
