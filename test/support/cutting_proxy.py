"""A loopback TCP proxy that breaks chosen connections part way, to test interrupted transfers.

Each accepted connection is relayed to the target server in both directions.  `cuts` lists,
per connection in accept order, how many bytes may flow in each direction before the proxy
closes both sides (None = no limit); connections beyond the list are relayed whole.  What the
client sent on every connection is kept (`requests_seen`) so a test can read its headers.
"""

from __future__ import annotations

import dataclasses
import socket
import threading


@dataclasses.dataclass
class Cut:
    #: bytes client -> server before the cut (request head included), None = unlimited
    upstream: int | None = None
    #: bytes server -> client before the cut (response head included), None = unlimited
    downstream: int | None = None


class CuttingProxy:
    def __init__(self, target_port: int, cuts: list[Cut]):
        self.target_port = target_port
        self.cuts = list(cuts)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests_seen: list[bytearray] = []
        self.downstream_bytes: list[int] = []
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        self.listener.close()

    def __enter__(self) -> "CuttingProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request_heads(self) -> list[str]:
        """The first request head sent on each connection, decoded."""
        return [bytes(raw).split(b"\r\n\r\n", 1)[0].decode("latin-1") for raw in self.requests_seen]

    def _accept_loop(self) -> None:
        index = 0
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            cut = self.cuts[index] if index < len(self.cuts) else Cut()
            index += 1
            seen = bytearray()
            self.requests_seen.append(seen)
            self.downstream_bytes.append(0)
            server = socket.create_connection(("127.0.0.1", self.target_port))
            slot = len(self.downstream_bytes) - 1
            both = (client, server)
            up = threading.Thread(target=self._relay, args=(client, server, cut.upstream, seen, both, None), daemon=True)
            down = threading.Thread(target=self._relay, args=(server, client, cut.downstream, None, both, slot),
                                    daemon=True)
            up.start()
            down.start()

    def _relay(self, source: socket.socket, sink: socket.socket, budget: int | None, record: bytearray | None,
               both: tuple[socket.socket, socket.socket], count_slot: int | None) -> None:
        try:
            while True:
                want = 65536 if budget is None else min(65536, budget)
                if want == 0:
                    break
                data = source.recv(want)
                if not data:
                    break
                if record is not None and len(record) < 65536:
                    record.extend(data[: 65536 - len(record)])
                sink.sendall(data)
                if count_slot is not None:
                    self.downstream_bytes[count_slot] += len(data)
                if budget is not None:
                    budget -= len(data)
            if budget is not None:  # a cut, not an end: break both connections
                for sock in both:
                    _close(sock)
            else:
                sink.shutdown(socket.SHUT_WR)
        except OSError:
            for sock in both:
                _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
