"""Shell plugins: where the scheduler commands of `queued_cli` run.

A shell takes an argv list (never a shell string) and returns a `CommandResult`.
`LocalShell` executes it directly; the remote shells quote it once with `shlex.join` for
the remote login shell, which is the only place a command string is ever built.
The job directory must be visible at the same path on the remote host (shared file
system), as for any batch system.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from pulsar.util.flags import parse_bool

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
TIMED_OUT = -1


@dataclasses.dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Shell:
    """Runs scheduler commands.  Subclasses only change the argv that is executed."""

    name: ClassVar[str] = "Shell"

    def __init__(self, params: Mapping[str, Any] | None = None):
        params = dict(params or {})
        self.timeout = float(params.pop("timeout", DEFAULT_TIMEOUT))
        self.params = params

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """The argv actually executed on this machine for `argv`."""
        return list(argv)

    def run(self, argv: Sequence[str], *, stdin_path: Path | None = None,
            env: Mapping[str, str] | None = None) -> CommandResult:
        """Run `argv` (on the shell's host) with `stdin_path` as standard input and `env` as
        the local command's environment (None: this process's).  `sbatch`, `qsub` and `bsub`
        export the submitter's environment to the job by default, so the manager passes
        the job environment (secrets withheld), not the server's.

        Never raises for a failing command: a non-zero status, a missing program (127) and
        a timeout (-1, stderr `Execution timed out`) all come back as results.
        """
        full = self.wrap(argv)
        stdin = open(stdin_path, "rb") if stdin_path is not None else subprocess.DEVNULL
        try:
            process = subprocess.Popen(
                full, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                env=dict(env) if env is not None else None,
            )
        except OSError as exc:
            return CommandResult(tuple(full), 127, "", f"{full[0]}: {exc.strerror or exc}")
        finally:
            if stdin_path is not None and not isinstance(stdin, int):
                stdin.close()
        try:
            out, err = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            log.warning("command timed out after %ss: %s", self.timeout, shlex.join(full))
            return CommandResult(tuple(full), TIMED_OUT, "", "Execution timed out")
        return CommandResult(
            tuple(full), process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class LocalShell(Shell):
    """Commands run on this machine (the scheduler's client tools are installed here)."""

    name = "LocalShell"


class SecureShell(Shell):
    """Commands run over `ssh` on `hostname` (params: hostname, username, private_key,
    port, strict_host_key_checking (default true), options (extra ssh words))."""

    name = "SecureShell"
    program = "ssh"

    def wrap(self, argv: Sequence[str]) -> list[str]:
        p = self.params
        full = [self.program, "-o", "ConnectTimeout=60", "-o", "BatchMode=yes"]
        if not parse_bool(p.get("strict_host_key_checking", True), "shell_strict_host_key_checking"):
            full += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
        if p.get("private_key"):
            full += ["-i", str(p["private_key"])]
        if p.get("port"):
            full += ["-p", str(p["port"])]
        if p.get("username"):
            full += ["-l", str(p["username"])]
        full += shlex.split(str(p.get("options", "")))
        full += [str(p.get("hostname", "localhost")), shlex.join(argv)]
        return full


class GlobusSecureShell(SecureShell):
    name = "GlobusSecureShell"
    program = "gsissh"


class RemoteShell(Shell):
    """Commands run over `rsh` (params: rsh (program, default rsh), hostname, username,
    options)."""

    name = "RemoteShell"

    def wrap(self, argv: Sequence[str]) -> list[str]:
        p = self.params
        full = [str(p.get("rsh", "rsh")), *shlex.split(str(p.get("options", "")))]
        if p.get("username"):
            full += ["-l", str(p["username"])]
        full += [str(p.get("hostname", "localhost")), shlex.join(argv)]
        return full


SHELLS: dict[str, type[Shell]] = {
    cls.name: cls for cls in (LocalShell, SecureShell, GlobusSecureShell, RemoteShell)
}
