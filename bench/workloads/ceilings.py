"""What this machine can do at best, measured in the same run as the servers.

* loopback HTTP: a minimal HTTP/1.1 exchange over a real socket between two processes
  (a forked server process, the harness as client), one big body either way, 1 MiB
  `sendall`/`recv_into` blocks and no parsing beyond the header;
* disk: write N bytes in 4 MiB blocks to a fresh file, one fsync at the end (and without);
* fork/exec: `subprocess.run(["/bin/true"])` in a loop.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import time
from pathlib import Path

BLOCK = 1024 * 1024


def _recv_header(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed before the header ended")
        data += chunk
    header, _, rest = data.partition(b"\r\n\r\n")
    return header, rest


def _drain(sock: socket.socket, remaining: int) -> None:
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    while remaining > 0:
        count = sock.recv_into(view, min(BLOCK, remaining))
        if not count:
            raise ConnectionError(f"peer closed with {remaining} bytes to go")
        remaining -= count


def _send(sock: socket.socket, total: int) -> None:
    block = memoryview(b"\0" * BLOCK)
    remaining = total
    while remaining > 0:
        count = min(BLOCK, remaining)
        sock.sendall(block[:count])
        remaining -= count


def _serve(listener: socket.socket, size: int) -> None:
    """Serve exactly two requests: GET (send `size` bytes) then POST (read `size` bytes)."""
    for _ in range(2):
        conn, _addr = listener.accept()
        with conn:
            header, rest = _recv_header(conn)
            if header.startswith(b"GET"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                _send(conn, size)
            else:
                length = int(header.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                _drain(conn, length - len(rest))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")


def loopback_http(size: int) -> dict[str, float]:
    """MB/s (10^6 bytes) for one GET and one POST of `size` bytes over 127.0.0.1."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    context = multiprocessing.get_context("fork")
    server = context.Process(target=_serve, args=(listener, size), daemon=True)
    server.start()
    listener.close()
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            started = time.perf_counter()
            sock.sendall(b"GET /blob HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            _header, rest = _recv_header(sock)
            _drain(sock, size - len(rest))
            get_seconds = time.perf_counter() - started
        with socket.create_connection(("127.0.0.1", port)) as sock:
            started = time.perf_counter()
            sock.sendall(b"POST /blob HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % size)
            _send(sock, size)
            _recv_header(sock)
            post_seconds = time.perf_counter() - started
    finally:
        server.join(10)
        if server.is_alive():
            server.kill()
    return {"get_MBps": size / get_seconds / 1e6, "post_MBps": size / post_seconds / 1e6}


def disk_write(directory: Path, size: int, fsync: bool = True) -> float:
    """MB/s writing `size` bytes in 4 MiB blocks, fsync once at the end unless `fsync` is
    false (file removed after).  Without fsync, big writes are still throttled to the disk's
    pace by the kernel's dirty-page limits; small ones only measure the page cache."""
    block = os.urandom(4 * BLOCK)
    path = directory / "ceiling-disk.bin"
    started = time.perf_counter()
    with open(path, "wb", buffering=0) as handle:
        remaining = size
        while remaining > 0:
            remaining -= handle.write(block[: min(len(block), remaining)])
        if fsync:
            os.fsync(handle.fileno())
    seconds = time.perf_counter() - started
    path.unlink()
    os.sync()  # do not leave write-back of this file running into the next measurement
    return size / seconds / 1e6


def fork_exec(seconds: float = 1.5) -> float:
    """`/bin/true` runs per second via subprocess (what a local job manager pays per job)."""
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        subprocess.run(["/bin/true"], check=True)
        count += 1
    return count / (time.perf_counter() - started)
