"""A private sshd on loopback (Debian's openssh-server), shared by every test that needs ssh:
the cli managers' SecureShell/ParamikoShell and the scp/rsync file actions.

It runs on a free port of 127.0.0.1 with its own ed25519 host key and accepts one user key
generated here, for the current user.  `sshd` needs root for privilege separation, so the
tests that use it say so (skip, or fail where the run promises them) when not root.  SFTP is
served by `internal-sftp`: OpenSSH's scp speaks SFTP by default since 9.0.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from test.support.system import apt_install, unavailable


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ipv6_loopback(port: int) -> bool:
    """Whether ::1 exists here and `port` is free on it (then sshd listens there too)."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", port))
        return True
    except OSError:
        return False


@dataclasses.dataclass(frozen=True)
class SshServer:
    """The running sshd: where it listens, who may log in with which key, its host key."""

    host: str
    port: int
    user: str
    user_key: Path
    host_public_key: Path
    log: Path
    #: also listening on [::1] (when this machine has an IPv6 loopback)
    ipv6: bool = False

    def known_hosts_line(self) -> str:
        """This server's line in ssh's known_hosts format (a non-default port is bracketed)."""
        key_type, key = self.host_public_key.read_text().split()[:2]
        return f"[{self.host}]:{self.port} {key_type} {key}\n"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """An sshd of our own on 127.0.0.1:<free port>, for the session."""
    if os.geteuid() != 0:
        unavailable("a private sshd needs root (privilege separation, host keys)")
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd_bin):
        result = apt_install("openssh-server")
        if not os.path.exists(sshd_bin):
            unavailable(f"openssh-server is not installed and could not be installed: {result}")
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        unavailable("ssh client tools are not installed")
    home = tmp_path_factory.mktemp("sshd")
    host_key, user_key = home / "host_key", home / "user_key"
    for key in (host_key, user_key):
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    authorized = home / "authorized_keys"
    shutil.copy(f"{user_key}.pub", authorized)
    os.chmod(authorized, 0o600)
    os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
    port = free_port()
    ipv6 = _ipv6_loopback(port)
    listen_v6 = "ListenAddress [::1]\n" if ipv6 else ""
    config = home / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\n{listen_v6}HostKey {host_key}\nPidFile {home}/sshd.pid\n"
        f"AuthorizedKeysFile {authorized}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n"
        f"SetEnv PATH={os.environ.get('PATH', '/usr/bin:/bin')}\n"
    )
    check = _run([sshd_bin, "-t", "-f", str(config)])
    if check.returncode != 0:
        unavailable(f"sshd rejects the test configuration: {check.stderr.strip()}")
    log = home / "sshd.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=log_file)
    server = SshServer("127.0.0.1", port, getpass.getuser(), user_key, Path(f"{host_key}.pub"), log, ipv6)
    try:
        deadline = time.monotonic() + 30
        while True:
            probe = _run(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
                          "UserKnownHostsFile=/dev/null", "-i", str(user_key), "-p", str(port), "127.0.0.1", "true"])
            if probe.returncode == 0:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                unavailable(f"private sshd did not accept a login: {probe.stderr.strip()} / {server.log_text()[-500:]}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def sshd(ssh_server: SshServer) -> dict[str, str]:
    """The same server as SecureShell/ParamikoShell params (prefix `shell_` added by the caller)."""
    return {"hostname": ssh_server.host, "port": str(ssh_server.port), "private_key": str(ssh_server.user_key),
            "strict_host_key_checking": "false"}
