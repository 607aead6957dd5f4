"""Hostile-client probes: does a host keep answering a normal client while a crowd of slow or
silent connections hangs around (issue 11, item 2)?

Each probe opens `connections` sockets (default 64, more than any host's 16 worker threads)
that misbehave in one way, waits `SETTLE_S` for the host to accept them, then a normal client
polls the probe job's status (`GET /jobs/{id}/status` with the token, a fresh connection each
time, as Galaxy polls) `POLLS` times, `POLL_GAP_S` apart, each with a `limit` (default 10 s)
timeout; the first poll over the limit ends the measurement as "timeout".  Then the crowd is
closed and the host given up to `RECOVERY_S` to answer again before the next probe.

* `slow_heads`: each connection sends a request head one byte per second, never finishing
  it within the probe;
* `slow_body`: each connection sends a complete upload head (`POST /jobs/{id}/files`, the
  token, `Content-Length: 1 MiB`) at once, then the body one byte per second: a token holder
  (or a stalled upload) the application reads from;
* `slow_body_no_token`: the same without the token: the application answers 401 without
  reading the body, so what remains is how the host disposes of the unread body;
* `silent`: each connection connects and sends nothing.

The crowd is one thread that wakes once a second: it sends each open socket its next byte
(non-blocking) and notes sockets the host answered or closed.  A probe costs at most about
SETTLE_S + (POLLS - 1) * (POLL_GAP_S + answer time) + limit + RECOVERY_S seconds and almost no
CPU.  Every probe returns a dict with a short `cell` for the table ("ok 0.01 s", "2.3 s",
"timeout", an error) and the raw figures; none raises.
"""

from __future__ import annotations

import http.client
import selectors
import socket
import threading
import time
import urllib.parse
from typing import Any, Callable

from bench.servers import TOKEN
from bench.wsgi_hosts.probes import clean_job, setup_job

DEFAULT_CONNECTIONS = 64
DEFAULT_LIMIT_S = 10.0
POLLS = 5
POLL_GAP_S = 0.5
SETTLE_S = 1.0
RECOVERY_S = 3.0
CONNECT_TIMEOUT_S = 5.0
#: A worst poll under this is "ok".
OK_BELOW_S = 1.0
BODY_BYTES = 1024 * 1024
TICK_S = 1.0


def _query(**params: str) -> str:
    return urllib.parse.urlencode({**params, "private_token": TOKEN})


class Crowd:
    """Connections to 127.0.0.1:`port`, one per item of `openings`: each sends its opening at
    once, then byte `i` of `drip` at second `i` (nothing once `drip` is used up).  A thread
    does the dripping and notes what the host sent (first line) and which sockets it closed;
    a socket the host answered but did not close keeps dripping, as a hostile client would."""

    def __init__(self, port: int, openings: list[bytes], drip: bytes):
        self.drip = drip
        self.sockets: list[socket.socket] = []
        self.open: set[socket.socket] = set()
        self.answered: set[socket.socket] = set()
        self.connect_errors: list[str] = []
        self.closed_by_host = 0
        self.answers: dict[str, int] = {}  # first line of what the host sent -> count
        self.bytes_sent = 0
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        for opening in openings:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S)
            except OSError as exc:
                self.connect_errors.append(f"{type(exc).__name__}: {exc}")
                continue
            sock.setblocking(False)
            self.sockets.append(sock)
            self.open.add(sock)
            self._selector.register(sock, selectors.EVENT_READ)
            if opening:
                self._send(sock, opening)
        self._thread = threading.Thread(target=self._run, name="hostile-crowd", daemon=True)
        self._thread.start()

    def _send(self, sock: socket.socket, data: bytes) -> None:
        try:
            self.bytes_sent += sock.send(data)
        except BlockingIOError:
            pass  # the host is not reading; the next tick tries again
        except OSError:
            self._closed(sock)

    def _closed(self, sock: socket.socket) -> None:
        if sock in self.open:
            self.open.discard(sock)
            self._selector.unregister(sock)
            self.closed_by_host += 1

    def _watch(self) -> None:
        """Note what the host sent (an answer's first line, once per socket) and its closes."""
        for key, _events in self._selector.select(0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                self._closed(sock)
                continue
            if not data:
                self._closed(sock)
            elif sock not in self.answered:
                self.answered.add(sock)
                line = data.split(b"\r\n", 1)[0][:60].decode(errors="replace")
                self.answers[line] = self.answers.get(line, 0) + 1

    def _run(self) -> None:
        tick = 0
        started = time.monotonic()
        while True:
            with self._lock:
                self._watch()
                if tick < len(self.drip):
                    byte = self.drip[tick:tick + 1]
                    for sock in list(self.open):
                        self._send(sock, byte)
            tick += 1
            if self._stop.wait(max(0.0, started + tick * TICK_S - time.monotonic())):
                return

    def close(self) -> dict[str, Any]:
        """Stop dripping, close every socket, return what happened to the crowd."""
        self._stop.set()
        self._thread.join(5.0)
        with self._lock:
            self._watch()
            still_open = len(self.open)
            for sock in self.sockets:
                sock.close()
            self._selector.close()
        return {
            "opened": len(self.sockets),
            "connect_errors": self.connect_errors[:3],
            "connect_error_count": len(self.connect_errors),
            "closed_by_host": self.closed_by_host,
            "answered_by_host": len(self.answered),
            "still_open_at_end": still_open,
            "host_answers": self.answers,
            "bytes_sent": self.bytes_sent,
        }


def poll_once(port: int, path: str, timeout: float) -> tuple[str, float]:
    """("ok" | "timeout" | an error, seconds) for one GET on a fresh connection."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        outcome = "ok" if response.status == 200 else f"HTTP {response.status}"
    except TimeoutError:
        outcome = "timeout"
    except OSError as exc:
        outcome = f"{type(exc).__name__}"
    except http.client.HTTPException as exc:
        outcome = f"{type(exc).__name__}"
    finally:
        connection.close()
    return outcome, time.monotonic() - started


def poll(port: int, path: str, limit: float) -> dict[str, Any]:
    """`POLLS` polls; the first over `limit` ends the series."""
    latencies: list[float] = []
    outcomes: list[str] = []
    for index in range(POLLS):
        if index:
            time.sleep(POLL_GAP_S)
        outcome, seconds = poll_once(port, path, limit)
        latencies.append(round(seconds, 4))
        outcomes.append(outcome)
        if outcome == "timeout":
            break
    return {"latencies_s": latencies, "outcomes": outcomes, "worst_s": max(latencies)}


def cell(polls: dict[str, Any], crowd: dict[str, Any] | None = None) -> str:
    """The table cell: "ok 0.01 s" (every poll answered 200 in under OK_BELOW_S), "2.3 s"
    (answered, worst latency), "timeout", or the first error; plus what the host did to the
    crowd if it answered or closed any of it."""
    outcomes = polls["outcomes"]
    worst = polls["worst_s"]
    if "timeout" in outcomes:
        text = "timeout"
        answered = outcomes.index("timeout")
        if answered:
            text += f" (after {answered} ok)"
    elif any(o != "ok" for o in outcomes):
        text = next(o for o in outcomes if o != "ok")
    elif worst < OK_BELOW_S:
        text = f"ok {worst:.2f} s"
    else:
        text = f"{worst:.1f} s"
    if crowd:
        notes = []
        if crowd["connect_error_count"]:
            notes.append(f"{crowd['connect_error_count']} could not connect")
        if crowd["answered_by_host"]:
            lines = ", ".join(" ".join(line.split()[1:2]) or "?" for line in crowd["host_answers"])
            notes.append(f"{crowd['answered_by_host']} answered {lines}")
        if crowd["closed_by_host"]:
            notes.append(f"{crowd['closed_by_host']} closed")
        if notes:
            text += f" ({'; '.join(notes)} of {crowd['opened']})"
    return text


def _status_path(job_id: str) -> str:
    return f"/jobs/{job_id}/status?{_query()}"


def _recover(port: int, path: str) -> float | None:
    """Seconds until the host answers a poll again after the crowd left (None: not within RECOVERY_S)."""
    started = time.monotonic()
    while True:
        remaining = RECOVERY_S - (time.monotonic() - started)
        if remaining <= 0:
            return None
        outcome, _seconds = poll_once(port, path, min(1.0, remaining))
        if outcome == "ok":
            return round(time.monotonic() - started, 3)
        time.sleep(0.1)


def run_crowd(port: int, job_id: str, openings: list[bytes], drip: bytes, limit: float) -> dict[str, Any]:
    """Polls while the crowd is there, then what the crowd saw and how soon the host recovered."""
    path = _status_path(job_id)
    crowd = Crowd(port, openings, drip)
    try:
        time.sleep(SETTLE_S)
        polls = poll(port, path, limit)
    finally:
        crowd_result = crowd.close()
    return {**polls, "crowd": crowd_result, "recovery_s": _recover(port, path),
            "cell": cell(polls, crowd_result)}


def slow_heads(port: int, job_id: str, count: int, limit: float) -> dict[str, Any]:
    # A head far longer than the probe lasts, never ended by the blank line.
    head = f"GET {_status_path(job_id)} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode()
    return run_crowd(port, job_id, [b""] * count, head + b"a" * 3600, limit)


def _upload_heads(port: int, job_id: str, count: int, token: bool) -> list[bytes]:
    """Complete upload heads, one per crowd member, each to its own file of the probe job."""
    heads = []
    for index in range(count):
        params = {"name": f"slow-{index}.dat", "type": "input"}
        query = _query(**params) if token else urllib.parse.urlencode(params)
        heads.append((f"POST /jobs/{job_id}/files?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      f"Content-Length: {BODY_BYTES}\r\nContent-Type: application/octet-stream\r\n\r\n").encode())
    return heads


def slow_body(port: int, job_id: str, count: int, limit: float) -> dict[str, Any]:
    return run_crowd(port, job_id, _upload_heads(port, job_id, count, token=True), b"x" * 3600, limit)


def slow_body_no_token(port: int, job_id: str, count: int, limit: float) -> dict[str, Any]:
    return run_crowd(port, job_id, _upload_heads(port, job_id, count, token=False), b"x" * 3600, limit)


def silent(port: int, job_id: str, count: int, limit: float) -> dict[str, Any]:
    return run_crowd(port, job_id, [b""] * count, b"", limit)


HOSTILE_PROBES: dict[str, Callable[[int, str, int, float], dict[str, Any]]] = {
    "slow_heads": slow_heads,
    "slow_body": slow_body,
    "slow_body_no_token": slow_body_no_token,
    "silent": silent,
}
LABELS = {
    "slow_heads": "slow heads",
    "slow_body": "slow body",
    "slow_body_no_token": "slow body, no token",
    "silent": "silent connections",
}


def run_hostile(port: int, job_id: str, count: int = DEFAULT_CONNECTIONS, limit: float = DEFAULT_LIMIT_S,
                names: tuple[str, ...] = tuple(HOSTILE_PROBES)) -> dict[str, dict[str, Any]]:
    """The hostile probes `names` against the server on `port`, on the (already set up) job
    `job_id`; first `quiet`, the same polls with no crowd, for reference."""
    quiet = poll(port, _status_path(job_id), limit)
    results: dict[str, dict[str, Any]] = {"quiet": {**quiet, "cell": cell(quiet)}}
    for name in names:
        try:
            results[name] = HOSTILE_PROBES[name](port, job_id, count, limit)
        except Exception as exc:  # a probe must never stop the benchmark
            results[name] = {"cell": f"probe error {type(exc).__name__}: {exc}"}
    return results


def run_hostile_probes(port: int, job_id: str, count: int = DEFAULT_CONNECTIONS, limit: float = DEFAULT_LIMIT_S,
                       names: tuple[str, ...] = tuple(HOSTILE_PROBES)) -> dict[str, dict[str, Any]]:
    """`run_hostile` on a job of its own, set up and cleaned here."""
    try:
        setup_job(port, job_id)
    except (OSError, RuntimeError) as exc:
        return {name: {"cell": f"setup failed: {exc}"} for name in names}
    try:
        return run_hostile(port, job_id, count, limit, names)
    finally:
        clean_job(port, job_id)
