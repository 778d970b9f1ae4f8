"""The one-thread fetch (and send) of small blobs: plain answers are handed over,
connections kept; whatever else the store does is handed back for the usual path to retry
or report."""

from __future__ import annotations

import contextlib
import os
import re
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
    """A raw HTTP server, a thread per connection, that counts the connections it took
    and keeps each request's head and body."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.accepted = 0
        self.received: list[tuple[bytes, bytes]] = []
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
                head, _, body = head.partition(b"\r\n\r\n")
                head += b"\r\n\r\n"
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                while length and len(body) < int(length.group(1)):
                    piece = conn.recv(65536)
                    if not piece:
                        return
                    body += piece
                self.received.append((head, body))
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


# --- PUTs -------------------------------------------------------------------------


def put_all(
    loop: FetchLoop, urls: list[str], bodies: list[bytes | None], headers: dict[str, str]
) -> tuple[list[int], list[int]]:
    """The indexes answered plainly, and those handed back."""
    done: list[int] = []
    again = loop.put([(u, headers) for u in urls], bodies.__getitem__, done.append, lambda: None)
    return sorted(done), again


def test_puts_send_their_headers_and_bodies_on_kept_connections(store):
    s = store(lambda _h, _n, _c: b"HTTP/1.1 200 OK\r\nETag: x\r\nContent-Length: 0\r\n\r\n")
    loop = FetchLoop(4, timeout=5)
    # 200 KiB: more than a fresh connection's send buffer takes at once.
    bodies: list[bytes | None] = [os.urandom(200 * 1024) for _ in range(12)]
    urls = [f"{s.url}/blobs/{i:02d}?X-Amz-Signature=x" for i in range(12)]
    try:
        done, again = put_all(loop, urls, bodies, {"x-amz-checksum-sha256": "q83v+w=="})
    finally:
        loop.close()
    assert (done, again) == (list(range(12)), [])
    assert s.accepted == 4
    sent = {path_of(head): (head, body) for head, body in s.received}
    for i, body in enumerate(bodies):
        head, received = sent[f"/blobs/{i:02d}?X-Amz-Signature=x"]
        assert received == body
        assert head.startswith(b"PUT ")
        assert b"\r\nx-amz-checksum-sha256: q83v+w==\r\n" in head
        assert b"\r\nContent-Length: 204800\r\n" in head


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 9\r\n\r\nBadDigest",
        b"HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" + CLOSE,
        b"HTTP/1.1 200 OK\r\n" + CLOSE,
    ],
    ids=["400", "503", "chunked", "closing", "cut"],
)
def test_put_answers_it_does_not_read_plainly_are_handed_back(store, answer: bytes):
    plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    s = store(lambda head, _n, _c: answer if "/bad/" in path_of(head) else plain)
    loop = FetchLoop(2, timeout=5)
    urls = [f"{s.url}/{'bad' if i in (2, 5) else 'good'}/{i}" for i in range(8)]
    try:
        done, again = put_all(loop, urls, [b"bytes"] * 8, {})
    finally:
        loop.close()
    assert again == [2, 5]
    assert done == [0, 1, 3, 4, 6, 7]


def test_a_withdrawn_put_is_not_sent_nor_handed_back(store):
    s = store(lambda _h, _n, _c: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    loop = FetchLoop(2, timeout=5)
    try:
        done, again = put_all(
            loop, [f"{s.url}/{i}" for i in range(4)], [b"a", None, b"c", b"d"], {}
        )
    finally:
        loop.close()
    assert (done, again) == ([0, 2, 3], [])
    assert sorted(path_of(head) for head, _ in s.received) == ["/0", "/2", "/3"]


@pytest.mark.parametrize(
    "headers",
    [{"x-amz-meta": "a\r\nInjected: yes"}, {"bad name": "v"}, {"x-amz-meta": "caf\u00e9"}],
    ids=["line break", "space in name", "not ascii"],
)
def test_headers_it_will_not_write_are_handed_back_unsent(store, headers: dict[str, str]):
    s = store(lambda _h, _n, _c: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    loop = FetchLoop(2, timeout=5)
    try:
        done, again = put_all(loop, [f"{s.url}/a", f"{s.url}/b"], [b"a", b"b"], headers)
    finally:
        loop.close()
    assert (done, again) == ([], [0, 1])
    assert s.received == []
