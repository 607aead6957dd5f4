"""A loopback TCP relay in front of the broker that can play a broker outage.

The benchmark and the outbox tests cannot stop the shared RabbitMQ while other work uses it,
so a server under test connects through this relay instead.  `cut()` closes the listening socket and every
relayed connection (the server sees its connections drop and new ones refused, as when the
broker is down); `restore()` listens again on the same port.  (test/support/cutting_proxy.py
does not fit: it breaks chosen connections after a byte budget, it cannot drop every live
connection on demand or refuse new ones.)
"""

from __future__ import annotations

import socket
import threading

from test.support.cutting_proxy import _close

BUFFER = 65536


class OutageProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def restore(self) -> None:
        """Listen (again) on the same port; the first call picks a free one."""
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), name="outage-proxy-accept", daemon=True).start()

    def cut(self) -> None:
        """Stop listening and drop every relayed connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        with self._lock:
            live, self._live = self._live, set()
        for sock in live:
            _close(sock)

    close = cut

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _close(client)
                    _close(upstream)
                    return
                self._live.update((client, upstream))
                self.connections += 1
            pair = (client, upstream)
            threading.Thread(target=self._relay, args=(client, upstream, pair), daemon=True).start()
            threading.Thread(target=self._relay, args=(upstream, client, pair), daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket, pair: tuple[socket.socket, socket.socket]) -> None:
        try:
            while True:
                data = source.recv(BUFFER)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            for sock in pair:
                self._live.discard(sock)
        for sock in pair:
            _close(sock)

