"""The one-thread fetch of small blobs: plain answers are handed over, connections kept;
whatever else the store does is handed back for the usual path to retry or report."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from robosync.client.fetchloop import FetchLoop
from tests.fixtures.tiny_http import read_head

# (request head, number of the connection, number of the request on it) -> the answer's
# bytes, or None to close the connection without answering; bytes ending in CLOSE are
# sent (less CLOSE) and then the connection is closed.
Answer = Callable[[bytes, int, int], bytes | None]
CLOSE = b"<close>"


class Store:
    """A raw HTTP server, a thread per connection, that counts the connections it took."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.accepted = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn, self.accepted), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn, contextlib.suppress(OSError):  # the client may close it any time
            count = 0
            while True:
                head = read_head(conn)
                if b"\r\n\r\n" not in head:
                    return
                count += 1
                out = self.answer(head, number, count)
                if out is None:
                    return
                conn.sendall(out.removesuffix(CLOSE))
                if out.endswith(CLOSE):
                    return

    def close(self) -> None:
        """Stop taking connections."""
        self.sock.close()


@pytest.fixture
def store() -> Iterator[Callable[[Answer], Store]]:
    """Start raw stores for a test; closed after it."""
    started: list[Store] = []

    def start(answer: Answer) -> Store:
        started.append(Store(answer))
        return started[-1]

    yield start
    for s in started:
        s.close()


def ok(body: bytes, extra: bytes = b"") -> bytes:
    """A plain 200 answer with ``body``."""
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


def path_of(head: bytes) -> str:
    """The request target of a request head."""
    return head.split(b" ", 2)[1].decode()


def fetch_all(loop: FetchLoop, urls: list[str], size: int) -> tuple[dict[int, bytes], list[int]]:
    """Bodies handed over by index, and the indexes handed back."""
    got: dict[int, bytes] = {}

    def on_body(i: int, body: memoryview) -> None:
        got[i] = bytes(body)

    again = loop.fetch([(u, size) for u in urls], on_body, lambda: None)
    return got, again


def test_plain_answers_are_handed_over_on_kept_connections(store):
    s = store(lambda head, _n, _c: ok(path_of(head).encode()[:20]))
    loop = FetchLoop(4, timeout=5)
    urls = [f"{s.url}/blobs/{i:04d}?X-Amz-Signature=x" for i in range(40)]
    try:
        for _ in range(2):  # the second call reuses the first's connections
            got, again = fetch_all(loop, urls, 20)
            assert again == []
            assert got == {i: f"/blobs/{i:04d}?X-Amz-Si".encode() for i in range(40)}
        assert s.accepted == 4
    finally:
        loop.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!",
        b"HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nhell",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello" + CLOSE,
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello and more",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello" + CLOSE,
        b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello" + CLOSE,
    ],
    ids=["403", "503", "chunked", "short", "closing", "longer", "cut", "http1.0"],
)
def test_answers_it_does_not_read_plainly_are_handed_back(store, answer: bytes):
    s = store(lambda head, _n, _c: answer if "/bad/" in path_of(head) else ok(b"hello"))
    loop = FetchLoop(2, timeout=5)
    urls = [f"{s.url}/{'bad' if i in (3, 7) else 'good'}/{i}" for i in range(10)]
    try:
        got, again = fetch_all(loop, urls, 5)
    finally:
        loop.close()
    assert again == [3, 7]
    assert got == {i: b"hello" for i in range(10) if i not in (3, 7)}


def test_a_connection_the_store_closed_while_idle_is_replaced(store):
    s = store(lambda head, _n, count: ok(b"body!") if count == 1 else None)
    loop = FetchLoop(1, timeout=5)
    try:
        got, again = fetch_all(loop, [f"{s.url}/blob/{i}" for i in range(5)], 5)
    finally:
        loop.close()
    # Each connection answers once and closes without saying so: not a failure.
    assert again == [] and got == {i: b"body!" for i in range(5)}
    assert s.accepted == 5


def test_a_store_that_falls_silent_has_its_request_handed_back(store):
    stalled = threading.Event()

    def silent_for_one(head: bytes, _n: int, _c: int) -> bytes | None:
        if path_of(head).endswith("/1"):
            stalled.wait(10)
            return None
        return ok(b"fine!")

    s = store(silent_for_one)
    loop = FetchLoop(2, timeout=0.4)
    t = time.monotonic()
    try:
        got, again = fetch_all(loop, [f"{s.url}/blob/{i}" for i in range(4)], 5)
    finally:
        loop.close()
        stalled.set()
    assert again == [1] and sorted(got) == [0, 2, 3]
    assert time.monotonic() - t < 5


def test_what_it_cannot_reach_or_speak_is_handed_back_untried(store):
    s = store(lambda _h, _n, _c: ok(b"hello"))
    closed = socket.create_server(("127.0.0.1", 0))
    nobody = f"http://127.0.0.1:{closed.getsockname()[1]}/blob"
    closed.close()
    urls = [f"{s.url}/a", "https://127.0.0.1:1/b", nobody, f"http://user:pw@{s.url[7:]}/c"]
    loop = FetchLoop(2, timeout=5)
    try:
        got, again = fetch_all(loop, urls, 5)
    finally:
        loop.close()
    assert again == [1, 2, 3] and got == {0: b"hello"}


def test_a_stop_ends_the_fetch(store):
    s = store(lambda _h, _n, _c: ok(b"hello"))
    loop = FetchLoop(2, timeout=5)
    got: list[int] = []

    def stop_after_one() -> None:
        if got:
            raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            loop.fetch(
                [(f"{s.url}/{i}", 5) for i in range(50)],
                lambda i, _b: got.append(i),
                stop_after_one,
            )
    finally:
        loop.close()
    assert 1 <= len(got) < 50
