"""The acceptor's held connections: deadline order, exact expiry, the cap's eviction order."""

from __future__ import annotations

import selectors
import socket
from typing import Iterator

import pytest

from pulsar.web.connection import Connection
from pulsar.web.held import HeldConnections


def app(environ: object, start_response: object) -> list[bytes]:
    return []


@pytest.fixture
def held() -> Iterator[HeldConnections]:
    selector = selectors.DefaultSelector()
    yield HeldConnections(selector)
    selector.close()


@pytest.fixture
def connections() -> Iterator[list[Connection]]:
    pairs = [socket.socketpair() for _ in range(4)]
    yield [Connection(ours, ("127.0.0.1", index), app, server_name="t", server_port=1, max_request_line=100,
                      is_tls=False) for index, (ours, _) in enumerate(pairs)]
    for ours, theirs in pairs:
        ours.close()
        theirs.close()


def test_next_deadline_and_exact_expiry(held: HeldConnections, connections: list[Connection]) -> None:
    a, b, c, _ = connections
    held.hold(a, held.idle, 10.0)
    held.hold(b, held.idle, 12.0)
    held.hold(c, held.heads, 11.0)
    assert held.next_deadline() == 10.0
    held.expire(10.5)
    assert not held.holds(a) and a.sock.fileno() == -1  # closed
    assert held.next_deadline() == 11.0
    held.expire(12.0)
    assert not held.holds(b) and not held.holds(c)
    assert held.next_deadline() is None


def test_make_room_closes_the_oldest(held: HeldConnections, connections: list[Connection]) -> None:
    for index, connection in enumerate(connections[:3]):
        held.hold(connection, held.heads, 100.0 + index)
    held.make_room(held.heads, 3)
    assert list(held.heads) == connections[1:3]
    held.make_room(held.heads, 3)  # under the cap now: nothing closed
    assert list(held.heads) == connections[1:3]


def test_release_keeps_the_connection_open(held: HeldConnections, connections: list[Connection]) -> None:
    a = connections[0]
    held.hold(a, held.lingering, 1.0)
    held.release(a)
    assert not held.holds(a) and a.sock.fileno() != -1
    held.hold(a, held.idle, 2.0)  # may be held again (registered anew)
    held.close_all()
    assert a.sock.fileno() == -1 and held.next_deadline() is None
