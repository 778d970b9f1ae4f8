"""The lean blob GET and PUT: proxies route to httpx, truncation is retried, stale connections
recover, a PUT's file spans go whole or fail as the file's trouble or a timeout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from robosync import httpwire
from robosync.client.leftout import SHRANK, FileTrouble
from robosync.client.retry import is_transient
from robosync.client.storeget import FileSpan, StoreGetter, direct_route


@pytest.fixture
def getter() -> Iterator[StoreGetter]:
    """A getter with a 5 s timeout, closed after the test."""
    g = StoreGetter(timeout=5)
    yield g
    g.close()


def read_all(getter: StoreGetter, url: str) -> bytes:
    """The whole body of ``url``, read 7 bytes at a time."""
    buf = memoryview(bytearray(7))
    out = bytearray()
    with getter.get(url) as body:
        assert body.status == 200
        while n := body.readinto(buf):
            out += buf[:n]
    return bytes(out)


def test_environment_proxy_sends_the_download_through_httpx(monkeypatch: pytest.MonkeyPatch):
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    assert direct_route("http://store:8333/blobs/x")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert not direct_route("http://store:8333/blobs/x")
    assert direct_route("https://store:8333/blobs/x")
    monkeypatch.setenv("NO_PROXY", "store")
    assert direct_route("http://store:8333/blobs/x")


def test_with_no_proxy_named_the_route_is_found_without_loading_urllib_request():
    """Most robots name no proxy: then the check loads nothing (``urllib.request`` took
    ~8 ms of a push's start of uploads); naming one, even in lower case, loads it."""
    env = {k: v for k, v in os.environ.items() if k[-6:].lower() != "_proxy"}
    code = (
        "import sys\n"
        "at_start = set(sys.modules)\n"
        "from robosync.client.storeget import direct_route\n"
        "route = direct_route('http://store:8333/blobs/x')\n"
        "print(route, 'urllib.request' in set(sys.modules) - at_start)\n"
    )

    def route_and_loaded(env: dict[str, str]) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert route_and_loaded(env) == ["True", "False"]
    assert route_and_loaded({**env, "http_proxy": ""}) == ["True", "False"]  # empty: none
    assert route_and_loaded({**env, "http_proxy": "http://proxy:3128"}) == ["False", "True"]


def test_body_cut_short_is_a_transient_error_not_short_data(tiny_server, getter: StoreGetter):
    def cut(conn: socket.socket, _: int) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40)
        raise ConnectionAbortedError

    with pytest.raises(httpx.TransportError) as caught:
        read_all(getter, tiny_server(cut))
    assert is_transient(caught.value)
    assert "60 body bytes missing" in str(caught.value)


# Idle longer than the recheck, a connection is polled before use; put back a moment
# ago, it is used as it is and the GET sent again on a new one when it fails.
@pytest.mark.parametrize("recheck_after", [0.0, 60.0], ids=["polled", "resent"])
def test_connection_closed_by_the_store_while_idle_is_replaced(
    tiny_server, getter: StoreGetter, monkeypatch: pytest.MonkeyPatch, recheck_after: float
):
    monkeypatch.setattr(httpwire, "RECHECK_IDLE_AFTER", recheck_after)

    def once_per_connection(conn: socket.socket, count: int) -> None:
        body = f"answer {count}".encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        raise ConnectionAbortedError  # close after each answer, without saying so

    url = tiny_server(once_per_connection)
    assert [read_all(getter, url) for _ in range(2)] == [b"answer 1", b"answer 1"]


def test_kept_alive_connection_is_reused(tiny_server, getter: StoreGetter):
    def keep_alive(conn: socket.socket, count: int) -> None:
        body = f"answer {count}".encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    url = tiny_server(keep_alive)
    # The counter is per connection: "answer 2" proves the second GET reused the first's.
    assert [read_all(getter, url) for _ in range(2)] == [b"answer 1", b"answer 2"]


def test_headers_are_read_as_sent_folded_repeated_and_in_any_case(tiny_server, getter: StoreGetter):
    def headers(conn: socket.socket, _: int) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nX-Amz-Meta-Note: first\r\n  folded on\r\n"
            b"x-amz-meta-note: second\r\nCONTENT-LENGTH: 2\r\n\r\nok"
        )

    with getter.get(tiny_server(headers)) as body:
        assert body.headers == [
            ("X-Amz-Meta-Note", "first folded on"),
            ("x-amz-meta-note", "second"),
            ("CONTENT-LENGTH", "2"),
        ]
        assert body.to_httpx().headers.get_list("x-amz-meta-note") == [
            "first folded on",
            "second",
        ]


def test_a_chunked_answer_is_read_whole_and_the_connection_kept(tiny_server, getter: StoreGetter):
    def chunked(conn: socket.socket, count: int) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n%x\r\n answer %d\r\n0\r\n\r\n" % (len(f" answer {count}"), count)
        )

    url = tiny_server(chunked)
    assert [read_all(getter, url) for _ in range(2)] == [b"hello answer 1", b"hello answer 2"]


def test_an_answer_without_length_ends_with_its_connection(tiny_server, getter: StoreGetter):
    def until_close(conn: socket.socket, count: int) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody %d" % count)
        raise ConnectionAbortedError

    url = tiny_server(until_close)
    # Read to the close, then a new connection: a kept one would hang or mix answers.
    assert [read_all(getter, url) for _ in range(2)] == [b"body 1", b"body 1"]


def test_a_store_that_stops_answering_times_out_as_a_transient_timeout(tiny_server):
    stalled = threading.Event()

    def silent(conn: socket.socket, _: int) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        stalled.wait(10)  # then nothing more, connection left open

    getter = StoreGetter(timeout=0.5)
    t = time.monotonic()
    with pytest.raises(httpx.ReadTimeout) as caught:
        read_all(getter, tiny_server(silent))
    assert is_transient(caught.value)
    assert 0.4 < time.monotonic() - t < 5
    stalled.set()
    getter.close()


def _receiving_store(received: list[bytes]):  # type: ignore[no-untyped-def]
    """A handler that reads each PUT's body (its Content-Length) and answers 200."""

    def handle(conn: socket.socket, _: int) -> None:
        length = int(conn.recv(32, socket.MSG_WAITALL).decode())  # sent first, by the test
        body = b""
        while len(body) < length:
            body += conn.recv(length - len(body))
        received.append(body)
        conn.sendall(b'HTTP/1.1 200 OK\r\nETag: "e"\r\nContent-Length: 0\r\n\r\n')

    return handle


def _spans_of(path: Path, *cuts: tuple[int, int]):  # type: ignore[no-untyped-def]
    """A PUT body of ``FileSpan`` pieces of ``path`` (opened by the body, as the push does)."""

    def body():  # type: ignore[no-untyped-def]
        fd = os.open(path, os.O_RDONLY)  # a folder too, which opens but cannot be read
        try:
            yield b"%-32d" % sum(size for _, size in cuts)
            for offset, size in cuts:
                yield FileSpan(fd, offset, size)
        finally:
            os.close(fd)

    return body


@pytest.mark.parametrize("kernel_timeouts", [True, False], ids=["sendfile", "read-and-send"])
def test_a_put_of_file_spans_sends_exactly_their_bytes(
    tiny_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_timeouts: bool
):
    # Without kernel timeouts (not Linux) a socket keeps Python's, as a TLS one does,
    # and the spans are read and sent instead.
    monkeypatch.setattr(httpwire, "KERNEL_TIMEOUTS", kernel_timeouts)
    getter = StoreGetter(timeout=5)
    data = os.urandom(3_000_000)
    path = tmp_path / "image.bin"
    path.write_bytes(data)
    received: list[bytes] = []
    url = tiny_server(_receiving_store(received))
    answer = getter.put(url, {}, _spans_of(path, (5, 1_000_000), (2_000_000, 999_000)))
    assert answer.status == 200 and answer.header("ETag") == '"e"'
    # a second PUT on the same kept connection: the first left nothing unsent
    getter.put(url, {}, _spans_of(path, (0, 10)))
    getter.close()
    assert received == [data[5:1_000_005] + data[2_000_000:2_999_000], data[:10]]


def test_a_span_past_the_end_of_its_file_is_the_files_trouble_not_the_connections(
    tiny_server, getter: StoreGetter, tmp_path: Path
):
    path = tmp_path / "image.bin"
    path.write_bytes(os.urandom(1000))
    url = tiny_server(_receiving_store([]))
    with pytest.raises(FileTrouble) as caught:
        getter.put(url, {}, _spans_of(path, (0, 2000)))
    assert caught.value.reason == SHRANK


def test_a_span_that_cannot_be_read_is_the_files_trouble_not_the_connections(
    tiny_server, getter: StoreGetter, tmp_path: Path
):
    # sendfile fails alike for the file and the socket; a folder cannot be read
    with pytest.raises(FileTrouble) as caught:
        getter.put(tiny_server(_receiving_store([])), {}, _spans_of(tmp_path, (0, 10)))
    assert caught.value.reason.startswith("cannot be read (Is a directory")


def test_a_store_that_stops_reading_a_put_times_out_as_a_transient_timeout(
    tiny_server, tmp_path: Path
):
    stalled = threading.Event()
    path = tmp_path / "large.bin"
    with open(path, "wb") as f:  # sparse: more than any socket buffer holds
        f.truncate(256 * 1024 * 1024)

    def deaf(conn: socket.socket, _: int) -> None:
        stalled.wait(10)  # reads nothing more, connection left open

    getter = StoreGetter(timeout=0.5)
    t = time.monotonic()
    with pytest.raises(httpx.TimeoutException) as caught:
        getter.put(tiny_server(deaf), {}, _spans_of(path, (0, 256 * 1024 * 1024)))
    assert is_transient(caught.value)
    assert 0.4 < time.monotonic() - t < 5
    stalled.set()
    getter.close()
