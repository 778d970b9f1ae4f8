"""The server's HEADs of stored objects: kept-alive, recovering, bounded in time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from robosync.server.store.heads import StoreHeads

CHECKSUM = "x-amz-checksum-sha256"


@pytest.fixture
def heads() -> Iterator[StoreHeads]:
    """A HEAD sender with a 1 s read timeout, closed after the test."""
    h = StoreHeads(connect_timeout=2, read_timeout=1)
    yield h
    h.close()


def answer(conn: socket.socket, count: int, *extra: bytes) -> None:
    """An object's HEAD answer: its length, its checksum, and which request of the connection."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n"
        + b"X-Amz-Checksum-Sha256: c2hhMjU2\r\nX-Request: %d\r\n" % count
        + b"".join(extra)
        + b"\r\n"
    )


def test_head_reads_size_and_checksum_and_keeps_the_connection(tiny_server, heads: StoreHeads):
    url = tiny_server(answer)
    first = heads.head(url, {"x-amz-checksum-mode": "ENABLED"})
    second = heads.head(url, {"x-amz-checksum-mode": "ENABLED"})
    assert first[0] == 200
    assert first[1].get("content-length") == "12345"
    assert first[1].get(CHECKSUM) == "c2hhMjU2"
    # The request counter is per connection: 2 proves the second HEAD reused the first's.
    assert (first[1].get("x-request"), second[1].get("x-request")) == ("1", "2")


def test_connection_the_store_closed_while_idle_is_replaced(tiny_server, heads: StoreHeads):
    def once_per_connection(conn: socket.socket, count: int) -> None:
        answer(conn, count)
        raise ConnectionAbortedError  # closed after each answer, without saying so

    url = tiny_server(once_per_connection)
    got = [heads.head(url, {})[1].get("x-request") for _ in range(3)]
    assert got == ["1", "1", "1"]


def test_connection_close_is_honoured(tiny_server, heads: StoreHeads):
    def closing(conn: socket.socket, count: int) -> None:
        answer(conn, count, b"Connection: close\r\n")
        raise ConnectionAbortedError

    url = tiny_server(closing)
    assert [heads.head(url, {})[0] for _ in range(2)] == [200, 200]


def test_missing_object_is_404_not_an_error(tiny_server, heads: StoreHeads):
    def missing(conn: socket.socket, _: int) -> None:
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    assert heads.head(tiny_server(missing), {})[0] == 404


def test_a_store_that_stops_answering_times_out(tiny_server, heads: StoreHeads):
    stalled = threading.Event()

    def silent(conn: socket.socket, _: int) -> None:
        stalled.wait(10)  # reads the request, answers nothing, keeps the connection

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        heads.head(tiny_server(silent), {})
    assert 0.8 < time.monotonic() - started < 5
    stalled.set()
