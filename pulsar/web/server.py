"""A threaded HTTP/1.1 WSGI server on the standard library.

Why our own: Paste's httpserver cannot read chunked bodies, has no `wsgi.file_wrapper` or
sendfile, and needs pyOpenSSL for TLS.  This one has:

* a fixed pool of worker threads that only ever see complete request heads.  The acceptor
  thread holds every connection that is idle or still sending its request line and
  headers (and TLS handshakes), reading them without blocking in its selector, so slow or
  silent clients cannot starve status polls; a worker is taken only once a head is
  buffered.  A worker keeps a connection for a few milliseconds after a response
  (`keepalive_linger`, only while other workers are free), so a client sending requests
  back to back is served without a hand-off through the acceptor per request;
* deadlines the acceptor enforces exactly (its selector sleeps until the next one): a new
  connection must deliver its whole head (TLS handshake included) within `header_timeout`,
  as must a kept-alive one once the next request has begun; an idle kept-alive connection
  is closed after `keepalive_timeout`.  Body reads and response writes are bounded by
  `request_timeout` without progress (kernel receive/send timeouts), and a body must
  average `min_body_rate` bytes/s once it has been read for `header_timeout` (a clock
  check per receive): an upload that goes silent or trickles fails with `IncompleteBody`
  and is not stored, and frees its worker;
* after a final answer to a request whose body was not read (a 401 to an upload, a
  protocol rejection) the connection is half-closed and the rest of the request swallowed
  by the acceptor for at most `connection.LINGER_SECONDS` (a "lingering close", so the
  client reads the answer rather than a reset), never by a worker: draining on a worker
  would let a client trickling a body it has no token for hold that worker;
* a pipelined request is served only while the socket can take output: a client that
  sends requests and never reads the answers waits in the acceptor (for writability, under
  the head deadline), not in a worker's blocked send;
* at most `max_pending_heads` connections may be sending heads at once.  Over the cap the
  acceptor closes the one that has been at it longest: a normal client sends its head in
  one packet and is never the oldest, so slow-header floods evict each other while fresh
  clients get in (refusing new connections instead would lock everyone out);
* on EMFILE/ENFILE (no descriptor for a new connection) it stops polling the listener for
  `ACCEPT_BACKOFF` seconds (pending connections wait in the kernel backlog), frees a
  descriptor by closing the oldest lingering close, else pending head, else idle
  connection, and logs one line per `ACCEPT_LOG_INTERVAL` with the count of failures
  since the last one, instead of spinning on a listener that stays readable;
* request lines up to `max_request_line` (414 JSON beyond) and header sections up to
  `connection.HEADER_SECTION_LIMIT` (431), so a pending head's memory is bounded; receive
  buffers belong to the threads, so an idle connection costs only what it has buffered;
* `Expect: 100-continue`, chunked request bodies (`wsgi.input_terminated`), and
  `wsgi.file_wrapper` sent with `sendfile` (TLS falls back to 1 MiB reads);
* TLS from one PEM holding certificate and key (`ssl_pem`);
* `shutdown()`: stop accepting, close idle connections, let in-flight requests finish for
  up to `shutdown_timeout` seconds, then cut the rest.
"""

from __future__ import annotations

import collections
import errno
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
from pulsar.util.flags import parse_bool
from pulsar.util.logsafe import printable
from pulsar.web.connection import BLOCKED, CLOSED, DROP, LINGER, LINGER_SECONDS, READY, Connection, WsgiApp
from pulsar.web.held import HeldConnections
from pulsar.web.httpio import RECV_SIZE, set_blocking_timeout

log = logging.getLogger("pulsar.web.server")

DEFAULT_THREADS = 16
DEFAULT_MAX_REQUEST_LINE = 1024 * 1024
DEFAULT_KEEPALIVE_TIMEOUT = 60.0
DEFAULT_REQUEST_TIMEOUT = 300.0
#: Whole time a client gets for the request line and headers (and the TLS handshake).
DEFAULT_HEADER_TIMEOUT = 30.0
#: Bytes per second a request body must average once it has been read for header_timeout.
DEFAULT_MIN_BODY_RATE = 1024
#: Connections that may be sending request heads at once; see the module docstring.
DEFAULT_MAX_PENDING_HEADS = 256
#: After EMFILE/ENFILE on accept: seconds without polling the listener, and at most one
#: log line per this many seconds.
ACCEPT_BACKOFF = 0.5
ACCEPT_LOG_INTERVAL = 30.0
#: accept() errors that mean "out of descriptors or memory", not "this one client failed".
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
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
                 keepalive_linger: float = DEFAULT_KEEPALIVE_LINGER, backlog: int = 128,
                 header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                 max_pending_heads: int = DEFAULT_MAX_PENDING_HEADS,
                 min_body_rate: int = DEFAULT_MIN_BODY_RATE):
        if threads < 1:
            raise ValueError("threads must be at least 1")
        if max_pending_heads < 1:
            raise ValueError("max_pending_heads must be at least 1")
        self.app = app
        self.threads = threads
        self.max_request_line = max_request_line
        self.keepalive_timeout = keepalive_timeout
        self.request_timeout = request_timeout
        self.shutdown_timeout = shutdown_timeout
        self.keepalive_linger = keepalive_linger
        self.header_timeout = header_timeout
        self.max_pending_heads = max_pending_heads
        self.min_body_rate = min_body_rate
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
        self._to_park: collections.deque[tuple[Connection, int]] = collections.deque()
        self._held = HeldConnections(self._selector)
        self._scratch = memoryview(bytearray(RECV_SIZE))  # the acceptor thread's receive buffer
        self._accept_paused_until = 0.0
        self._accept_failures = 0
        self._accept_logged_at = -ACCEPT_LOG_INTERVAL
        self._work: queue.SimpleQueue[Connection | None] = queue.SimpleQueue()
        self._active: set[Connection] = set()
        self._lock = threading.Lock()
        self._idle_workers = threading.Condition(self._lock)
        self._workers: list[threading.Thread] = []
        self._waiting = 0  # workers blocked on the work queue
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
                for key, _ in self._selector.select(timeout=self._next_timeout()):
                    if key.fileobj is self.socket:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        self._drain_wakeups()
                    else:
                        try:
                            self._readable(key.data)
                        except Exception:  # one connection's fault must not stop the acceptor
                            log.exception("dropping connection from %s after an acceptor error", key.data.address)
                            self._held.forget(key.data)
                self._park_returned()
                self._expire()
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
                if exc.errno in _RESOURCE_ERRNOS:
                    self._pause_accepting(exc)
                else:
                    log.debug("accept failed: %s", printable(exc))
                return
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._ssl_context is not None:
                    sock.setblocking(False)
                    sock = self._ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                else:
                    set_blocking_timeout(sock, self.request_timeout)
            except (OSError, ssl.SSLError) as exc:
                log.debug("dropping connection from %s: %s", address, printable(exc))
                sock.close()
                continue
            connection = Connection(sock, address, self.app, server_name=self._server_name,
                                    server_port=self.port, max_request_line=self.max_request_line,
                                    is_tls=self._ssl_context is not None, io_timeout=self.request_timeout,
                                    scratch=self._scratch, min_body_rate=self.min_body_rate,
                                    body_grace=self.header_timeout)
            self._held.make_room(self._held.heads, self.max_pending_heads)
            self._held.hold(connection, self._held.heads, time.monotonic() + self.header_timeout)

    def _pause_accepting(self, exc: OSError) -> None:
        """Out of descriptors: the listener stays readable, so polling it would spin.  Stop
        for a moment, free a descriptor (see `_free_a_descriptor`), log rarely."""
        now = time.monotonic()
        self._accept_failures += 1
        if now - self._accept_logged_at >= ACCEPT_LOG_INTERVAL:
            log.warning("cannot accept connections: %s; pausing accept for %.1f s at a time "
                        "(%d failures since the last message)", printable(exc.strerror or exc),
                        ACCEPT_BACKOFF, self._accept_failures)
            self._accept_logged_at = now
            self._accept_failures = 0
        self._free_a_descriptor()
        if self._accept_paused_until <= now:
            self._selector.unregister(self.socket)
        self._accept_paused_until = now + ACCEPT_BACKOFF

    def _resume_accepting(self, now: float) -> None:
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            self._selector.register(self.socket, selectors.EVENT_READ)

    def _free_a_descriptor(self) -> None:
        """Close the oldest lingering close, else the longest-pending head, else the
        longest-idle kept-alive connection: the connections whose loss costs nothing but a
        reconnect."""
        held = self._held
        held.close_oldest(held.lingering or held.heads or held.idle)

    def _readable(self, connection: Connection) -> None:
        held = self._held
        if connection in held.lingering:
            if connection.drain(self._scratch):
                held.close(connection)
            return
        if not held.holds(connection):
            return  # closed earlier in this batch of events (evicted to make room)
        if connection.blocked:  # writable again: serve the request that was waiting
            connection.blocked = False
            self._dispatch(connection)
            return
        state = connection.advance(self._scratch)
        if state == READY:
            self._dispatch(connection)
        elif state == CLOSED:
            held.close(connection)
        elif connection in held.idle and connection.head_started():
            # The next request has begun: from now on it is a head under the head deadline.
            held.release(connection)
            held.make_room(held.heads, self.max_pending_heads)
            held.hold(connection, held.heads, time.monotonic() + self.header_timeout)

    def _dispatch(self, connection: Connection) -> None:
        self._held.release(connection)
        connection.for_worker()
        self._work.put(connection)

    def _park_returned(self) -> None:
        """Take back connections whose workers are done with them (see `Connection.serve`)."""
        held = self._held
        while self._to_park:
            connection, verdict = self._to_park.popleft()
            now = time.monotonic()
            if verdict == BLOCKED:
                # The client must read its answers within the head deadline; meanwhile it
                # counts as a pending head (and may be evicted as one).
                connection.blocked = True
                held.make_room(held.heads, self.max_pending_heads)
                held.hold(connection, held.heads, now + self.header_timeout, selectors.EVENT_WRITE)
            elif verdict == LINGER:
                if not connection.start_lingering():
                    connection.close()
                    continue
                held.make_room(held.lingering, self.max_pending_heads)
                held.hold(connection, held.lingering, now + LINGER_SECONDS)
            elif connection.head_started():
                held.make_room(held.heads, self.max_pending_heads)
                held.hold(connection, held.heads, now + self.header_timeout)
            else:
                held.hold(connection, held.idle, now + self.keepalive_timeout)

    def _expire(self) -> None:
        now = time.monotonic()
        self._held.expire(now)
        self._resume_accepting(now)

    def _next_timeout(self) -> float | None:
        """Seconds until the next deadline (exact expiry), None when there is none."""
        deadline = self._held.next_deadline()
        if self._accept_paused_until:
            deadline = min(deadline or self._accept_paused_until, self._accept_paused_until)
        if deadline is None:
            return None
        return max(0.0, deadline - time.monotonic())

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
        scratch = memoryview(bytearray(RECV_SIZE))  # lent to each connection this worker serves
        with self._lock:
            self._waiting += 1
        while True:
            connection = self._work.get()
            if connection is None:
                return
            with self._lock:
                self._waiting -= 1
                self._active.add(connection)
            verdict = DROP
            try:
                verdict = connection.serve(self._stopping.is_set, self._may_linger, self.keepalive_linger, scratch)
            except Exception:
                log.exception("connection handler failed")
            finally:
                with self._lock:
                    self._active.discard(connection)
                    self._waiting += 1
                    self._idle_workers.notify_all()
            if verdict != DROP and not self._stopping.is_set():
                self._to_park.append((connection, verdict))
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
            pass  # never registered, or unregistered while accepting is paused
        self.socket.close()
        self._held.close_all()
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
            self._to_park.popleft()[0].close()
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
    keepalive_timeout, keepalive_linger (seconds; 0 disables), request_timeout, header_timeout,
    shutdown_timeout, max_pending_heads, min_body_rate (bytes/s; 0 disables).  Blocks until
    SIGTERM/SIGINT, then lets in-flight requests finish and shuts the Pulsar application down."""
    from pulsar.config import check_bind
    from pulsar.web.app import PulsarWsgiApp

    default_line = wsgi_app.max_request_line if isinstance(wsgi_app, PulsarWsgiApp) else DEFAULT_MAX_REQUEST_LINE
    if isinstance(wsgi_app, PulsarWsgiApp):
        # Secure start (the same rule as `pulsar`): no token on a public address is refused
        # before the port opens, unless the app or this section sets allow_insecure_bind.
        try:
            insecure = parse_bool(kwargs.get("allow_insecure_bind") or False, "allow_insecure_bind")
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        allow = not wsgi_app.loopback_only or insecure
        check_bind(str(kwargs.get("host") or DEFAULT_HOST), wsgi_app.has_token, allow,
                   "set allow_insecure_bind: true in app.yml", metrics_public=wsgi_app.metrics_public)
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
        header_timeout=float(kwargs.get("header_timeout") or DEFAULT_HEADER_TIMEOUT),
        max_pending_heads=int(kwargs.get("max_pending_heads") or DEFAULT_MAX_PENDING_HEADS),
        min_body_rate=int(kwargs["min_body_rate"] if kwargs.get("min_body_rate") not in (None, "")
                          else DEFAULT_MIN_BODY_RATE),
        keepalive_linger=float(kwargs["keepalive_linger"] if kwargs.get("keepalive_linger") not in (None, "")
                               else DEFAULT_KEEPALIVE_LINGER),
    )
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    log.info("serving on %s with %d threads", server.url, server.threads)
    # The acceptor runs in a thread of its own and this one waits in Python, as in
    # `pulsar.main`: the kernel may hand SIGTERM to any thread, only the main thread runs the
    # handler, and a signal received elsewhere would not interrupt a main thread blocked in
    # the acceptor's select (the first SIGTERM was lost about once in ten runs).
    thread = threading.Thread(target=server.serve_forever, name="http-server", daemon=True)
    thread.start()
    try:
        while thread.is_alive() and not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.request_stop()
        thread.join()
        if isinstance(wsgi_app, PulsarWsgiApp):
            wsgi_app.shutdown()
