"""`ExternalDrmaaManager` (type `queued_external_drmaa`): DRMAA jobs owned by the real user.

The client names the user in the submit param `user` (Galaxy's `submit_user`).  Pulsar
never submits as that user itself; it runs three small helpers through `sudo`:

1. `sudo -E <chown script> --user <user> --job_directory <job>` (as root): the job
   directory now belongs to the user;
2. `sudo -E -u <user> <launch script> --job_attributes <job>/jt.json`: submits the DRMAA
   job template in the user's own DRMAA session and prints the id;
3. on cancel, `sudo -E -u <user> <kill script> --external_id <id>`.

Status comes from Pulsar's own DRMAA session (a DRM answers status questions about any
job).  When the job has ended, the directory is handed back to the Pulsar user with the
chown script before the job layer reads its results.

Options: `drmaa_launch_script`, `drmaa_kill_script`, `chown_working_directory_script`
(commands, split like a shell would; default the installed `pulsar-drmaa-launch`,
`pulsar-drmaa-kill`, `pulsar-chown-working-directory`, or this Python running the
`pulsar.scripts` module), `sudo` (default `sudo`), `helper_environment` (names of variables passed through sudo,
default `DEFAULT_HELPER_ENVIRONMENT`), `native_specification`,
`poll_interval`.  A sudoers rule must allow exactly these commands.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import pulsar
from pulsar.jobs import jobfs
from pulsar.managers.base import LaunchError, LaunchSpec
from pulsar.managers.drmaa import DrmaaManager
from pulsar.managers.external import EXTERNAL_ID, Tracked
from pulsar.util.fileio import atomic_write_json

log = logging.getLogger(__name__)

JOB_ATTRIBUTES_FILE = "jt.json"
HELPER_TIMEOUT = 120.0
#: variables handed to the helpers through sudo (when set in Pulsar's environment)
DEFAULT_HELPER_ENVIRONMENT = "PYTHONPATH DRMAA_LIBRARY_PATH SGE_ROOT SGE_CELL GLIBC_TUNABLES LD_PRELOAD"
_USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


def helper_command(configured: str | None, console_script: str, module: str) -> list[str]:
    """argv prefix of a helper: the configured command, else the installed console script,
    else this interpreter running the module."""
    if configured:
        return shlex.split(configured)
    found = shutil.which(console_script)
    if found:
        return [found]
    return [sys.executable, "-m", module]


class ExternalDrmaaManager(DrmaaManager):
    type_name = "queued_external_drmaa"

    def __init__(self, name: str, options: Mapping[str, Any], **kwargs: Any):
        super().__init__(name, options, **kwargs)
        self.sudo = shlex.split(str(options.get("sudo", "sudo")))
        self.launch_command = helper_command(
            options.get("drmaa_launch_script"), "pulsar-drmaa-launch", "pulsar.scripts.drmaa_launch")
        self.kill_command = helper_command(
            options.get("drmaa_kill_script"), "pulsar-drmaa-kill", "pulsar.scripts.drmaa_kill")
        self.chown_command = helper_command(
            options.get("chown_working_directory_script"), "pulsar-chown-working-directory",
            "pulsar.scripts.chown_working_directory")
        self.pulsar_user = pwd.getpwuid(os.getuid()).pw_name
        self.helper_environment = shlex.split(str(options.get("helper_environment", DEFAULT_HELPER_ENVIRONMENT)))

    def _sudo(self, user: str | None) -> list[str]:
        """`sudo -E [-u user] NAME=value...`: sudo drops variables such as PYTHONPATH and
        GLIBC_TUNABLES even with -E, so the ones the helpers need are passed explicitly
        (sudoers needs SETENV for the helper commands)."""
        env = self.environment.as_dict()
        package_root = str(Path(pulsar.__file__).resolve().parent.parent)  # for the `-m` fallback
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        assignments = [f"{name}={env[name]}" for name in self.helper_environment if env.get(name)]
        return [*self.sudo, "-E", *(["-u", user] if user else []), *assignments]

    def _run_helper(self, argv: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        log.debug("manager %s: running %s", self.name, shlex.join(argv))
        # `sudo -E` hands our environment to the helpers, and the launch helper's DRMAA
        # session may export it to the job: run them with the job environment (secrets withheld).
        return subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, env=self.environment.as_dict(),
                              timeout=HELPER_TIMEOUT, stdin=subprocess.DEVNULL)

    def _chown(self, directory: Path, user: str) -> subprocess.CompletedProcess[str]:
        argv = [*self._sudo(None), *self.chown_command, "--user", user, "--job_directory", str(directory)]
        return self._run_helper(argv)

    @staticmethod
    def _user_of(spec: LaunchSpec) -> str:
        user = spec.submit_params.get("user")
        if not user:
            raise LaunchError("queued_external_drmaa needs the submit parameter `user` (Galaxy: submit_user)")
        if not isinstance(user, str) or not _USER_NAME.match(user):
            raise LaunchError(f"invalid user name {user!r}")
        return user

    def _backend_for(self, spec: LaunchSpec, external_id: str) -> dict[str, Any]:
        return {EXTERNAL_ID: external_id, "user": self._user_of(spec)}

    def _submit_external(self, spec: LaunchSpec) -> str:
        user = self._user_of(spec)
        attributes_path = spec.job_directory / JOB_ATTRIBUTES_FILE
        with jobfs.opened_parent(spec.job_directory, attributes_path) as (dir_fd, name):  # never through a link
            atomic_write_json(name, self.job_template_for(spec), dir_fd=dir_fd)
        chowned = self._chown(spec.job_directory, user)
        if chowned.returncode != 0:
            raise LaunchError(f"could not hand job directory to {user}: {chowned.stderr.strip()}")
        argv = [*self._sudo(user), *self.launch_command, "--job_attributes", str(attributes_path)]
        launched = self._run_helper(argv, cwd=spec.job_directory)
        lines = launched.stdout.split()
        if launched.returncode != 0 or not lines:
            self._chown(spec.job_directory, self.pulsar_user)
            detail = launched.stderr.strip() or f"exit status {launched.returncode}"
            raise LaunchError(f"DRMAA launch as {user} failed: {detail}")
        return lines[-1]

    def _cancel_external(self, external_id: str, backend: Mapping[str, Any]) -> None:
        user = backend.get("user")
        if not user:
            log.warning("manager %s: no user recorded for %s; killing from Pulsar's session", self.name, external_id)
            self.session.terminate(external_id)
            return
        argv = [*self._sudo(str(user)), *self.kill_command, "--external_id", external_id]
        killed = self._run_helper(argv)
        if killed.returncode != 0:
            log.warning("manager %s: kill of %s as %s failed: %s", self.name, external_id, user, killed.stderr.strip())

    def _release(self, tracked: Tracked) -> None:
        result = self._chown(tracked.spec.job_directory, self.pulsar_user)
        if result.returncode != 0:
            log.error("manager %s: could not take job directory %s back: %s", self.name,
                      tracked.spec.job_directory, result.stderr.strip())
