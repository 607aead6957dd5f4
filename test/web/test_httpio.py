"""The byte-level readers of the server, over a socket pair."""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

from pulsar.errors import IncompleteBody, InvalidArgument
from pulsar.web.httpio import ChunkedInput, ContentLengthInput, SocketReader


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    left.settimeout(10)
    right.settimeout(10)
    yield left, right
    left.close()
    right.close()


def feed(sock: socket.socket, data: bytes, close: bool = True) -> threading.Thread:
    def run() -> None:
        try:
            sock.sendall(data)
            if close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the reader gave up early (malformed input) and the test closed the pair

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_readline_limits_and_eof(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    feed(client, b"short\r\n" + b"x" * 100 + b"\nrest")
    reader = SocketReader(server, recv_size=16)
    assert reader.readline(50) == b"short\r\n"
    assert reader.readline(50) == b"x" * 50  # no newline within the limit: caller sees no "\n"
    assert reader.readline(100) == b"x" * 50 + b"\n"
    assert reader.readline(100) == b"rest"
    assert reader.readline(100) == b""


def test_readline_across_buffer_compaction(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    lines = [b"line %d with some padding\r\n" % i for i in range(200)]
    feed(client, b"".join(lines))
    reader = SocketReader(server, recv_size=7)
    assert [reader.readline(1000) for _ in lines] == lines


def test_read_mixes_buffer_and_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    payload = bytes(range(256)) * 4096
    feed(client, b"head\n" + payload)
    reader = SocketReader(server, recv_size=1000)
    assert reader.readline(10) == b"head\n"
    assert reader.read(len(payload) + 10) == payload  # EOF: fewer bytes


def test_content_length_input(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    feed(client, b"0123456789NEXT")
    reader = SocketReader(server)
    calls = []
    body = ContentLengthInput(reader, 10, lambda: calls.append("continue"))
    assert not body.started
    assert body.read(4) == b"0123"
    assert calls == ["continue"] and body.started
    assert body.read() == b"456789"
    assert body.finished and body.read() == b""
    assert reader.read(4) == b"NEXT"  # never reads past its length


def test_content_length_input_truncated(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    feed(client, b"abc")
    body = ContentLengthInput(SocketReader(server), 10)
    with pytest.raises(IncompleteBody, match="3 of 10 bytes"):
        body.read(10)
    assert body.broken and not body.finished
    with pytest.raises(IncompleteBody):  # and stays failed
        body.read(10)


def test_chunked_input(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    feed(client, b"4\r\nWiki\r\n5;name=x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: y\r\n\r\nNEXT")
    reader = SocketReader(server, recv_size=5)
    body = ChunkedInput(reader)
    assert body.read(3) == b"Wik"
    assert body.read() == b"ipedia in\r\n\r\nchunks."
    assert body.finished and body.read() == b""
    assert reader.read(4) == b"NEXT"


def test_chunked_readline(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    feed(client, b"3\r\na\nb\r\n2\r\nc\n\r\n0\r\n\r\n")
    assert list(ChunkedInput(SocketReader(server))) == [b"a\n", b"bc\n"]


@pytest.mark.parametrize("data", [
    b"zz\r\nhello\r\n0\r\n\r\n", b"-1\r\n", b"5\r\nhelloXX0\r\n\r\n", b"0x5\r\nhello\r\n",
    # RFC 9112 7.1: chunk-size is 1*HEXDIG; int(x, 16) would take all of these
    b"\x1c5\r\nhello\r\n0\r\n\r\n", b"5\xa0\r\nhello\r\n0\r\n\r\n", b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n",
    b" 5\r\nhello\r\n0\r\n\r\n", b"+5\r\nhello\r\n0\r\n\r\n", b"\r\n", b"5;\x00\r\nhello\r\n0\r\n\r\n",
    b"1" * 17 + b"\r\n",
])
def test_malformed_chunked_input(pair: tuple[socket.socket, socket.socket], data: bytes) -> None:
    server, client = pair
    feed(client, data)
    body = ChunkedInput(SocketReader(server))
    with pytest.raises(InvalidArgument):
        body.read()
    assert body.broken


def test_chunked_input_cut_short(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    feed(client, b"10\r\nonly")
    body = ChunkedInput(SocketReader(server))
    with pytest.raises(IncompleteBody, match="before its last chunk"):
        body.read()
    assert body.broken and not body.finished


@pytest.mark.parametrize("data", [b"5\r\nhello\r\n", b"5\r\nhello", b"5\r\nhello\r", b"5\r\nhello\r\n0\r\n",
                                  b"5\r\nhello\r\n0\r\nTrailer: x\r\n"])
def test_chunked_input_without_its_end_is_never_plain_eof(pair: tuple[socket.socket, socket.socket],
                                                         data: bytes) -> None:
    """An application reading to EOF must not mistake a cut connection for the body's end."""
    server, client = pair
    feed(client, data)
    body = ChunkedInput(SocketReader(server, recv_size=3))
    with pytest.raises(IncompleteBody):
        while body.read(2):
            pass


@pytest.mark.parametrize("data, size", [(b"5 ;name=value\r\nhello\r\n0\r\n\r\n", 5),
                                        (b"00A\r\n0123456789\r\n0\r\n\r\n", 10),
                                        (b"a\n0123456789\n0\n\n", 10)])
def test_chunk_size_forms_rfc_9112_allows(pair: tuple[socket.socket, socket.socket], data: bytes, size: int) -> None:
    server, client = pair
    feed(client, data)
    body = ChunkedInput(SocketReader(server))
    assert len(body.read()) == size and body.finished


def test_head_complete(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    server.settimeout(None)  # as in the server: a blocking socket, read with MSG_DONTWAIT
    reader = SocketReader(server)
    pieces = [b"\r\nGET / HT", b"TP/1.1\r\nHost: x\r\n", b"X: y\r\n", b"\r\n"]
    for index, piece in enumerate(pieces):
        client.sendall(piece)
        reader.fill_nowait()
        assert reader.head_complete(100, 100) == (index == len(pieces) - 1)
    with pytest.raises(BlockingIOError):  # nothing more waiting: never blocks
        reader.fill_nowait()


@pytest.mark.parametrize("data, complete", [
    (b"GET / HTTP/1.1\n\n", True), (b"GET / HTTP/1.1\r\n\r\n", True), (b"GET / HTTP/1.1\nA: b\n\n", True),
    (b"x" * 50, False), (b"x" * 100, True),  # request line: over the limit is "complete" (parser says 414)
    (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 16, False), (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 17, True),
])
def test_head_complete_limits(pair: tuple[socket.socket, socket.socket], data: bytes, complete: bool) -> None:
    server, client = pair
    client.sendall(data)
    reader = SocketReader(server)
    reader.fill_nowait()
    assert reader.head_complete(100, 100) is complete


def test_take_header_block(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    client.sendall(b"A: 1\r\nB: 2\r\n\r\nbody\r\nmore")
    reader = SocketReader(server)
    assert reader.readline(100) == b"A: 1\r\n"  # fills the buffer with everything sent
    assert reader.take_header_block(1000) == b"B: 2\r\n\r\n"
    assert reader.read(4) == b"body"
    assert reader.take_header_block(1000) == b""  # the blank line comes first
    assert reader.take_header_block(1000) is None  # no blank line buffered: nothing taken
    assert reader.read(4) == b"more"


def test_take_header_block_leaves_unusual_blocks_to_readline(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    client.sendall(b"X\r\nA: 1\nB: 2\r\n\r\n")
    reader = SocketReader(server)
    assert reader.readline(100) == b"X\r\n"
    assert reader.take_header_block(1000) is None  # a bare LF inside: line by line instead
    assert reader.take_header_block(5) is None  # beyond the limit
    assert reader.readline(100) == b"A: 1\n"
    assert reader.take_header_block(1000) == b"B: 2\r\n\r\n"


def test_pace_fails_a_slow_body_only_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    from pulsar.web import httpio

    now = [100.0]
    monkeypatch.setattr(httpio.time, "monotonic", lambda: now[0])
    pace = httpio.Pace(min_rate=1000, grace=5.0)
    pace.begin()
    now[0] += 4.0
    pace.check(10)  # slow, but within the grace
    now[0] += 2.0
    with pytest.raises(httpio.TooSlow, match="slower than 1000 bytes/s"):
        pace.check(10)
    fast = httpio.Pace(min_rate=1000, grace=5.0)
    fast.begin()
    fast.check(1_000_000)  # a fast start earns credit for a later stall
    now[0] += 60.0
    fast.check(1)


def test_head_complete_scans_each_byte_once(pair: tuple[socket.socket, socket.socket]) -> None:
    # A 1 MiB request line arriving a byte at a time: rescanning the whole buffer per call
    # took the acceptor 6 s here (quadratic); scanning only new bytes takes under one.
    server, _ = pair
    reader = SocketReader(server)
    data = b"GET /" + b"x" * (1000 * 1024)
    started = time.monotonic()
    for byte in range(len(data)):
        reader._buf += data[byte: byte + 1]
        assert not reader.head_complete(1024 * 1024, 256 * 1024)
    reader._buf += b" HTTP/1.1\r\n" + b"X: y\r\n" * 1000
    assert not reader.head_complete(1024 * 1024, 256 * 1024)
    reader._buf += b"\r\n"
    assert reader.head_complete(1024 * 1024, 256 * 1024)
    assert time.monotonic() - started < 4


@pytest.mark.parametrize("split", range(1, 40))
def test_head_complete_agrees_when_the_blank_line_arrives_in_pieces(pair: tuple[socket.socket, socket.socket],
                                                                   split: int) -> None:
    server, _ = pair
    head = b"\r\nGET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n"
    reader = SocketReader(server)
    for index in range(0, len(head), split):
        reader._buf += head[index: index + split]
        complete = reader.head_complete(100, 100)
        assert complete == (index + split >= len(head)), (index, split)
