"""A threaded HTTP/1.1 WSGI server on the standard library.

Why our own: Paste's httpserver cannot read chunked bodies, has no `wsgi.file_wrapper` or
sendfile, and needs pyOpenSSL for TLS.  This one has:

* a fixed pool of worker threads; idle keep-alive connections wait in the acceptor's
  selector, not in a worker, so long transfers and idle clients cannot starve status polls
  beyond the pool size.  A worker keeps a connection for a few milliseconds after a
  response (`keepalive_linger`, only while other workers are free), so a client sending
  requests back to back is served without a hand-off through the acceptor per request;
* request lines up to `max_request_line` (414 JSON beyond, memory bounded by the limit);
* `Expect: 100-continue`, chunked request bodies (`wsgi.input_terminated`), and
  `wsgi.file_wrapper` sent with `sendfile` (TLS falls back to 1 MiB reads);
* TLS from one PEM holding certificate and key (`ssl_pem`);
* `shutdown()`: stop accepting, close idle connections, let in-flight requests finish for
  up to `shutdown_timeout` seconds, then cut the rest.
"""

from __future__ import annotations

import collections
import logging
import queue
import selectors
import signal
import socket
import ssl
import threading
import time
from typing import Any

from pulsar.errors import ConfigurationError
from pulsar.protocol import DEFAULT_HOST, DEFAULT_PORT
from pulsar.web.connection import Connection, WsgiApp
from pulsar.web.httpio import set_blocking_timeout

log = logging.getLogger("pulsar.web.server")

DEFAULT_THREADS = 16
DEFAULT_MAX_REQUEST_LINE = 1024 * 1024
DEFAULT_KEEPALIVE_TIMEOUT = 60.0
DEFAULT_REQUEST_TIMEOUT = 300.0
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
#: How long a worker keeps a keep-alive connection after a response, waiting for the next
#: request, before parking it in the acceptor (only while other workers are free).
DEFAULT_KEEPALIVE_LINGER = 0.005


class Server:
    """Listens on (host, port) and serves `app` with `threads` workers until `shutdown()`."""

    def __init__(self, app: WsgiApp, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 ssl_pem: str | None = None, threads: int = DEFAULT_THREADS,
                 max_request_line: int = DEFAULT_MAX_REQUEST_LINE,
                 keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                 shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
                 keepalive_linger: float = DEFAULT_KEEPALIVE_LINGER, backlog: int = 128):
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.app = app
        self.threads = threads
        self.max_request_line = max_request_line
        self.keepalive_timeout = keepalive_timeout
        self.request_timeout = request_timeout
        self.shutdown_timeout = shutdown_timeout
        self.keepalive_linger = keepalive_linger
        self._ssl_context = _server_ssl_context(ssl_pem) if ssl_pem else None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=backlog)
        self.socket.setblocking(False)
        bound = self.socket.getsockname()
        self.server_address: tuple[str, int] = (bound[0], bound[1])
        self._server_name = host if host not in ("", "0.0.0.0", "::") else socket.gethostname()

        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._to_park: collections.deque[Connection] = collections.deque()
        self._parked: dict[Connection, None] = {}
        self._work: queue.SimpleQueue[Connection | None] = queue.SimpleQueue()
        self._active: set[Connection] = set()
        self._lock = threading.Lock()
        self._idle_workers = threading.Condition(self._lock)
        self._workers: list[threading.Thread] = []
        self._waiting = 0  # workers blocked on the work queue
        self._expired_at = 0.0
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._running = False

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = self.server_address[0]
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}/"

    # --- running ------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept and dispatch until `shutdown()`/`request_stop()` (or Ctrl-C), then stop gracefully."""
        with self._lock:
            if self._stopping.is_set():
                return  # shutdown() came first and has closed the socket
            self._running = True
        self._start_workers()
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(timeout=1.0):
                    if key.fileobj is self.socket:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        self._drain_wakeups()
                    else:
                        self._unpark(key.data)
                self._park_returned()
                self._expire_idle()
        except KeyboardInterrupt:
            log.info("interrupted; stopping")
            self._stopping.set()
        finally:
            self._stop_gracefully()

    def request_stop(self) -> None:
        """Ask `serve_forever` to stop; returns at once (safe in a signal handler)."""
        self._stopping.set()
        self._wake()

    def shutdown(self) -> None:
        """Stop and wait until in-flight requests are done (or cut off after the timeout)."""
        self.request_stop()
        with self._lock:
            running = self._running
        if running:
            self._stopped.wait()
        else:
            self.server_close()

    def server_close(self) -> None:
        for sock in (self.socket, self._wake_r, self._wake_w):
            try:
                sock.close()
            except OSError:
                pass

    # --- acceptor internals -------------------------------------------------------------

    def _start_workers(self) -> None:
        for index in range(self.threads):
            worker = threading.Thread(target=self._work_loop, name=f"pulsar-http-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                return
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._ssl_context is not None:
                    sock.settimeout(self.request_timeout)
                    sock = self._ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                else:
                    set_blocking_timeout(sock, self.request_timeout)
            except (OSError, ssl.SSLError) as exc:
                log.debug("dropping connection from %s: %s", address, exc)
                sock.close()
                continue
            connection = Connection(sock, address, self.app, server_name=self._server_name,
                                    server_port=self.port, max_request_line=self.max_request_line,
                                    is_tls=self._ssl_context is not None, io_timeout=self.request_timeout)
            self._park(connection)

    def _park(self, connection: Connection) -> None:
        connection.parked_at = time.monotonic()
        self._parked[connection] = None
        self._selector.register(connection.sock, selectors.EVENT_READ, connection)

    def _unpark(self, connection: Connection) -> None:
        self._selector.unregister(connection.sock)
        del self._parked[connection]
        self._work.put(connection)

    def _park_returned(self) -> None:
        while self._to_park:
            connection = self._to_park.popleft()
            if connection.has_pending_input():
                self._work.put(connection)
            else:
                self._park(connection)

    def _expire_idle(self) -> None:
        now = time.monotonic()
        if now - self._expired_at < min(1.0, self.keepalive_timeout / 4):
            return  # scan at most about once a second, not on every selector event
        self._expired_at = now
        deadline = now - self.keepalive_timeout
        for connection in [c for c in self._parked if c.parked_at < deadline]:
            self._selector.unregister(connection.sock)
            del self._parked[connection]
            connection.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # already full (a wakeup is pending) or closed

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    # --- workers ------------------------------------------------------------------------

    def _work_loop(self) -> None:
        with self._lock:
            self._waiting += 1
        while True:
            connection = self._work.get()
            if connection is None:
                return
            with self._lock:
                self._waiting -= 1
                self._active.add(connection)
            keep = False
            try:
                keep = connection.serve(self._stopping.is_set, self._may_linger, self.keepalive_linger)
            except Exception:
                log.exception("connection handler failed")
            finally:
                with self._lock:
                    self._active.discard(connection)
                    self._waiting += 1
                    self._idle_workers.notify_all()
            if keep and not self._stopping.is_set():
                self._to_park.append(connection)
                self._wake()
            else:
                connection.close()

    def _may_linger(self) -> bool:
        """A worker may wait briefly for its connection's next request only while another
        worker is free and nothing is queued, so lingering never delays other clients."""
        return self._waiting > 0 and self._work.empty()

    # --- stopping -----------------------------------------------------------------------

    def _stop_gracefully(self) -> None:
        try:
            self._selector.unregister(self.socket)
        except (KeyError, ValueError):
            pass
        self.socket.close()
        for connection in list(self._parked):
            self._selector.unregister(connection.sock)
            connection.close()
        self._parked.clear()
        deadline = time.monotonic() + self.shutdown_timeout
        with self._lock:
            while (self._active or not self._work.empty()) and time.monotonic() < deadline:
                self._idle_workers.wait(timeout=0.2)
            for connection in self._active:
                log.warning("cutting off a request still running at shutdown (%s)", connection.address)
                connection.abort()
        for _ in self._workers:
            self._work.put(None)
        join_deadline = time.monotonic() + 5.0
        for worker in self._workers:
            worker.join(timeout=max(0.0, join_deadline - time.monotonic()))
        while self._to_park:
            self._to_park.popleft().close()
        while not self._work.empty():
            leftover = self._work.get()
            if leftover is not None:
                leftover.close()
        self._selector.close()
        self.server_close()
        self._running = False
        self._stopped.set()


def _server_ssl_context(ssl_pem: str) -> ssl.SSLContext:
    """TLS from one PEM file holding the certificate (chain) and its private key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(ssl_pem)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"ssl_pem {ssl_pem!r}: cannot load a certificate and private key from it ({exc})"
        ) from None
    return context


def make_server(app: WsgiApp, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                ssl_pem: str | None = None, threads: int = DEFAULT_THREADS,
                max_request_line: int = DEFAULT_MAX_REQUEST_LINE, **options: Any) -> Server:
    """Bind (port 0 picks a free port; see `Server.server_address`) without serving yet."""
    return Server(app, host, port, ssl_pem=ssl_pem, threads=threads, max_request_line=max_request_line, **options)


def server_runner(wsgi_app: WsgiApp, global_conf: dict[str, Any], **kwargs: Any) -> None:
    """PasteDeploy server runner: `[server:main] use = call:pulsar.web.server:server_runner`.

    Keys: host, port, ssl_pem, threads, max_request_line (defaults to the app's own limit),
    keepalive_timeout, keepalive_linger (seconds; 0 disables), request_timeout,
    shutdown_timeout.  Blocks until SIGTERM/SIGINT, then lets in-flight requests finish and
    shuts the Pulsar application down."""
    from pulsar.web.app import PulsarWsgiApp

    default_line = wsgi_app.app.max_request_line if isinstance(wsgi_app, PulsarWsgiApp) else DEFAULT_MAX_REQUEST_LINE
    server = make_server(
        wsgi_app,
        str(kwargs.get("host") or DEFAULT_HOST),
        int(kwargs.get("port") or DEFAULT_PORT),
        ssl_pem=kwargs.get("ssl_pem") or None,
        threads=int(kwargs.get("threads") or DEFAULT_THREADS),
        max_request_line=int(kwargs.get("max_request_line") or default_line),
        keepalive_timeout=float(kwargs.get("keepalive_timeout") or DEFAULT_KEEPALIVE_TIMEOUT),
        request_timeout=float(kwargs.get("request_timeout") or DEFAULT_REQUEST_TIMEOUT),
        shutdown_timeout=float(kwargs.get("shutdown_timeout") or DEFAULT_SHUTDOWN_TIMEOUT),
        keepalive_linger=float(kwargs["keepalive_linger"] if kwargs.get("keepalive_linger") not in (None, "")
                               else DEFAULT_KEEPALIVE_LINGER),
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: server.request_stop())
    log.info("serving on %s with %d threads", server.url, server.threads)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if isinstance(wsgi_app, PulsarWsgiApp):
            wsgi_app.app.shutdown()
