"""The `remote_scp_transfer` and `remote_rsync_transfer` actions (spec 6.2): the server fetches
a job's inputs from, and sends its outputs to, the client's host with `scp` or `rsync` over
`ssh`, as the user, host, port and private key of the action say.

Guarantees:

* every program runs from an argv list, never through a local shell.  Two strings are still
  parsed by someone else, so both are built here with quoting: rsync's `-e` (rsync splits it
  into the ssh argv itself) and the `mkdir -p` that ssh hands to the remote user's shell;
* the key text lives only in a 0600 file inside a private (0700) temporary directory, for
  the duration of one action, and is removed afterwards whatever happens; it is never logged
  nor put into an error message;
* host keys are checked by policy (`ssh_host_key_checking`): `accept-new` (default) trusts a
  host the first time and refuses a changed key later, recording keys in a known_hosts file
  under the persistence directory; `pinned` accepts only the hosts already listed in
  `ssh_known_hosts_file`; `ignore` does what the reference does (no checking at all);
* a fetched input appears under its name only when complete (temp file beside it, then a
  rename through the directory fd), and a symlink under the name is replaced, never
  written through;
* a failure raises `SshTransferError` carrying the tool's own message (its stderr).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from pulsar.errors import ConfigurationError
from pulsar.shared import actions
from pulsar.shared.actions import ActionError, FileAction
from pulsar.util.fileio import create_temp_beside
from pulsar.util.logsafe import printable

ACCEPT_NEW = "accept-new"
PINNED = "pinned"
IGNORE = "ignore"
HOST_KEY_CHECKING = (ACCEPT_NEW, PINNED, IGNORE)
#: Where trust-on-first-use records host keys, inside the persistence directory.
KNOWN_HOSTS_NAME = "ssh_known_hosts"
#: Seconds to wait for the TCP connection and ssh handshake.
CONNECT_TIMEOUT = 30
#: A connection with no answer to keep-alives for this many seconds is dropped (15 s x 4):
#: transfers of large files have no overall deadline, a dead peer must still end them.
KEEPALIVE = ("15", "4")
#: How much of a tool's stderr goes into the error (and so into the job's stderr).
STDERR_LIMIT = 2000
#: Exit codes worth a retry: ssh's connection failure (255) and rsync's socket, stream and
#: timeout errors.  Anything else (no such file, permission denied) will fail again.
TRANSIENT_EXIT_CODES = frozenset({255, 10, 12, 30, 35})
#: ssh also exits 255 for these, which no retry mends.
PERMANENT_MESSAGES = ("Host key verification failed", "Permission denied", "Could not resolve hostname",
                      "Load key")

_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]*$")
_HOST = re.compile(r"^[A-Za-z0-9_.:%\[\]][A-Za-z0-9_.:%\[\]-]*$")
_PROC_FD = re.compile(r"^/proc/self/fd/(\d+)$")


class SshTransferError(Exception):
    """scp, rsync or ssh failed; the message has the tool's stderr.  `transient`: a retry
    may help (the connection failed), as opposed to a missing file or a refused key."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


@dataclasses.dataclass(frozen=True)
class SshSettings:
    """The server's host-key policy, shared by every ssh action (app options
    `ssh_host_key_checking` and `ssh_known_hosts_file`).  `known_hosts` None: ssh's own
    default file (~/.ssh/known_hosts), used only when persistence is disabled."""

    host_key_checking: str = ACCEPT_NEW
    known_hosts: Path | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], persistence_directory: Path | None) -> "SshSettings":
        """Raises `ConfigurationError` naming the key when `pinned` has no file to pin to."""
        checking = str(options.get("ssh_host_key_checking") or ACCEPT_NEW)
        if checking not in HOST_KEY_CHECKING:
            raise ConfigurationError(f"ssh_host_key_checking: expected one of {', '.join(HOST_KEY_CHECKING)}, "
                                     f"got {checking!r}")
        configured = options.get("ssh_known_hosts_file")
        if checking == PINNED:
            if not configured:
                raise ConfigurationError("ssh_host_key_checking: pinned needs ssh_known_hosts_file (the hosts "
                                         "the server may connect to, in ssh's known_hosts format)")
            from pulsar.config import existing_file

            return cls(checking, Path(existing_file(options, "ssh_known_hosts_file")))
        if configured:
            path = str(configured)
            if not os.path.isabs(path) and options.get("config_dir"):
                path = os.path.join(str(options["config_dir"]), path)
            return cls(checking, Path(os.path.abspath(path)))
        return cls(checking, None if persistence_directory is None else persistence_directory / KNOWN_HOSTS_NAME)

    def ssh_options(self) -> list[str]:
        """`-o` options for every ssh connection: key authentication only, never a prompt,
        connect timeout and keep-alives, and the host-key policy."""
        argv = ["-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey", "-o", "PubkeyAuthentication=yes",
                "-o", "IdentitiesOnly=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
                "-o", f"ServerAliveInterval={KEEPALIVE[0]}", "-o", f"ServerAliveCountMax={KEEPALIVE[1]}"]
        if self.host_key_checking == IGNORE:
            # LogLevel=ERROR: no "Permanently added ... to the list of known hosts" in every job's stderr
            return argv + ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                           "-o", "LogLevel=ERROR"]
        strict = "yes" if self.host_key_checking == PINNED else "accept-new"
        # HashKnownHosts=no (Debian's ssh_config says yes): an admin can read which hosts were trusted
        argv += ["-o", f"StrictHostKeyChecking={strict}", "-o", "HashKnownHosts=no"]
        if self.known_hosts is not None:
            argv += ["-o", f"UserKnownHostsFile={_ssh_config_path(self.known_hosts)}"]
        if self.host_key_checking == PINNED:
            argv += ["-o", "GlobalKnownHostsFile=/dev/null"]  # the pinned file is the whole list
        return argv


def _ssh_config_path(path: Path) -> str:
    """A path as an ssh `-o` value: ssh expands `%` tokens and splits on spaces otherwise."""
    return '"' + str(path).replace("%", "%%") + '"'


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where an ssh action connects: validated so no value can be read as an option."""

    host: str
    key: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def of(cls, action: FileAction) -> "Endpoint":
        """Raises `ActionError` for a missing key or host, or a user/host/port that is not one."""
        if not action.ssh_key:
            raise ActionError(f"{action.action_type} needs ssh_key (destination or file-action rule)")
        host, user = str(action.ssh_host or ""), action.ssh_user
        if not _HOST.match(host):
            raise ActionError(f"{action.action_type}: ssh_host {printable(host)!r} is not a host name")
        if user is not None and not _NAME.match(str(user)):
            raise ActionError(f"{action.action_type}: ssh_user {printable(user)!r} is not a user name")
        port = None
        if action.ssh_port not in (None, ""):
            try:
                port = int(str(action.ssh_port))
            except ValueError:
                raise ActionError(f"{action.action_type}: ssh_port {printable(action.ssh_port)!r} is not a port") \
                    from None
            if not 0 < port < 65536:
                raise ActionError(f"{action.action_type}: ssh_port {port} is not a port")
        return cls(host, str(action.ssh_key), None if user is None else str(user), port)

    @property
    def login(self) -> str:
        """ssh's destination: `user@host`, an IPv6 address as it is."""
        host = self.host.strip("[]")
        return f"{self.user}@{host}" if self.user else host

    def remote(self, path: str) -> str:
        """scp's and rsync's `user@host:path`, an IPv6 address in brackets."""
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{path}" if self.user else f"{host}:{path}"


@contextlib.contextmanager
def private_key_file(key: str) -> Iterator[str]:
    """The key text in a 0600 file of a fresh 0700 directory; both removed on exit.  OpenSSH
    refuses a key file without its final newline, which Galaxy's configuration may drop."""
    directory = tempfile.mkdtemp(prefix="pulsar-ssh-")
    try:
        path = os.path.join(directory, "key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key if key.endswith("\n") else key + "\n")
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- argv builders (pure) ----------------------------------------------------------------


def ssh_argv(settings: SshSettings, key_path: str, endpoint: Endpoint) -> list[str]:
    """`ssh` with key, port and policy, up to (not including) the destination."""
    port = ["-p", str(endpoint.port)] if endpoint.port else []
    return ["ssh", "-i", key_path, *port, *settings.ssh_options()]


def mkdir_argv(settings: SshSettings, key_path: str, endpoint: Endpoint, directory: str) -> list[str]:
    """Create `directory` (and parents) on the remote host; the remote shell sees it quoted."""
    command = f"mkdir -p -- {shlex.quote(directory)}"
    return [*ssh_argv(settings, key_path, endpoint), "--", endpoint.login, command]


def scp_argv(settings: SshSettings, key_path: str, endpoint: Endpoint, source: str, target: str) -> list[str]:
    """scp over SFTP (OpenSSH's default since 9.0): remote paths are not read by a shell.  No `-q`: it
    would silence ssh's own diagnostics (host key, refused key), which the job's stderr needs;
    without a terminal scp shows no progress meter anyway."""
    port = ["-P", str(endpoint.port)] if endpoint.port else []
    return ["scp", "-B", "-i", key_path, *port, *settings.ssh_options(), "--", source, target]


def rsync_argv(settings: SshSettings, key_path: str, endpoint: Endpoint, source: str, target: str) -> list[str]:
    """rsync with ssh as its remote shell.  `--protect-args`: remote paths travel inside the
    protocol, not through the remote shell; `--copy-links`: a symlink's target is sent (a
    Galaxy dataset may be one, and so is `/proc/self/fd/N`)."""
    remote_shell = shlex.join(ssh_argv(settings, key_path, endpoint))
    return ["rsync", "--protect-args", "--copy-links", "-e", remote_shell, "--", source, target]


def _transfer_argv(kind: str, settings: SshSettings, key_path: str, endpoint: Endpoint, source: str,
                   target: str) -> list[str]:
    build = rsync_argv if kind == actions.REMOTE_RSYNC_TRANSFER else scp_argv
    return build(settings, key_path, endpoint, source, target)


def run(argv: list[str], what: str, pass_fds: tuple[int, ...] = ()) -> None:
    """Run one tool; raise `SshTransferError` with its stderr when it fails.  The argv is not
    logged (it names the key file; the caller logs what is moved)."""
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                pass_fds=pass_fds, check=False)
    except OSError as exc:
        raise SshTransferError(f"{what}: cannot run {argv[0]}: {exc}") from None
    if result.returncode != 0:
        text = result.stderr.decode("utf-8", "replace")
        # one line (it is logged too), control characters escaped: the remote side chose some of it
        lines = [line.strip() for line in text.splitlines() if line.strip().strip("@")]
        detail = printable(" / ".join(lines), STDERR_LIMIT)
        transient = result.returncode in TRANSIENT_EXIT_CODES and not any(m in text for m in PERMANENT_MESSAGES)
        raise SshTransferError(f"{what}: {argv[0]} exited with {result.returncode}: {detail}", transient=transient)


# -- the two directions --------------------------------------------------------------------


def fetch(action: FileAction, settings: SshSettings, dir_fd: int, leaf: str, *, fsync: bool = True) -> None:
    """Copy the client's file `action.path` into `leaf` of the directory `dir_fd`.

    The tool writes a temp file beside `leaf`, reached as `/proc/self/fd/<dir_fd>/...` (the
    fd is passed down), so no path under the job directory is resolved again; the temp file
    is renamed onto `leaf` only once complete, and removed on failure."""
    endpoint = Endpoint.of(action)
    if not action.path:
        raise ActionError(f"{action.action_type} action has no path")
    fd, temp = create_temp_beside(Path(leaf), ".part", dir_fd=dir_fd)
    os.close(fd)
    try:
        with private_key_file(endpoint.key) as key_path:
            argv = _transfer_argv(action.action_type, settings, key_path, endpoint, endpoint.remote(action.path),
                                  f"/proc/self/fd/{dir_fd}/{temp}")
            run(argv, f"fetching {printable(action.path)} from {endpoint.host}", pass_fds=(dir_fd,))
        if fsync:
            written = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                os.fsync(written)
            finally:
                os.close(written)
        os.replace(temp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def send(action: FileAction, settings: SshSettings, source: Path) -> None:
    """Copy `source` to the client's path `action.path`, creating its directory first.  A
    `/proc/self/fd/N` source (an output opened by the job directory) is handed to the tool
    as that same fd, so it reads the file that was opened, not whatever the name is now."""
    endpoint = Endpoint.of(action)
    if not action.path:
        raise ActionError(f"{action.action_type} action has no path")
    match = _PROC_FD.match(str(source))
    pass_fds = (int(match.group(1)),) if match else ()
    what = f"sending {printable(action.path)} to {endpoint.host}"
    with private_key_file(endpoint.key) as key_path:
        parent = os.path.dirname(action.path)
        if parent:
            run(mkdir_argv(settings, key_path, endpoint, parent), what)
        run(_transfer_argv(action.action_type, settings, key_path, endpoint, str(source), endpoint.remote(action.path)),
            what, pass_fds=pass_fds)
