"""API requests on kept-alive stdlib connections: reused, replaced when the server closed
them, NDJSON read line by line across pieces, and httpx behind an environment proxy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from robosync import httpwire
from robosync.client.api import Api
from robosync.client.apihttp import HttpxHttp, StdlibHttp, query
from robosync.client.retry import Retrying, is_transient, is_unreachable

HEADERS = {"Authorization": "Bearer rs_test"}


def base_of(url: str) -> str:
    """``http://host:port/v1`` of a tiny server's URL."""
    return url.split("/blob")[0] + "/v1"


@pytest.fixture
def http_to(tiny_server) -> Iterator:
    """Make a :class:`StdlibHttp` to a tiny server with a given handler; closed after."""
    made: list[StdlibHttp] = []

    def make(handler) -> StdlibHttp:
        made.append(
            StdlibHttp(base_of(tiny_server(handler)), HEADERS, timeout=5, connect_timeout=5)
        )
        return made[-1]

    yield make
    for h in made:
        h.close()


def answer(conn: socket.socket, body: bytes, extra: bytes = b"") -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body)


def test_requests_reuse_one_kept_alive_connection(http_to):
    http = http_to(lambda conn, count: answer(conn, b'{"n": %d}' % count))
    # The count is per connection: 1, 2, 3 means all three went over the first one.
    assert [http.send("GET", "/projects").json()["n"] for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("recheck_after", [0.0, 60.0], ids=["polled", "resent"])
def test_a_connection_the_server_closed_while_idle_is_replaced(
    http_to, monkeypatch: pytest.MonkeyPatch, recheck_after: float
):
    monkeypatch.setattr(httpwire, "RECHECK_IDLE_AFTER", recheck_after)

    def once(conn: socket.socket, count: int) -> None:
        answer(conn, b'{"n": %d}' % count)
        raise ConnectionAbortedError  # closed after each answer, without saying so

    http = http_to(once)
    assert [http.send("GET", "/projects").json()["n"] for _ in range(2)] == [1, 1]


def test_ndjson_lines_are_read_whole_across_pieces_and_blank_lines_skipped(http_to):
    def chunked(conn: socket.socket, count: int) -> None:
        pieces = [b'{"a": 1}\n{"b"', b": 2}\n\n", b'{"c": %d}' % count]  # no final newline
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Robosync-Version: 7\r\n\r\n" + body
        )

    http = http_to(chunked)
    for count in (1, 2):  # the second stream on the same connection: it was kept
        with http.stream("/projects/1/manifest", {"version": 3}) as (resp, lines):
            assert resp.headers.get("x-robosync-version") == "7"
            assert list(lines) == [b'{"a": 1}', b'{"b": 2}', b'{"c": %d}' % count]


def test_query_drops_unset_parameters_and_writes_booleans_as_the_server_reads_them():
    assert query(None) == "" and query({}) == ""
    assert query({"name": "a b", "trash": True}) == "?name=a+b&trash=true"


def test_an_environment_proxy_carries_the_api_requests_through_httpx(
    tiny_server, monkeypatch: pytest.MonkeyPatch
):
    proxy = tiny_server(lambda conn, _: answer(conn, b'{"projects": [], "user": "via-proxy"}'))
    for var in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.split("/blob")[0])
    # A host that does not resolve: only the proxy can answer for it.
    api = Api("http://robots.invalid:8000", "rs_test")
    try:
        assert isinstance(api.http, HttpxHttp)
        assert api.project_list().user == "via-proxy"
    finally:
        api.close()


def test_a_server_that_is_not_there_is_reported_unreachable(tiny_server):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there any more
    http = StdlibHttp(f"http://127.0.0.1:{port}/v1", HEADERS, timeout=5, connect_timeout=5)
    with pytest.raises(httpx.ConnectError) as caught:
        http.send("GET", "/projects")
    assert is_unreachable(caught.value)
    api = Api(f"http://127.0.0.1:{port}", "rs_test", retrying=Retrying(unreachable_attempts=1))
    with pytest.raises(Exception, match=f"127.0.0.1:{port} unreachable"):
        api.project_list()


def test_requests_to_a_plain_http_server_never_load_httpx(tiny_server):
    # httpx costs ~40-75 ms to load; over http:// without a proxy nothing needs it.
    url = tiny_server(lambda conn, count: answer(conn, b'{"n": %d}' % count))
    code = (
        "import sys\n"
        "from robosync.client.apihttp import StdlibHttp\n"
        "from robosync.client.storeget import StoreGetter\n"
        f"http = StdlibHttp({base_of(url)!r}, {{}}, timeout=5, connect_timeout=5)\n"
        "assert http.send('GET', '/projects').json() == {'n': 1}\n"
        "http.close()  # the tiny server serves one connection at a time\n"
        f"with StoreGetter().get({url!r}) as body:\n"
        "    assert body.status == 200\n"
        "print(sorted(m for m in sys.modules if m.startswith(('httpx.', 'httpcore'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_kept_connection_that_stops_answering_times_out_and_is_not_sent_again(tiny_server):
    seen: list[int] = []
    stalled = threading.Event()

    def first_then_silent(conn: socket.socket, count: int) -> None:
        seen.append(count)
        if count == 1:
            answer(conn, b"{}")
        else:
            stalled.wait(10)  # the second request gets no answer

    url = tiny_server(first_then_silent)
    http = StdlibHttp(base_of(url), HEADERS, timeout=0.5, connect_timeout=5)
    try:
        assert http.send("GET", "/projects").json() == {}
        with pytest.raises(httpx.ReadTimeout) as caught:
            http.send("POST", "/projects", body=b"{}")
        assert is_transient(caught.value)  # the retry layer decides, with its backoff
        assert seen == [1, 2]  # not sent a second time on a new connection
    finally:
        stalled.set()
        http.close()


def test_a_request_with_a_short_timeout_gets_no_longer_to_connect():
    # `status` asks the server once, 2 s at most, and must answer promptly with no server:
    # a listener whose queue is full takes no connection (the SYN goes unanswered).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = socket.create_connection(("127.0.0.1", port))
    http = StdlibHttp(f"http://127.0.0.1:{port}/v1", HEADERS, timeout=30, connect_timeout=30)
    try:
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout):
            http.send("GET", "/projects/1", timeout=0.5)
        assert time.monotonic() - started < 5
    finally:
        http.close()
        queued.close()
        listener.close()
