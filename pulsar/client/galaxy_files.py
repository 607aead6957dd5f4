"""A minimal stand-in for Galaxy's job-files endpoint, for `pulsar-check` and tests.

`GET <url>?path=P&file_type=T` streams local file P; `POST` with a multipart body
(field `file`) writes it to P.  Only paths under `root` are served or written, like
Galaxy, which only authorises paths of the job.  It exists so `remote_transfer` can be
exercised end to end without a Galaxy; it is not part of the API Galaxy imports.
"""

from __future__ import annotations

import http.server
import os
import shutil
import tempfile
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pulsar.util.fileio import BLOCK_SIZE


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_FilesHTTPServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        self.server.requests.append(f"{self.command} {self.path.split('?')[0]} {args[1] if len(args) > 1 else ''}")

    def _target(self) -> str | None:
        query = parse_qs(urlsplit(self.path).query)
        if query.get("job_key", [None])[0] != self.server.job_key:
            self._reply(403, b"bad job_key")
            return None
        path = os.path.abspath(query.get("path", [""])[0])
        if not path.startswith(self.server.root + os.sep):
            self._reply(403, b"path not allowed")
            return None
        return path

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self._target()
        if path is None:
            return
        if not os.path.isfile(path):
            self._reply(404, b"no such file")
            return
        self.server.served.append(path)
        self.send_response(200)
        self.send_header("Content-Length", str(os.path.getsize(path)))
        self.end_headers()
        with open(path, "rb") as handle:
            shutil.copyfileobj(handle, self.wfile, BLOCK_SIZE)

    def do_POST(self) -> None:  # noqa: N802
        path = self._target()
        if path is None:
            self._drain()
            return
        content_type = self.headers.get("Content-Type", "")
        if "boundary=" not in content_type or self.headers.get("Transfer-Encoding"):
            self._drain()
            self._reply(400, b"expected multipart/form-data with Content-Length")
            return
        boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode("ascii")
        length = int(self.headers.get("Content-Length", "0"))
        try:
            _receive_multipart(self.rfile, length, boundary, path)
        except ValueError as exc:
            self._reply(400, str(exc).encode())
            return
        self.server.received.append(path)
        self._reply(200, b"{}")

    def _drain(self) -> None:
        remaining = int(self.headers.get("Content-Length", "0"))
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, BLOCK_SIZE))
            if not chunk:
                break
            remaining -= len(chunk)


def _receive_multipart(stream: Any, length: int, boundary: bytes, path: str) -> None:
    """Stream the `file` part of a multipart body into `path` (spooled through a temp file)."""
    delimiter = b"\r\n--" + boundary
    with tempfile.TemporaryFile() as spool:
        remaining = length
        while remaining > 0:
            block = stream.read(min(remaining, BLOCK_SIZE))
            if not block:
                raise ValueError("body shorter than Content-Length")
            spool.write(block)
            remaining -= len(block)
        spool.seek(0)
        # Scan part by part; only headers are held in memory.
        first = spool.readline()
        if first.rstrip(b"\r\n") != b"--" + boundary:
            raise ValueError("body does not start with the boundary")
        while True:
            headers = b""
            while True:
                line = spool.readline()
                if line in (b"\r\n", b""):
                    break
                headers += line
            is_file = b'name="file"' in headers
            start = spool.tell()
            end = _find(spool, delimiter, start)
            if end < 0:
                raise ValueError("unterminated part")
            if is_file:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                spool.seek(start)
                with open(path + ".part", "wb") as out:
                    remaining = end - start
                    while remaining > 0:
                        block = spool.read(min(remaining, BLOCK_SIZE))
                        out.write(block)
                        remaining -= len(block)
                os.replace(path + ".part", path)
                return
            spool.seek(end + len(delimiter))
            if spool.read(2) == b"--":
                raise ValueError("no file part")
            spool.readline()


def _find(handle: Any, needle: bytes, start: int) -> int:
    handle.seek(start)
    offset = start
    carry = b""
    while True:
        block = handle.read(BLOCK_SIZE)
        if not block:
            return -1
        data = carry + block
        index = data.find(needle)
        if index >= 0:
            return int(offset - len(carry) + index)
        carry = data[-(len(needle) - 1):]
        offset += len(block)


class _FilesHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: str, job_key: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = os.path.abspath(root)
        self.job_key = job_key
        self.requests: list[str] = []
        self.served: list[str] = []
        self.received: list[str] = []


class JobFilesServer:
    """Start with `start()`; `files_endpoint` is what Galaxy would pass to `get_client`."""

    def __init__(self, root: str, job_key: str = "check-key"):
        self.httpd = _FilesHTTPServer(root, job_key)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="job-files", daemon=True)

    @property
    def files_endpoint(self) -> str:
        port = self.httpd.server_address[1]
        return f"http://127.0.0.1:{port}/api/jobs/1/files?job_key={self.httpd.job_key}"

    @property
    def served(self) -> list[str]:
        return self.httpd.served

    @property
    def received(self) -> list[str]:
        return self.httpd.received

    def start(self) -> "JobFilesServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "JobFilesServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
