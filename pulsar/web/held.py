"""The connections `pulsar.web.server`'s acceptor watches instead of a worker.

Three groups, each an insertion-ordered mapping whose order is also its deadline order
(every deadline in a group is "when it joined + the same timeout"), so the next deadline is
the first entry of each group and expiry pops from the front: O(1) per connection, no scan,
and the selector can sleep exactly until the next deadline.

* `idle`: kept-alive connections between requests (`keepalive_timeout`);
* `heads`: connections sending a request head or TLS handshake, and those waiting for the
  client to read its answers before a pipelined request is served (`header_timeout`);
  at most the server's `max_pending_heads`;
* `lingering`: half-closed after a final answer, swallowing what the client still sends
  (`connection.LINGER_SECONDS`).
"""

from __future__ import annotations

import collections
import logging
import selectors

from pulsar.web.connection import Connection

log = logging.getLogger("pulsar.web.server")

Group = collections.OrderedDict[Connection, None]


class HeldConnections:
    def __init__(self, selector: selectors.BaseSelector):
        self._selector = selector
        self.idle: Group = collections.OrderedDict()
        self.heads: Group = collections.OrderedDict()
        self.lingering: Group = collections.OrderedDict()
        self._groups = (self.idle, self.heads, self.lingering)
        self._why = {id(self.idle): "idle for keepalive_timeout",
                     id(self.heads): "request head not complete within header_timeout",
                     id(self.lingering): "lingering close over"}

    def hold(self, connection: Connection, group: Group, deadline: float,
             events: int = selectors.EVENT_READ) -> None:
        """Watch `connection` in the selector (for `events`) until `deadline`."""
        connection.deadline = deadline
        group[connection] = None
        self._selector.register(connection.sock, events, connection)

    def holds(self, connection: Connection) -> bool:
        return connection in self.heads or connection in self.idle or connection in self.lingering

    def release(self, connection: Connection) -> None:
        """Stop watching a held connection (it goes to a worker or is closed next)."""
        self._selector.unregister(connection.sock)
        for group in self._groups:
            if connection in group:
                del group[connection]
                return

    def close(self, connection: Connection) -> None:
        self.release(connection)
        connection.close()

    def forget(self, connection: Connection) -> None:
        """Drop and close a connection in whatever state it is (after an unexpected error)."""
        for group in self._groups:
            group.pop(connection, None)
        try:
            self._selector.unregister(connection.sock)
        except (KeyError, ValueError):
            pass
        connection.close()

    def close_oldest(self, group: Group) -> None:
        if group:
            self.close(next(iter(group)))

    def make_room(self, group: Group, limit: int) -> None:
        """Close the oldest member of `group` if it already has `limit` members."""
        if len(group) >= limit:
            log.debug("closing the oldest of %d held connections (the cap)", limit)
            self.close_oldest(group)

    def expire(self, now: float) -> None:
        """Close every connection whose deadline has passed."""
        for group in self._groups:
            while group:
                connection = next(iter(group))
                if connection.deadline > now:
                    break
                log.debug("closing connection from %s: %s", connection.address, self._why[id(group)])
                self.close(connection)

    def next_deadline(self) -> float | None:
        deadlines = [next(iter(group)).deadline for group in self._groups if group]
        return min(deadlines) if deadlines else None

    def close_all(self) -> None:
        for group in self._groups:
            while group:
                self.close(next(iter(group)))
